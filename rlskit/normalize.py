"""Normalise the model's side of a comparison by a round trip through the server.

Inside one savepoint that is always rolled back, the model's helpers, policy expressions
and view queries are created next to the live objects (as probes with names of their own)
and read back the way the catalog prints them. A reformatted or re-qualified expression
then compares equal to the live one; any change of meaning does not. All probes go to the
server in one round trip; only if one fails are they retried one by one, and a probe that
fails alone is left as written (it will differ, and the migration will say why).
"""

from __future__ import annotations

import dataclasses
import uuid

import psycopg
from psycopg import sql

from . import objects as o
from .ddl import create
from .render import render

__all__ = ["normalize"]

_READ_POLICIES = """
SELECT p.polname, pg_catalog.pg_get_expr(p.polqual, p.polrelid),
       pg_catalog.pg_get_expr(p.polwithcheck, p.polrelid)
FROM pg_catalog.pg_policy p WHERE starts_with(p.polname, %s)"""

_READ_VIEWS = """
SELECT c.relname, pg_catalog.pg_get_viewdef(c.oid, true),
       ARRAY(SELECT a.attname FROM pg_catalog.pg_attribute a WHERE a.attrelid = c.oid
             AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum)
FROM pg_catalog.pg_class c WHERE c.relkind = 'v' AND starts_with(c.relname, %s)"""

_READ_FUNCTIONS = """
SELECT p.proname, pg_catalog.pg_get_functiondef(p.oid)
FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname = %s"""


def _run(conn: psycopg.Connection, statements: list[sql.Composable]) -> bool:
    """Run `statements` in one round trip inside a savepoint; False if any failed."""
    if not statements:
        return True
    try:
        with conn.transaction():
            conn.execute(";\n".join(render(s) for s in statements))
    except psycopg.DatabaseError:
        return False
    return True


def normalize(conn: psycopg.Connection, target: list[o.DbObject], live_keys: set[tuple],
              pg_version: int) -> list[o.DbObject]:
    """`target` with server-printed helpers, expressions and queries where the live
    database has the same object (nothing is changed in the database)."""
    prefix = f"rlskit_norm_{uuid.uuid4().hex[:8]}_"
    probes: dict[int, list[sql.Composable]] = {}
    helper_schemas = set()
    for i, obj in enumerate(target):
        if obj.key not in live_keys:
            continue
        if isinstance(obj, o.HelperFunction):
            probes[i] = create(obj, pg_version)
            helper_schemas.add(obj.schema)
        elif isinstance(obj, o.DbPolicy):
            probe = dataclasses.replace(obj, name=f"{prefix}{i}", roles=())
            probes[i] = create(probe, pg_version)[:1]
        elif isinstance(obj, o.DbView):
            probes[i] = create(dataclasses.replace(obj, name=f"{prefix}{i}"), pg_version)[:1]
    out = list(target)
    with conn.transaction(force_rollback=True):
        if not _run(conn, [s for stmts in probes.values() for s in stmts]):
            probes = {i: stmts for i, stmts in probes.items() if _run(conn, stmts)}
        policies = {name: rest for name, *rest in conn.execute(_READ_POLICIES, [prefix])}
        views = {name: rest for name, *rest in conn.execute(_READ_VIEWS, [prefix])}
        functions = {(schema, name): definition for schema in helper_schemas
                     for name, definition in conn.execute(_READ_FUNCTIONS, [schema])}
    for i in probes:
        obj = target[i]
        if isinstance(obj, o.HelperFunction):
            out[i] = dataclasses.replace(obj, definition=functions[(obj.schema, obj.name)])
        elif isinstance(obj, o.DbPolicy):
            using, check = policies[f"{prefix}{i}"]
            out[i] = dataclasses.replace(obj, using=using, with_check=check)
        elif isinstance(obj, o.DbView):
            query, columns = views[f"{prefix}{i}"]
            out[i] = dataclasses.replace(obj, query=query, columns=tuple(columns))
    return out
