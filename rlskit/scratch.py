"""Throwaway databases (tests, the demo): dropped together with the roles of their prefix."""

from __future__ import annotations

import psycopg
from psycopg import sql

from .errors import ConfigError

__all__ = ["drop_database"]


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
