"""Throwaway databases (tests, the demo, verify): tables created from SQLAlchemy
definitions by a plain owner role, dropped together with the roles of their prefix."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import psycopg
from psycopg import sql
from sqlalchemy.dialects import postgresql
from sqlalchemy.schema import CreateIndex, CreateTable

from .errors import ConfigError

__all__ = ["create_tables", "drop_database"]


def create_tables(conn: psycopg.Connection, owner: str, tables: Iterable[Any]) -> None:
    """Create `owner`, a plain LOGIN role (so FORCE binds it), and as that role the
    SQLAlchemy `tables` with their indexes, in the given (dependency) order."""
    dialect = postgresql.dialect()
    conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(owner)))
    conn.execute(sql.SQL("GRANT CREATE ON SCHEMA public TO {}").format(sql.Identifier(owner)))
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
