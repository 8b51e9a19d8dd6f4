"""Throwaway databases (tests, the demo, verify): tables created from SQLAlchemy
definitions by a plain owner role, dropped together with the roles of their prefix."""

from __future__ import annotations

from typing import Any

import psycopg
from pglast import split
from psycopg import sql
from sqlalchemy.dialects import postgresql
from sqlalchemy.schema import CreateIndex, CreateTable

from .errors import ConfigError, ModelError
from .generate import generate_sql
from .model import Model

__all__ = ["create_tables", "drop_database", "install_model", "table_definitions",
           "with_prefix"]


def with_prefix(model: Model, prefix: str) -> Model:
    """A copy of `model` whose roles are named `prefix` + the model's own names."""
    return model.with_role_prefix(prefix + model.role_prefix)


def table_definitions(model: Model) -> list[Any]:
    """The SQLAlchemy tables of the model's metadata, in dependency order; a ConfigError
    names the tables the model only names."""
    named = [t.qualified for t in model.tables.values() if t.definition is None]
    if named:
        raise ConfigError(f"building a database from the model needs SQLAlchemy definitions, "
                          f"but {', '.join(named)} is only named; pass --database to use a "
                          "database that has the tables")
    tables: list[Any] = []
    for table in model.tables.values():
        for sa_table in table.definition.metadata.sorted_tables:
            if sa_table not in tables:
                tables.append(sa_table)
    return tables


def install_model(conn: psycopg.Connection, model: Model, owner: str) -> None:
    """Tables from the model's SQLAlchemy definitions, owned by `owner`, and the model's
    SQL for the server's version, in the current transaction."""
    create_tables(conn, owner, table_definitions(model))
    version = conn.info.server_version // 10000
    script = generate_sql(model, pg_version=version)
    try:
        with conn.transaction():
            conn.execute(script)
    except psycopg.DatabaseError as exc:
        raise ModelError(f"the model's SQL fails on PostgreSQL {version} at "
                         f"{failing_statement(conn, script)}: {_first_line(exc)}") from None


def failing_statement(conn: psycopg.Connection, script: str) -> str:
    """The start of the first statement of `script` the server refuses (each is tried in a
    savepoint that is rolled back)."""
    with conn.transaction(force_rollback=True):
        for statement in split(script):
            try:
                with conn.transaction():
                    conn.execute(statement)
            except psycopg.DatabaseError:
                text = " ".join(statement.split())
                return text[:80] + ("…" if len(text) > 80 else "")
    return "a statement"


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def create_tables(conn: psycopg.Connection, owner: str, tables: list[Any]) -> None:
    """Create `owner`, a plain NOLOGIN role (so FORCE binds it), the tables' schemas, and as
    that role the SQLAlchemy `tables` with their indexes, in the given (dependency) order."""
    dialect = postgresql.dialect()
    conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(owner)))
    conn.execute(sql.SQL("GRANT CREATE ON SCHEMA public TO {}").format(sql.Identifier(owner)))
    for schema in sorted({t.schema for t in tables if t.schema} - {"public"}):
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {} AUTHORIZATION {}").format(
            sql.Identifier(schema), sql.Identifier(owner)))
    conn.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(owner)))
    for table in tables:
        conn.execute(str(CreateTable(table).compile(dialect=dialect)))
        for index in sorted(table.indexes, key=lambda i: i.name or ""):
            conn.execute(str(CreateIndex(index).compile(dialect=dialect)))
    conn.execute("RESET ROLE")


def drop_database(admin_url: str, database: str, role_prefix: str) -> None:
    """Drop `database` (disconnecting its sessions) and every role named `role_prefix`…;
    refuses an empty prefix, which would name every role of the cluster."""
    if not role_prefix:
        raise ConfigError(f"refusing to drop {database!r}: its roles need a non-empty prefix "
                          "(an empty one names every role of the cluster)")
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
            sql.Identifier(database)))
        roles = conn.execute("SELECT rolname FROM pg_catalog.pg_roles "
                             "WHERE starts_with(rolname, %s) ORDER BY 1", [role_prefix]).fetchall()
        for (role,) in roles:
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))
