"""psycopg 3 integration: a transaction in the caller's context, and pool options.

``with rlskit.psycopg.transaction(conn, ctx):`` (or ``async with`` for an
`AsyncConnection`) begins a transaction and applies the whole context in one statement,
sent with the BEGIN (no round trip of its own), then commits, or rolls back on an
exception. Nothing is set at session level, so the connection goes back to a pool — or to
PgBouncer in transaction mode — holding nothing of the caller.

``ConnectionPool(url, **pool_options(model))`` (``AsyncConnectionPool(url,
**async_pool_options(model))``) checks every new connection with
`rlskit.runtime.check_connection`, and resets every returned one with ``DISCARD ALL`` (role,
settings, temporary tables, LISTEN, prepared statements), discarding it if it still holds a
role or one of the model's settings afterwards (a role or database default).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any

import psycopg
from psycopg.pq import PipelineStatus, TransactionStatus

from . import _wire as wire
from .context import RequestContext
from .errors import ContextError, UnsafeConnectionError
from .model import Model
from .rows import one
from .runtime import (
    check_connection,
    check_connection_async,
    leftovers,
    leftovers_query,
)
from .seal import ContextKey

__all__ = ["apply", "apply_async", "async_pool_options", "pool_options", "reset", "reset_async",
           "transaction"]


def apply(conn: psycopg.Connection, ctx: RequestContext, key: ContextKey | None = None
          ) -> None:
    """Begin a transaction on the idle `conn` and apply `ctx` (sealed with `key`, default
    the process's), in one exchange (psycopg then sees the transaction open and adds no
    BEGIN of its own)."""
    _check_manual(conn)
    wire.begin(conn, ctx, key)


async def apply_async(conn: psycopg.AsyncConnection, ctx: RequestContext,
                      key: ContextKey | None = None) -> None:
    """`apply` for an asyncio connection."""
    _check_manual(conn)
    await wire.begin_async(conn, ctx, key)


def _check_manual(conn: psycopg.Connection | psycopg.AsyncConnection) -> None:
    _check_start(conn)
    if conn.autocommit:
        raise ContextError("a request context needs a transaction; this connection is in "
                           "autocommit mode")


class transaction:  # noqa: N801 - used like a function, as psycopg's own conn.transaction()
    """``with transaction(conn, ctx):`` / ``async with transaction(aconn, ctx):`` — one
    transaction in `ctx`: ``BEGIN`` and the context statement go in one round trip (see
    `rlskit.wire`), then it commits, or rolls back on an exception (``raise
    psycopg.Rollback()`` rolls back quietly). Nested ``conn.transaction()`` blocks are
    savepoints. Inside the block the connection reports autocommit (the transaction is
    explicit); the setting is restored on exit. Enter it before ``conn.pipeline()``. A
    sealed context is signed with `key` (default: the process's key, see `rlskit.seal`)."""

    def __init__(self, conn: psycopg.Connection | psycopg.AsyncConnection,
                 ctx: RequestContext, key: ContextKey | None = None) -> None:
        if not isinstance(ctx, RequestContext):
            raise ContextError(f"transaction needs a RequestContext, got {type(ctx).__name__}")
        self.conn = conn
        self.ctx = ctx
        self.key = key

    def __enter__(self) -> psycopg.Connection:
        conn = self.conn
        if not isinstance(conn, psycopg.Connection):
            raise TypeError("use 'async with' for an AsyncConnection")
        _check_start(conn)
        self._autocommit = conn.autocommit
        self._mark = wire.mark(conn)
        wire.set_autocommit(conn, True)  # no BEGIN of psycopg's own: the exchange sends it
        try:
            wire.begin(conn, self.ctx, self.key)
        except BaseException:
            self._finish(self._rollback)
            raise
        return conn

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> bool:
        conn = self.conn
        if conn.closed:
            return False
        assert isinstance(conn, psycopg.Connection)
        ended = _ended(conn) and kind is None
        self._finish(conn.commit if kind is None else self._rollback)
        if ended:
            raise ContextError(_ENDED)
        return isinstance(exc, psycopg.Rollback)

    def _rollback(self) -> None:
        assert isinstance(self.conn, psycopg.Connection)
        wire.rollback(self.conn, self._mark)

    def _finish(self, end: Callable[[], None]) -> None:
        try:
            end()
        finally:
            if not self.conn.closed:
                wire.set_autocommit(self.conn, self._autocommit)

    async def __aenter__(self) -> psycopg.AsyncConnection:
        conn = self.conn
        if not isinstance(conn, psycopg.AsyncConnection):
            raise TypeError("use 'with' for a (sync) Connection")
        _check_start(conn)
        self._autocommit = conn.autocommit
        self._mark = wire.mark(conn)
        wire.set_autocommit(conn, True)
        try:
            await wire.begin_async(conn, self.ctx, self.key)
        except BaseException:
            await self._afinish(self._arollback)
            raise
        return conn

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> bool:
        conn = self.conn
        if conn.closed:
            return False
        assert isinstance(conn, psycopg.AsyncConnection)
        ended = _ended(conn) and kind is None
        await self._afinish(conn.commit if kind is None else self._arollback)
        if ended:
            raise ContextError(_ENDED)
        return isinstance(exc, psycopg.Rollback)

    async def _arollback(self) -> None:
        assert isinstance(self.conn, psycopg.AsyncConnection)
        await wire.rollback_async(self.conn, self._mark)

    async def _afinish(self, end: Callable[[], Awaitable[None]]) -> None:
        conn = self.conn
        assert isinstance(conn, psycopg.AsyncConnection)
        try:
            await end()
        finally:
            if not conn.closed:
                wire.set_autocommit(conn, self._autocommit)


_ENDED = ("the request context's transaction was ended inside its block (commit() or "
          "rollback()); what followed ran without the context")


def _check_start(conn: psycopg.Connection | psycopg.AsyncConnection) -> None:
    if conn.pgconn.transaction_status != TransactionStatus.IDLE:
        raise ContextError("a request context must start its own transaction, but the "
                           "connection is already in one; commit or roll back first")
    if conn.pgconn.pipeline_status != PipelineStatus.OFF:
        raise ContextError("enter the request context's transaction before conn.pipeline(), "
                           "not inside it")


def _ended(conn: psycopg.Connection | psycopg.AsyncConnection) -> bool:
    return conn.pgconn.transaction_status == TransactionStatus.IDLE


def _refuse(found: list[str]) -> None:
    if found:
        raise UnsafeConnectionError(
            f"connection still holds {', '.join(found)} after DISCARD ALL (a role or "
            "database default, e.g. ALTER ROLE ... SET); discarded")


def _forget_prepared(conn: psycopg.Connection | psycopg.AsyncConnection) -> None:
    """After DISCARD ALL the server holds no prepared statement: rlskit's and psycopg's
    caches must agree (psycopg notices a DISCARD ALL only the first time it sees one)."""
    wire.forget(conn)
    conn._prepared.clear()


def reset(conn: psycopg.Connection, model: Model) -> None:
    """Give an idle connection back its fresh state (``DISCARD ALL``: role, settings,
    temporary tables, LISTEN, prepared statements and advisory locks), or raise
    `UnsafeConnectionError` if a role or a model setting survives it."""
    query, settings = leftovers_query(model)
    autocommit = conn.autocommit
    conn.autocommit = True  # DISCARD ALL cannot run in a transaction block
    try:
        conn.execute("DISCARD ALL")
        _forget_prepared(conn)
        row = one(conn.execute(query, settings))
    finally:
        conn.autocommit = autocommit
    _refuse(leftovers(row, settings))


async def reset_async(conn: psycopg.AsyncConnection, model: Model) -> None:
    """`reset` for an asyncio connection."""
    query, settings = leftovers_query(model)
    autocommit = conn.autocommit
    await conn.set_autocommit(True)
    try:
        await conn.execute("DISCARD ALL")
        _forget_prepared(conn)
        row = await (await conn.execute(query, settings)).fetchone()
        assert row is not None  # one row, always
    finally:
        await conn.set_autocommit(autocommit)
    _refuse(leftovers(row, settings))


def pool_options(model: Model) -> dict[str, Any]:
    """``configure`` and ``reset`` callbacks for `psycopg_pool.ConnectionPool`."""

    def configure(conn: psycopg.Connection) -> None:
        check_connection(conn, model)

    return {"configure": configure, "reset": lambda conn: reset(conn, model)}


def async_pool_options(model: Model) -> dict[str, Any]:
    """``configure`` and ``reset`` callbacks for `psycopg_pool.AsyncConnectionPool`."""

    async def configure(conn: psycopg.AsyncConnection) -> None:
        await check_connection_async(conn, model)

    async def reset_pooled(conn: psycopg.AsyncConnection) -> None:
        await reset_async(conn, model)

    return {"configure": configure, "reset": reset_pooled}
