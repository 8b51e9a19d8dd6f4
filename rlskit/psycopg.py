"""psycopg 3 integration: a transaction in the caller's context, and pool options.

``with rlskit.psycopg.transaction(conn, ctx):`` (or ``async with`` for an
`AsyncConnection`) begins a transaction and applies the context in the same round trip
(pipeline mode: BEGIN and the context statement travel together), then commits, or rolls
back on an exception. Nothing is set at session level, so the connection goes back to a
pool — or to PgBouncer in transaction mode — holding nothing of the caller.

``ConnectionPool(url, **pool_options(model))`` (``AsyncConnectionPool(url,
**async_pool_options(model))``) checks every new connection with
`rlskit.runtime.check_connection`, and resets every returned one, discarding it if it still
holds a role or one of the model's settings afterwards (a role or database default).
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

import psycopg
from psycopg.pq import TransactionStatus

from .context import RequestContext
from .errors import ContextError, UnsafeConnectionError
from .model import Model
from .runtime import (
    check_connection,
    check_connection_async,
    context_statement,
    leftovers,
    leftovers_query,
)

__all__ = ["apply", "apply_async", "async_pool_options", "pool_options", "transaction"]


def _check_idle(conn: psycopg.Connection | psycopg.AsyncConnection) -> None:
    if conn.info.transaction_status != TransactionStatus.IDLE:
        raise ContextError("a request context must start its own transaction, but the "
                           "connection is already in one; commit or roll back first")


def apply(conn: psycopg.Connection, ctx: RequestContext) -> None:
    """Begin a transaction on the idle `conn` and apply `ctx`, in one round trip."""
    _check_idle(conn)
    statement, params = context_statement(ctx)
    with conn.pipeline():
        if conn.autocommit:
            conn.execute("BEGIN")
        conn.execute(statement, params)


async def apply_async(conn: psycopg.AsyncConnection, ctx: RequestContext) -> None:
    """`apply` for an asyncio connection."""
    _check_idle(conn)
    statement, params = context_statement(ctx)
    async with conn.pipeline():
        if conn.autocommit:
            await conn.execute("BEGIN")
        await conn.execute(statement, params)


class transaction:  # noqa: N801 - used like a function, as psycopg's own conn.transaction()
    """``with transaction(conn, ctx):`` / ``async with transaction(aconn, ctx):`` — one
    transaction in `ctx`, committed on success and rolled back on an exception."""

    def __init__(self, conn: psycopg.Connection | psycopg.AsyncConnection,
                 ctx: RequestContext) -> None:
        if not isinstance(ctx, RequestContext):
            raise ContextError(f"transaction needs a RequestContext, got {type(ctx).__name__}")
        self.conn = conn
        self.ctx = ctx

    def __enter__(self) -> psycopg.Connection:
        conn = self.conn
        if not isinstance(conn, psycopg.Connection):
            raise TypeError("use 'async with' for an AsyncConnection")
        try:
            apply(conn, self.ctx)
        except BaseException:
            if conn.info.transaction_status != TransactionStatus.IDLE:
                conn.rollback()
            raise
        return conn

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        conn = self.conn
        assert isinstance(conn, psycopg.Connection)
        if conn.closed:
            return
        if kind is None:
            conn.commit()
        else:
            conn.rollback()

    async def __aenter__(self) -> psycopg.AsyncConnection:
        conn = self.conn
        if not isinstance(conn, psycopg.AsyncConnection):
            raise TypeError("use 'with' for a (sync) Connection")
        try:
            await apply_async(conn, self.ctx)
        except BaseException:
            if conn.info.transaction_status != TransactionStatus.IDLE:
                await conn.rollback()
            raise
        return conn

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        conn = self.conn
        assert isinstance(conn, psycopg.AsyncConnection)
        if conn.closed:
            return
        if kind is None:
            await conn.commit()
        else:
            await conn.rollback()


def _refuse(found: list[str]) -> None:
    if found:
        raise UnsafeConnectionError(
            f"connection still holds {', '.join(found)} after RESET ROLE and RESET ALL "
            "(a role or database default, e.g. ALTER ROLE ... SET); discarded")


def pool_options(model: Model) -> dict[str, Any]:
    """``configure`` and ``reset`` callbacks for `psycopg_pool.ConnectionPool`."""
    query, settings = leftovers_query(model)

    def configure(conn: psycopg.Connection) -> None:
        check_connection(conn, model)

    def reset(conn: psycopg.Connection) -> None:
        with conn.pipeline():
            conn.execute("RESET ROLE")
            conn.execute("RESET ALL")
            cursor = conn.execute(query, settings)
            conn.commit()
        _refuse(leftovers(cursor.fetchone(), settings))

    return {"configure": configure, "reset": reset}


def async_pool_options(model: Model) -> dict[str, Any]:
    """``configure`` and ``reset`` callbacks for `psycopg_pool.AsyncConnectionPool`."""
    query, settings = leftovers_query(model)

    async def configure(conn: psycopg.AsyncConnection) -> None:
        await check_connection_async(conn, model)

    async def reset(conn: psycopg.AsyncConnection) -> None:
        async with conn.pipeline():
            await conn.execute("RESET ROLE")
            await conn.execute("RESET ALL")
            cursor = await conn.execute(query, settings)
            await conn.commit()
        _refuse(leftovers(await cursor.fetchone(), settings))

    return {"configure": configure, "reset": reset}
