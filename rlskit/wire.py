"""BEGIN and the context statement in one round trip, sent through libpq itself.

psycopg's pipeline mode would do the same exchange, but its Python bookkeeping costs more
than the round trip it saves on a small transaction. Here the connection's `PGconn` enters
libpq's pipeline mode for one exchange: ``BEGIN``, the context statement (prepared once per
connection, unless ``prepare_threshold`` is None, as for PgBouncer without prepared
statement support), a sync; then it reads both results and leaves pipeline mode.

`exchange` is a generator in psycopg's style (it yields the socket event it waits for), so
the connection's own ``wait`` drives it, blocking (`begin`) or in asyncio (`begin_async`).
"""

from __future__ import annotations

import weakref
from collections.abc import Generator
from functools import lru_cache

import psycopg
from psycopg import errors
from psycopg.pq import DiagnosticField, ExecStatus, PGresult, TransactionStatus
from psycopg.waiting import Wait

from .context import RequestContext
from .runtime import context_params, context_statement

__all__ = ["begin", "begin_async", "exchange"]

_LOST = b"26000"  # invalid_sql_statement_name: the prepared statement is gone
_prepared: weakref.WeakKeyDictionary[object, set[bytes]] = weakref.WeakKeyDictionary()


@lru_cache(maxsize=32)
def _statement(settings: int) -> tuple[bytes, bytes]:
    """`context_statement`'s query in libpq's ``$n`` style, and its prepared name."""
    first, *rest = context_statement(settings=settings).split(b"%s")
    query = first + b"".join(b"$%d%s" % (n, part) for n, part in enumerate(rest, 1))
    return query, b"rlskit_context_%d" % settings


def exchange(conn: psycopg.Connection | psycopg.AsyncConnection, ctx: RequestContext
             ) -> Generator[Wait, object, None]:
    """Begin a transaction on idle `conn` and apply `ctx`, yielding whenever it must wait
    for the socket. On an error the transaction is left aborted and the error raised (the
    caller rolls back). A prepared statement the server has lost (``DEALLOCATE ALL``,
    another server behind a pooler) is prepared again in a second exchange."""
    query, name = _statement(len(ctx.settings))
    encoding = conn.info.encoding
    values = [value.encode(encoding) for value in context_params(ctx)]
    known = _prepared.setdefault(conn, set()) if conn.prepare_threshold is not None else None
    for attempt in (1, 2):
        prepare = known is not None and name not in known
        results = yield from _send(conn.pgconn, query, values,
                                   None if known is None else name, prepare)
        if prepare and results["prepare"].status == ExecStatus.COMMAND_OK:
            known.add(name)  # type: ignore[union-attr]  # prepared even if EXECUTE fails
        failed = next((r for r in results.values() if r.status == ExecStatus.FATAL_ERROR),
                      None)
        if failed is None:
            return
        lost = failed.error_field(DiagnosticField.SQLSTATE) == _LOST
        if not (lost and known is not None and attempt == 1):
            raise errors.error_from_result(failed, encoding=encoding)
        known.discard(name)


def _send(pgconn: psycopg.pq.abc.PGconn, query: bytes, values: list[bytes],
          name: bytes | None, prepare: bool
          ) -> Generator[Wait, object, dict[str, PGresult]]:
    """One pipeline: ROLLBACK (after a failed attempt), BEGIN, the statement (unnamed, or
    as prepared statement `name`, prepared first if `prepare`) and a sync; each command's
    result."""
    sent = []
    pgconn.enter_pipeline_mode()
    try:
        if pgconn.transaction_status != TransactionStatus.IDLE:
            pgconn.send_query_params(b"ROLLBACK", None)
            sent.append("rollback")
        pgconn.send_query_params(b"BEGIN", None)
        sent.append("begin")
        if name is None:
            pgconn.send_query_params(query, values)
        else:
            if prepare:
                pgconn.send_prepare(name, query)
                sent.append("prepare")
            pgconn.send_query_prepared(name, values)
        sent.append("execute")
        pgconn.pipeline_sync()
        while pgconn.flush():
            yield Wait.W
        results = yield from _results(pgconn)
    finally:
        pgconn.exit_pipeline_mode()
    return dict(zip(sent, results, strict=True))


def _results(pgconn: psycopg.pq.abc.PGconn) -> Generator[Wait, object, list[PGresult]]:
    """Every result up to the pipeline's sync point."""
    results = []
    while True:
        pgconn.consume_input()
        while pgconn.is_busy():
            yield Wait.R
            pgconn.consume_input()
        result = pgconn.get_result()
        if result is None:
            continue  # the end of one query's results
        if result.status == ExecStatus.PIPELINE_SYNC:
            return results
        results.append(result)


def begin(conn: psycopg.Connection, ctx: RequestContext) -> None:
    """`exchange` on a blocking connection, waited for as psycopg waits (Ctrl-C cancels)."""
    with conn.lock:
        conn.wait(exchange(conn, ctx))


async def begin_async(conn: psycopg.AsyncConnection, ctx: RequestContext) -> None:
    """`exchange` on an asyncio connection."""
    async with conn.lock:
        await conn.wait(exchange(conn, ctx))
