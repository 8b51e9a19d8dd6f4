"""SQLAlchemy 2 integration (sync and asyncio engines, Core and ORM sessions).

``install(engine, model)`` adds two engine events:

- ``begin``: every transaction starts in the context made current by
  ``with rlskit.as_context(ctx):`` — one statement on the psycopg connection underneath.
  A transaction begun with no current context raises `ContextError` (``require=False``:
  it runs as the connection role, which sees nothing).
- ``connect``: every new connection passes `rlskit.runtime.check_connection` first.
- ``reset``: a connection returned to the pool gets ``DISCARD ALL`` (role, settings,
  temporary tables, LISTEN); one that still holds a role or a model setting after it is
  invalidated, never served again.

Only the psycopg driver (``postgresql+psycopg://``) is supported.
"""

from __future__ import annotations

from typing import Any

import psycopg
from sqlalchemy import Engine, event
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import ConnectionPoolEntry, PoolResetState

from .context import current
from .errors import ConfigError, ContextError, UnsafeConnectionError
from .model import Model
from .psycopg import apply, apply_async, reset_async
from .psycopg import reset as reset_connection
from .runtime import check_connection, check_connection_async

__all__ = ["install"]


def install(engine: Engine | AsyncEngine, model: Model, *, require: bool = True,
            check: bool = True) -> None:
    """Apply the current request context at the start of every transaction of `engine`."""
    sync_engine = engine.sync_engine if isinstance(engine, AsyncEngine) else engine
    if sync_engine.dialect.driver != "psycopg":
        raise ConfigError(f"rlskit needs the psycopg driver (postgresql+psycopg://), not "
                          f"{sync_engine.dialect.driver!r}")

    def begin(conn: Connection) -> None:
        ctx = current()
        if ctx is None:
            if require:
                raise ContextError("transaction begun without a request context; run it "
                                   "inside 'with rlskit.as_context(ctx):'")
            return
        driver = conn.connection.driver_connection
        adapted: Any = conn.connection.dbapi_connection
        if isinstance(driver, psycopg.AsyncConnection):  # SQLAlchemy's documented bridge
            adapted.run_async(lambda d: apply_async(d, ctx))
        else:
            apply(_sync(driver), ctx)

    def connect(dbapi: Any, record: ConnectionPoolEntry) -> None:
        driver = record.driver_connection
        if isinstance(driver, psycopg.AsyncConnection):
            dbapi.run_async(lambda d: check_connection_async(d, model))
        else:
            check_connection(_sync(driver), model)

    def reset(dbapi: Any, record: ConnectionPoolEntry, state: PoolResetState) -> None:
        if state.terminate_only:  # being discarded anyway
            return
        driver = record.driver_connection
        try:
            if isinstance(driver, psycopg.AsyncConnection):
                dbapi.run_async(lambda d: d.rollback())
                dbapi.run_async(lambda d: reset_async(d, model))
            else:
                conn = _sync(driver)
                conn.rollback()
                reset_connection(conn, model)
        except UnsafeConnectionError as exc:
            record.invalidate(exc)

    event.listen(sync_engine, "begin", begin)
    event.listen(sync_engine.pool, "reset", reset)
    if check:
        event.listen(sync_engine, "connect", connect)


def _sync(driver: Any) -> psycopg.Connection:
    """The engine's psycopg connection (``install`` refused any other driver)."""
    if not isinstance(driver, psycopg.Connection):
        raise ConfigError(f"rlskit needs a psycopg connection, not {type(driver).__name__}")
    return driver
