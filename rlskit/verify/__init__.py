"""``rlskit verify``: prove the model's access matrix against a real database.

`verify_database` works inside one transaction on a given database and rolls it back;
`verify_scratch` builds a throwaway database (tables from the model's SQLAlchemy
definitions, owned by a plain role; the model's SQL under a unique role prefix), verifies
it and drops it with its roles. Both return a `Matrix`: every actor × relation × command
under tenant A's and tenant B's contexts and with none, each cell proven or violated,
plus the side-channel probes.
"""

from __future__ import annotations

import copy
import uuid

import psycopg
from psycopg import sql

from ..errors import ConfigError
from ..generate import generate_sql
from ..model import Model
from ..scratch import create_tables, drop_database
from .matrix import Cell, Matrix, Observation, SideChannel, run_matrix

__all__ = ["Cell", "Matrix", "Observation", "SideChannel", "verify_database",
           "verify_scratch"]

_OWNER = """
SELECT pg_catalog.pg_get_userbyid(c.relowner)
FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %s AND c.relname = %s"""


def verify_database(conn: psycopg.Connection, model: Model) -> Matrix:
    """Seed, probe and roll back on the database of `conn`, which must be a superuser's
    (seeding writes every tenant's rows; probing switches to every role)."""
    model.validate()
    if not conn.execute("SELECT rolsuper FROM pg_catalog.pg_roles "
                        "WHERE rolname = current_user").fetchone()[0]:
        raise ConfigError(f"rlskit verify must connect as a superuser, not "
                          f"{conn.info.user!r}: it seeds every tenant and acts as every role")
    if not model.tables:
        raise ConfigError("rlskit verify: the model declares no tables")
    first = next(iter(model.tables.values()))
    row = conn.execute(_OWNER, [first.schema, first.name]).fetchone()
    if row is None:
        raise ConfigError(f"rlskit verify: table {first.qualified} does not exist in "
                          f"database {conn.info.dbname!r}")
    try:
        return run_matrix(conn, model, row[0])
    finally:
        conn.rollback()


def _definitions(model: Model) -> list:
    named = [t.qualified for t in model.tables.values() if t.definition is None]
    if named:
        raise ConfigError(f"rlskit verify needs SQLAlchemy definitions to build a scratch "
                          f"database, but {', '.join(named)} is only named; pass --database "
                          "to verify a database that has the tables")
    tables: list = []
    for table in model.tables.values():
        for sa_table in table.definition.metadata.sorted_tables:
            if sa_table not in tables:
                tables.append(sa_table)
    return tables


def verify_scratch(admin_url: str, model: Model) -> Matrix:
    """Verify `model` in a database of its own on the server of `admin_url` (a superuser's),
    with its roles under a unique prefix; everything is dropped afterwards."""
    model.validate()
    tables = _definitions(model)
    tag = f"rlskit_verify_{uuid.uuid4().hex[:8]}"
    scratch = copy.copy(model)
    scratch.role_prefix = f"{tag}_{model.role_prefix}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(tag)))
        url = psycopg.conninfo.make_conninfo(admin_url, dbname=tag)
    try:
        with psycopg.connect(url) as conn:
            create_tables(conn, f"{tag}_owner", tables)
            conn.execute(generate_sql(scratch, pg_version=conn.info.server_version // 10000))
            conn.commit()
            return verify_database(conn, scratch)
    finally:
        drop_database(admin_url, tag, f"{tag}_")
