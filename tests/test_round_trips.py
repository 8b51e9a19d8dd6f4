"""What `rlskit.psycopg.transaction` sends, read from libpq's own protocol trace: the
context travels with the BEGIN, and a rollback keeps the connection's prepared statements
(psycopg's ``conn.rollback()`` would send ``DEALLOCATE ALL``, so every query would be
planned and prepared again)."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from conftest import Example
from test_runtime import authenticator_url, member_context

from rlskit.psycopg import transaction

QUERY = "SELECT count(*) FROM flow WHERE id::text = %s"
WARM = 8  # psycopg prepares a query the sixth time it runs it (prepare_threshold 5)


@contextmanager
def traced(conn: psycopg.Connection | psycopg.AsyncConnection) -> Iterator[list[str]]:
    """The protocol messages exchanged inside the block, as libpq traces them."""
    messages: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "trace"
        with path.open("w") as trace:
            conn.pgconn.trace(trace.fileno())
            try:
                yield messages
            finally:
                conn.pgconn.untrace()
        messages += [" ".join(" ".join(line.split("\t")[3:]).split())
                     for line in path.read_text().splitlines()]


def round_trips(messages: list[str]) -> int:
    return sum(m.startswith("ReadyForQuery ") for m in messages)


def prepared(messages: list[str]) -> list[str]:
    """The named statements prepared (unnamed ones, as for BEGIN, are not kept)."""
    return [m for m in messages if m.startswith("Parse ") and not m.startswith('Parse ""')]


def binds_of_prepared(messages: list[str]) -> int:
    return sum(m.startswith("Bind ") and not m.startswith('Bind "" ""') for m in messages)


def failing(conn: psycopg.Connection, ctx: object, query: str = QUERY) -> None:
    with transaction(conn, ctx):
        conn.execute(query, ["x"]).fetchone()
        raise psycopg.Rollback()


def working(conn: psycopg.Connection, ctx: object) -> None:
    with transaction(conn, ctx):
        conn.execute(QUERY, ["x"]).fetchone()


def test_a_rollback_keeps_the_prepared_statements(example: Example) -> None:
    ctx = member_context(example)
    with psycopg.connect(authenticator_url(example)) as conn:
        for _ in range(WARM):
            working(conn, ctx)
        with traced(conn) as committed:
            working(conn, ctx)
        with traced(conn) as rolled_back:
            failing(conn, ctx)
        with traced(conn) as after:
            working(conn, ctx)
    assert round_trips(committed) == 3  # BEGIN with the context, the query, COMMIT
    assert round_trips(rolled_back) == 3, rolled_back  # ... ROLLBACK: no DEALLOCATE ALL
    assert round_trips(after) == 3, after
    assert not prepared(rolled_back + after)  # nothing planned or prepared again
    assert binds_of_prepared(committed) == binds_of_prepared(after) == 2  # context, query


def test_a_statement_first_prepared_in_a_rolled_back_transaction_is_forgotten(
        example: Example) -> None:
    """It may name an object the rollback undid: psycopg's rollback (DEALLOCATE ALL) runs,
    and the next transactions work, preparing again."""
    ctx = member_context(example)
    fresh = "SELECT count(*) FROM flow WHERE id::text <> %s"
    with psycopg.connect(authenticator_url(example)) as conn:
        for _ in range(WARM):
            working(conn, ctx)
        for _ in range(5):
            failing(conn, ctx, fresh)  # uses 1-5: not prepared yet, plain ROLLBACK
        with traced(conn) as preparing:
            failing(conn, ctx, fresh)  # the sixth use prepares it
        for _ in range(2):
            working(conn, ctx)
        with traced(conn) as after:
            working(conn, ctx)
    assert prepared(preparing)  # psycopg prepares in an exchange of its own, then:
    assert round_trips(preparing) == 5  # BEGIN, Parse, query, ROLLBACK, DEALLOCATE ALL
    assert "DEALLOCATE ALL" in " ".join(preparing)
    assert round_trips(after) == 3 and not prepared(after)


def test_an_error_rolls_back_without_forgetting(example: Example) -> None:
    ctx = member_context(example)
    with psycopg.connect(authenticator_url(example)) as conn:
        for _ in range(WARM):
            working(conn, ctx)
        with traced(conn) as failed, pytest.raises(psycopg.errors.DivisionByZero), \
                transaction(conn, ctx):
            conn.execute(QUERY, ["x"]).fetchone()
            conn.execute("SELECT 1 / 0")
        with traced(conn) as after:
            working(conn, ctx)
    assert "DEALLOCATE" not in " ".join(failed) and round_trips(failed) == 4
    assert round_trips(after) == 3 and not prepared(after)


def test_an_asyncio_rollback_keeps_the_prepared_statements(example: Example) -> None:
    ctx = member_context(example)

    async def run() -> tuple[list[str], list[str]]:
        async with await psycopg.AsyncConnection.connect(authenticator_url(example)) as conn:
            async def once(fail: bool) -> None:
                async with transaction(conn, ctx):
                    await (await conn.execute(QUERY, ["x"])).fetchone()
                    if fail:
                        raise psycopg.Rollback()

            for _ in range(WARM):
                await once(False)
            with traced(conn) as rolled_back:
                await once(True)
            with traced(conn) as after:
                await once(False)
        return rolled_back, after

    rolled_back, after = asyncio.run(run())
    assert round_trips(rolled_back) == round_trips(after) == 3
    assert not prepared(rolled_back + after)


def test_the_trace_reader_sees_deallocate_all(example: Example) -> None:
    """psycopg's own rollback, for contrast: the reader sees its extra round trip."""
    with psycopg.connect(authenticator_url(example)) as conn:
        for _ in range(WARM):
            conn.execute("SELECT %s::text", ["x"])
        conn.commit()
        conn.execute("SELECT %s::text", ["x"])
        with traced(conn) as rolled_back:
            conn.rollback()
    assert round_trips(rolled_back) == 2, rolled_back  # ROLLBACK, DEALLOCATE ALL
    assert "DEALLOCATE ALL" in " ".join(rolled_back)


def test_the_transaction_keeps_the_connections_characteristics(example: Example) -> None:
    """BEGIN carries the connection's isolation level, read-only and deferrable, as
    psycopg's own ``conn.transaction()`` does."""
    ctx = member_context(example)
    with psycopg.connect(authenticator_url(example)) as conn:
        conn.isolation_level = psycopg.IsolationLevel.SERIALIZABLE
        conn.read_only = True
        with transaction(conn, ctx):
            shown = conn.execute("SELECT current_setting('transaction_isolation'), "
                                 "current_setting('transaction_read_only'), "
                                 "current_setting('app.tenant_id')").fetchone()
            with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
                conn.execute("DELETE FROM flow")
        conn.isolation_level = conn.read_only = None
        with transaction(conn, ctx):
            default = conn.execute("SELECT current_setting('transaction_isolation')"
                                   ).fetchone()
    assert shown == ("serializable", "on", str(example.data.a.id))
    assert default == ("read committed",)
