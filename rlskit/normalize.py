"""Normalise the model's side of a comparison by a round trip through the server.

Inside one savepoint that is always rolled back, the model's helpers, policy expressions
and view queries are created next to the live objects and read back the way the catalog
prints them. A reformatted or re-qualified expression then compares equal to the live
one; any change of meaning does not.
"""

from __future__ import annotations

import dataclasses
import uuid

import psycopg
from psycopg import sql

from . import objects as o
from .ddl import create

__all__ = ["normalize"]


def _attempt(conn: psycopg.Connection, statements: list[sql.Composable]) -> bool:
    try:
        with conn.transaction():
            for stmt in statements:
                conn.execute(stmt)
    except psycopg.DatabaseError:
        return False  # left as written: it will differ, and the migration will say why
    return True


def normalize(conn: psycopg.Connection, target: list[o.DbObject], live_keys: set[tuple],
              pg_version: int) -> list[o.DbObject]:
    """`target` with server-printed helpers, expressions and queries where the live
    database has the same object (nothing is changed in the database)."""
    token = uuid.uuid4().hex[:8]
    out = list(target)
    with conn.transaction(force_rollback=True):
        for i, obj in enumerate(target):
            if obj.key not in live_keys:
                continue
            if isinstance(obj, o.HelperFunction):
                if _attempt(conn, [*create(o.Schema(obj.schema), pg_version),
                                   *create(obj, pg_version)]):
                    definition = conn.execute(
                        "SELECT pg_catalog.pg_get_functiondef(p.oid) FROM pg_catalog.pg_proc p "
                        "JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace "
                        "WHERE n.nspname = %s AND p.proname = %s",
                        [obj.schema, obj.name]).fetchone()[0]
                    out[i] = dataclasses.replace(obj, definition=definition)
            elif isinstance(obj, o.Policy):
                probe = dataclasses.replace(obj, name=f"rlskit_norm_{token}_{i}", roles=())
                if _attempt(conn, create(probe, pg_version)[:1]):
                    using, check = conn.execute(
                        "SELECT pg_catalog.pg_get_expr(polqual, polrelid), "
                        "pg_catalog.pg_get_expr(polwithcheck, polrelid) "
                        "FROM pg_catalog.pg_policy WHERE polname = %s "
                        "AND polrelid = %s::regclass",
                        [probe.name, sql.Identifier(obj.schema, obj.table).as_string()],
                    ).fetchone()
                    out[i] = dataclasses.replace(obj, using=using, with_check=check)
            elif isinstance(obj, o.View):
                probe = dataclasses.replace(obj, name=f"rlskit_norm_{token}_{i}")
                if _attempt(conn, create(probe, pg_version)[:1]):
                    query, columns = conn.execute(
                        "SELECT pg_catalog.pg_get_viewdef(c.oid, true), ARRAY(SELECT attname "
                        "FROM pg_catalog.pg_attribute WHERE attrelid = c.oid AND attnum > 0 "
                        "AND NOT attisdropped ORDER BY attnum) FROM pg_catalog.pg_class c "
                        "WHERE c.oid = %s::regclass",
                        [sql.Identifier(obj.schema, probe.name).as_string()]).fetchone()
                    out[i] = dataclasses.replace(obj, query=query, columns=tuple(columns))
    return out
