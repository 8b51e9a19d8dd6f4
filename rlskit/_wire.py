"""BEGIN and the context statement in one round trip, sent through libpq itself.

The context statement is ``SELECT set_config('role', $1, true), set_config('app.tenant_id',
$2, true), …, set_config('rlskit.seal', $n, true)``: ``set_config('role', …, true)`` is
``SET LOCAL ROLE``, the role, every value and the seal (`rlskit.seal`) travel as bind
parameters, the setting names (the model's, quoted by psycopg) are part of the statement,
and everything ends with the transaction.

psycopg's pipeline mode could send it with the BEGIN, but its Python bookkeeping costs more
than the round trip it saves on a small transaction. Here the connection's `PGconn` enters
libpq's pipeline mode for one exchange: ``BEGIN``, the context statement (prepared once per
connection, unless ``prepare_threshold`` is None, as for PgBouncer before 1.21), a sync;
then it reads the results (with psycopg's own send and fetch generators) and leaves
pipeline mode. `exchange` is a generator in psycopg's style (it yields the socket event it
waits for), so the connection's own ``wait`` drives it, blocking (`begin`) or in asyncio
(`begin_async`).
"""

from __future__ import annotations

import hashlib
import weakref
from collections.abc import Generator, Iterable
from functools import lru_cache

import psycopg
from psycopg import IsolationLevel, errors, generators, sql
from psycopg.pq import DiagnosticField, ExecStatus, TransactionStatus
from psycopg.waiting import Wait

from .context import RequestContext
from .seal import SEAL_SETTING, ContextKey, seal_setting, session_settings

__all__ = ["begin", "begin_async", "context_statement", "exchange", "forget", "mark",
           "propagated_script", "rollback", "rollback_async", "set_autocommit", "set_local"]

_LOST = b"26000"  # invalid_sql_statement_name: the prepared statement is gone
_prepared: weakref.WeakKeyDictionary[object, set[bytes]] = weakref.WeakKeyDictionary()


@lru_cache(maxsize=16)
def _begin(isolation: IsolationLevel | None, read_only: bool | None, deferrable: bool | None
           ) -> bytes:
    """BEGIN with the connection's transaction characteristics, as psycopg writes it."""
    parts = ["BEGIN"]
    if isolation is not None:
        parts.append("ISOLATION LEVEL " + IsolationLevel(isolation).name.replace("_", " "))
    if read_only is not None:
        parts.append("READ ONLY" if read_only else "READ WRITE")
    if deferrable is not None:
        parts.append("DEFERRABLE" if deferrable else "NOT DEFERRABLE")
    return " ".join(parts).encode()


@lru_cache(maxsize=64)
def context_statement(names: tuple[str, ...]) -> tuple[bytes, bytes]:
    """The context statement setting the role and the settings `names` (values ``$1``…:
    the role, then each setting's value), and its prepared statement name."""
    calls: list[sql.Composable] = [sql.SQL("set_config('role', $1, true)")]
    calls += [sql.SQL("set_config({}, ${}, true)").format(sql.Literal(name), sql.SQL(str(i)))
              for i, name in enumerate(names, 2)]
    query = sql.SQL("SELECT {}").format(sql.SQL(", ").join(calls)).as_bytes()
    return query, b"rlskit_context_" + hashlib.sha1(query).hexdigest()[:16].encode()


@lru_cache(maxsize=1024)
def _plan(role: str, settings: tuple[tuple[str, str], ...], sealed: bool, encoding: str
          ) -> tuple[bytes, bytes, tuple[bytes, ...]]:
    """The context statement, its name and its values but the seal's (`context_statement`),
    for a context that sets `role` and `settings`; the values as a client in `encoding`
    sends them. Cached: a caller's transactions repeat its context."""
    names = tuple(setting for setting, _ in settings) + ((SEAL_SETTING,) if sealed else ())
    query, name = context_statement(names)
    return query, name, (role.encode(encoding), *(v.encode(encoding) for _, v in settings))


def set_local(role: str | None, settings: Iterable[tuple[str, str]]
              ) -> list[sql.SQL | sql.Composed]:
    """`role` and `settings` as ``SET LOCAL`` commands, which Citus sends on to its workers
    (not ``set_config``) when ``citus.propagate_set_commands`` is ``local``, the first of
    them. Values are literals here: SET takes no parameters."""
    commands: list[sql.SQL | sql.Composed] = [
        sql.SQL("SET LOCAL citus.propagate_set_commands = 'local'")]
    if role is not None:
        commands.append(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(role)))
    return commands + [sql.SQL("SET LOCAL {} = {}").format(sql.Identifier(*name.split(".")),
                                                           sql.Literal(value))
                       for name, value in settings]


def propagated_script(conn: psycopg.Connection | psycopg.AsyncConnection, ctx: RequestContext,
                      key: ContextKey | None, begin: bytes) -> bytes:
    """BEGIN and the context as ``SET LOCAL`` commands (see `set_local`), one simple query,
    the values quoted by psycopg for `conn`'s server."""
    return sql.SQL("; ").join([sql.SQL(begin.decode()),
                               *set_local(ctx.role, session_settings(ctx, key))]).as_bytes(conn)


