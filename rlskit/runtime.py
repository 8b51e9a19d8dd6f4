"""What every integration checks: the start-up check and the reset check (the context
statement itself is `rlskit.wire`'s).

- `check_connection`: refuses a server release without the row-level security fixes, a
  connection role that is superuser, has BYPASSRLS or CREATEROLE, or can act as the owner
  of a protected table, and (sealed models) a context key the database does not accept or
  a clock too far from the database's.
- `leftovers_query` / `leftovers`: what a pool reads from a connection after resetting it,
  and what it refuses (a role or a setting that survived the reset).
"""

from __future__ import annotations

import time
from typing import Any

import psycopg
from psycopg import sql

from .errors import UnsafeConnectionError
from .keystore import KEY_STATUS
from .model import Model
from .releases import upgrade_needed
from .seal import ContextKey, current_key

__all__ = [
    "check_connection",
    "check_connection_async",
    "leftovers",
    "leftovers_query",
]


def leftovers_query(model: Model) -> tuple[sql.Composed, list[str]]:
    """A query returning the role and the model's settings a connection still holds."""
    settings = [model.setting_name(name) for name in model.claims]
    reads = [sql.SQL("coalesce(current_setting(%s, true), '')")] * len(settings)
    query = sql.SQL("SELECT current_user::text, session_user::text{}").format(
        sql.SQL("").join(sql.SQL(", ") + r for r in reads))
    return query, settings


def leftovers(row: tuple[Any, ...], settings: list[str]) -> list[str]:
    """What a connection still holds, from the row of `leftovers_query` (empty: clean)."""
    current, session, *values = row
    found = [f"role {current!r}"] if current != session else []
    found += [f"setting {name} = {value!r}" for name, value in zip(settings, values, strict=True)
              if value]
    return found


_CHECK = sql.SQL("""
SELECT 'superuser', r.rolname::text, NULL FROM pg_roles r
 WHERE r.rolsuper AND pg_has_role(session_user, r.oid, 'MEMBER')
UNION ALL
SELECT 'bypassrls', r.rolname::text, NULL FROM pg_roles r
 WHERE r.rolbypassrls AND NOT r.rolsuper AND pg_has_role(session_user, r.oid, 'MEMBER')
UNION ALL
SELECT 'createrole', r.rolname::text, NULL FROM pg_roles r
 WHERE r.rolcreaterole AND NOT r.rolsuper AND pg_has_role(session_user, r.oid, 'MEMBER')
UNION ALL
SELECT 'owner', pg_get_userbyid(c.relowner)::text, format('%%I.%%I', n.nspname, c.relname)
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  JOIN unnest(%s::text[], %s::text[]) AS t(s, r) ON n.nspname = t.s AND c.relname = t.r
 WHERE pg_has_role(session_user, c.relowner, 'MEMBER')
UNION ALL
SELECT 'session', session_user::text, NULL
ORDER BY 1, 2, 3
""")


def _check_params(model: Model) -> list[list[str]]:
    protected = [t for t in model.tables.values() if t.rls]
    return [[t.schema for t in protected], [t.name for t in protected]]


def _verdict(rows: list[tuple[str, str, str | None]], model: Model,
             server_version: int) -> None:
    session = next(role for kind, role, _ in rows if kind == "session")
    authenticators = [model.role_name(name) for name in model.authenticators]
    use = (f"connect as the model's authenticator {authenticators[0]!r} instead"
           if authenticators else "connect as a LOGIN role without these rights")

    def who(role: str) -> str:
        if role == session:
            return f"connection role {session!r} is"
        return f"connection role {session!r} can become {role!r}, which is"

    if ("superuser", session, None) in rows:  # nothing else matters
        rows = [("superuser", session, None)]
    old = upgrade_needed(server_version)
    problems = [old] if old else []
    for kind, role, _ in rows:
        if kind == "superuser":
            problems.append(f"{who(role)} a superuser (superusers bypass row-level security)")
        elif kind == "bypassrls":
            problems.append(f"{who(role)} BYPASSRLS (fix: ALTER ROLE {role} NOBYPASSRLS)")
        elif kind == "createrole":
            problems.append(f"{who(role)} CREATEROLE (it could grant itself the tables' owner; "
                            f"fix: ALTER ROLE {role} NOCREATEROLE)")
    owners: dict[str, list[str]] = {}
    for kind, role, table in rows:
        if kind == "owner" and table is not None:
            owners.setdefault(role, []).append(table)
    for owner, tables in owners.items():
        subject = (f"connection role {session!r}" if owner == session
                   else f"connection role {session!r} can become {owner!r}, which")
        problems.append(f"{subject} owns {', '.join(tables)} (owners can turn row-level "
                        "security off; let a separate migration role own the tables)")
    if problems:
        raise UnsafeConnectionError(f"unsafe connection for row-level security: "
                                    f"{'; '.join(problems)}; {use}")


