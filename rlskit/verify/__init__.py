"""``rlskit verify``: prove the model's access matrix against a real database.

`verify_database` works inside one transaction on a given database and rolls it back;
`verify_scratch` builds a throwaway database (tables from the model's SQLAlchemy
definitions, owned by a plain role; the model's SQL under a unique role prefix), verifies
it and drops it with its roles. Both return a `Matrix`: every actor × relation × command
under tenant A's and tenant B's contexts and with none, each cell proven or violated,
plus the side-channel probes.
"""

from __future__ import annotations

import uuid

import psycopg
from psycopg import sql

from ..errors import ConfigError
from ..model import Model
from ..rows import one
from ..scratch import drop_database, install_model, table_definitions, with_prefix
from .matrix import Cell, Matrix, Observation, SideChannel, run_matrix
from .outcome import Insertion, Outcome, Promise, Verdict

__all__ = ["Cell", "Insertion", "Matrix", "Observation", "Outcome", "Promise", "SideChannel",
           "Verdict", "verify_database", "verify_scratch"]

_OWNER = """
SELECT pg_catalog.pg_get_userbyid(c.relowner), m.n
FROM unnest(%s::text[], %s::text[]) WITH ORDINALITY AS m (schema, name, n)
JOIN pg_catalog.pg_namespace s ON s.nspname = m.schema
JOIN pg_catalog.pg_class c ON c.relnamespace = s.oid AND c.relname = m.name
ORDER BY m.n LIMIT 1"""  # the owner of the first of the tables that exists


def verify_database(conn: psycopg.Connection, model: Model, *, expect: bool = True,
                    only: set[str] | None = None) -> Matrix:
    """Seed, probe and roll back on the database of `conn`, which must be a superuser's
    (seeding writes every tenant's rows; probing switches to every role). ``expect=False``
    observes only, on a database in another state than the model's; `only` limits the
    relations probed (see `run_matrix`)."""
    model.validate()
    if not one(conn.execute("SELECT rolsuper FROM pg_catalog.pg_roles "
                        "WHERE rolname = current_user"))[0]:
        raise ConfigError(f"rlskit verify must connect as a superuser, not "
                          f"{conn.info.user!r}: it seeds every tenant and acts as every role")
    if not model.tables:
        raise ConfigError("rlskit verify: the model declares no tables")
    schemas, names = zip(*((t.schema, t.name) for t in model.tables.values()), strict=True)
    row = conn.execute(_OWNER, [list(schemas), list(names)]).fetchone()
    if expect and (row is None or row[1] != 1):
        first = next(iter(model.tables.values()))
        raise ConfigError(f"rlskit verify: table {first.qualified} does not exist in "
                          f"database {conn.info.dbname!r}")
    owner = row[0] if row else conn.info.user  # none of the model's tables exists yet
    try:
        return run_matrix(conn, model, owner, expect=expect, only=only)
    finally:
        conn.rollback()


def verify_scratch(admin_url: str, model: Model) -> Matrix:
    """Verify `model` in a database of its own on the server of `admin_url` (a superuser's),
    with its roles under a unique prefix; everything is dropped afterwards."""
    model.validate()
    if model.citus:
        raise ConfigError("a Citus model is verified on its cluster: pass --database with the "
                          "coordinator's URL (a scratch database has no Citus)")
    table_definitions(model)  # before anything is created
    tag = f"rlskit_verify_{uuid.uuid4().hex[:8]}"
    scratch = with_prefix(model, f"{tag}_")
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(tag)))
        url = psycopg.conninfo.make_conninfo(admin_url, dbname=tag)
    try:
        with psycopg.connect(url) as conn:
            install_model(conn, scratch, f"{tag}_owner")
            conn.commit()
            return verify_database(conn, scratch)
    finally:
        drop_database(admin_url, tag, f"{tag}_")