def _simple(conn: psycopg.Connection | psycopg.AsyncConnection, query: bytes
            ) -> Generator[Wait, object, None]:
    """One simple-protocol exchange (statements separated by ``;``); its first error
    raised."""
    conn.pgconn.send_query(query)
    results = yield from generators.execute(conn.pgconn)
    failed = next((r for r in results if r.status == ExecStatus.FATAL_ERROR), None)
    if failed is not None:
        raise errors.error_from_result(failed, encoding=conn.info.encoding)


def exchange(conn: psycopg.Connection | psycopg.AsyncConnection, ctx: RequestContext,
             key: ContextKey | None = None) -> Generator[Wait, object, None]:
    """Begin a transaction on idle `conn` and apply `ctx`, yielding whenever it must wait
    for the socket. On an error the transaction is left aborted and the error raised (the
    caller rolls back). A prepared statement the server has lost (``DEALLOCATE ALL``,
    another server behind a pooler) is prepared again in a second exchange. A sealed
    context is signed with `key` (default: the process's, `rlskit.seal.current_key`)."""
    if ctx.propagated:
        yield from _simple(conn, propagated_script(
            conn, ctx, key, _begin(conn.isolation_level, conn.read_only, conn.deferrable)))
        return
    pgconn = conn.pgconn
    encoding = conn.info.encoding
    query, name, values = _plan(ctx.role, ctx.settings + ctx.limits, ctx.sealed, encoding)
    if ctx.sealed:  # signed now: the seal carries its expiry
        values = (*values, seal_setting(ctx.role, ctx.settings, key)[1].encode(encoding))
    known = _prepared.setdefault(conn, set()) if conn.prepare_threshold is not None else None
    begin = _begin(conn.isolation_level, conn.read_only, conn.deferrable)
    for attempt in (1, 2):
        prepare = known is not None and name not in known
        pgconn.enter_pipeline_mode()
        try:
            rollback = pgconn.transaction_status != TransactionStatus.IDLE
            if rollback:  # of a failed attempt
                pgconn.send_query_params(b"ROLLBACK", None)
            pgconn.send_query_params(begin, None)
            if known is None:
                pgconn.send_query_params(query, values)
            else:
                if prepare:
                    pgconn.send_prepare(name, query)
                pgconn.send_query_prepared(name, values)
            pgconn.pipeline_sync()
            yield from generators.send(pgconn)
            results = []
            for _ in range(2 + prepare + rollback):  # one batch per command, then the sync
                results += yield from generators.fetch_many(pgconn)
            yield from generators.fetch_many(pgconn)
        finally:
            pgconn.exit_pipeline_mode()
        if prepare and results[-2].status == ExecStatus.COMMAND_OK:
            known.add(name)  # type: ignore[union-attr]  # prepared even if EXECUTE failed
        failed = next((r for r in results if r.status == ExecStatus.FATAL_ERROR), None)
        if failed is None:
            return
        lost = failed.error_field(DiagnosticField.SQLSTATE) == _LOST
        if not (lost and known is not None and attempt == 1):
            raise errors.error_from_result(failed, encoding=encoding)
        known.discard(name)


def set_autocommit(conn: psycopg.Connection | psycopg.AsyncConnection, value: bool) -> None:
    """psycopg's autocommit flag, on a connection with no transaction open: psycopg's own
    setter checks just that, in a wait of its own (a blocking or asyncio round of its
    loop); the caller has checked."""
    conn._autocommit = value


def mark(conn: psycopg.Connection | psycopg.AsyncConnection) -> int:
    """How many statements psycopg has prepared on `conn` so far (its names are numbered)."""
    return conn._prepared._prepared_idx



def rollback(conn: psycopg.Connection, since: int) -> None:
    """Roll back the transaction begun when psycopg's count of prepared statements was
    `since` (`mark`). psycopg's own rollback also sends ``DEALLOCATE ALL``, so that every
    query is planned and prepared again; that is needed only when the transaction
    prepared a statement of its own, which may name an object the rollback undoes: then
    psycopg's rollback runs, otherwise a plain ROLLBACK keeps every statement."""
    if mark(conn) != since:
        conn.rollback()
        return
    with conn.lock:
        conn.wait(_simple(conn, b"ROLLBACK"))  # prepared statements outlive it


async def rollback_async(conn: psycopg.AsyncConnection, since: int) -> None:
    """`rollback` for an asyncio connection."""
    if mark(conn) != since:
        await conn.rollback()
        return
    async with conn.lock:
        await conn.wait(_simple(conn, b"ROLLBACK"))


def forget(conn: psycopg.Connection | psycopg.AsyncConnection) -> None:
    """Forget the statements prepared on `conn` (after ``DISCARD ALL``)."""
    _prepared.pop(conn, None)


def begin(conn: psycopg.Connection, ctx: RequestContext, key: ContextKey | None = None
          ) -> None:
    """`exchange` on a blocking connection, waited for as psycopg waits (Ctrl-C cancels)."""
    with conn.lock:
        conn.wait(exchange(conn, ctx, key))


async def begin_async(conn: psycopg.AsyncConnection, ctx: RequestContext,
                      key: ContextKey | None = None) -> None:
    """`exchange` on an asyncio connection."""
    async with conn.lock:
        await conn.wait(exchange(conn, ctx, key))