def _key_query(model: Model, key: ContextKey) -> tuple[sql.Composed, list[str]]:
    query = sql.SQL("SELECT {}(%s, %s), extract(epoch FROM statement_timestamp())::float8"
                    ).format(sql.Identifier(model.helpers_schema, KEY_STATUS))
    return query, [key.kid, key.probe()]


def _key_verdict(row: tuple[Any, ...] | None, key: ContextKey) -> None:
    """Refuse to start with a key the database does not accept, or a clock so far off
    that seals expire (or live too long) by the database's clock. `row` is the key
    status and the database's time."""
    status, db_time = row or ("unknown", time.time())
    kid = key.kid
    if status != "ok":
        why = {"unknown": "is not known to the database (add it with `rlskit key rotate`, "
                          "or give the application the key that command printed)",
               "retired": "was retired (give the application the current key)",
               "mismatch": "does not match the database's key of that id"}[status]
        raise UnsafeConnectionError(f"the application's context key {kid!r} {why}")
    skew = db_time - time.time()
    if abs(skew) > key.ttl / 2:
        raise UnsafeConnectionError(
            f"this machine's clock is {abs(skew):.0f} s {'behind' if skew > 0 else 'ahead of'}"
            f" the database's, more than half the seal's lifetime ({key.ttl} s): "
            "synchronise the clocks or raise ttl in [tool.rlskit.context]")


def _no_verifier(model: Model) -> UnsafeConnectionError:
    return UnsafeConnectionError(
        f"the model seals its context but the database has no verifier "
        f"{model.helpers_schema}.{KEY_STATUS} the connection role may run: migrate it "
        "(rlskit migrate)")


def check_connection(conn: psycopg.Connection, model: Model) -> None:
    """Raise `UnsafeConnectionError` unless `conn`'s role is subject to row-level security
    on every table the model protects and, for a sealed model, the database accepts the
    application's context key. Run it once at start-up."""
    idle = conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    try:
        with conn.cursor() as cur:
            _verdict(cur.execute(_CHECK, _check_params(model)).fetchall(), model,
                     conn.info.server_version)
            if model.sealed:
                key = current_key()
                _key_verdict(cur.execute(*_key_query(model, key)).fetchone(), key)
    except (psycopg.errors.InsufficientPrivilege, psycopg.errors.UndefinedFunction):
        raise _no_verifier(model) from None
    finally:
        if idle and not conn.autocommit:
            conn.rollback()


async def check_connection_async(conn: psycopg.AsyncConnection, model: Model) -> None:
    """`check_connection` for an asyncio connection."""
    idle = conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    try:
        async with conn.cursor() as cur:
            await cur.execute(_CHECK, _check_params(model))
            _verdict(await cur.fetchall(), model, conn.info.server_version)
            if model.sealed:
                key = current_key()
                await cur.execute(*_key_query(model, key))
                _key_verdict(await cur.fetchone(), key)
    except (psycopg.errors.InsufficientPrivilege, psycopg.errors.UndefinedFunction):
        raise _no_verifier(model) from None
    finally:
        if idle and not conn.autocommit:
            await conn.rollback()
