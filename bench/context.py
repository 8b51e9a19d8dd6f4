"""Context cost: small transactions (one primary-key SELECT) with rlskit's context applied
vs without, on the same connection, interleaved in the same run.

Families: psycopg sync, psycopg asyncio, SQLAlchemy Core (an installed engine, with and
without a current context). rlskit's context is sealed (the example's default); an
unsealed variant of the same context shows what signing costs. A naive variant (SET LOCAL
ROLE and set_config as statements of their own) shows what the one-round-trip form saves.
Beside the timings, a deterministic check counts protocol round trips (ReadyForQuery
messages in a libpq trace): with `rlskit.psycopg.transaction` and with the SQLAlchemy hook
the context travels with the BEGIN (no extra round trip).
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import statistics
import tempfile
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
from psycopg import generators, sql
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from rlskit import _wire as wire
from rlskit.context import RequestContext, as_context, for_role
from rlskit.examples.install import install
from rlskit.examples.saas import build_model
from rlskit.model import Model
from rlskit.psycopg import transaction
from rlskit.seal import ContextKey, session_settings, use_key
from rlskit.sqlalchemy import install as install_engine
from rlskit.testing import open_cluster
from rlskit.urls import sqlalchemy_url

from .timing import interleaved, interleaved_async

ITEMS = 1000
CALLERS = 4096  # distinct contexts taken in turn: more than rlskit caches
QUERY = "SELECT payload FROM bench_item WHERE id = %s"


def _prepare(url: str, prefix: str) -> tuple[Model, RequestContext]:
    """The example model and a plain lookup table both the app and its roles may read; the
    model and a member's context in tenant A (sealed with a key of the run's own)."""
    model = build_model(role_prefix=prefix)
    use_key(ContextKey.generate("bench"))
    data = install(url, model, prefix + "owner")
    with psycopg.connect(url) as conn:
        conn.execute("CREATE TABLE bench_item (id int PRIMARY KEY, payload text NOT NULL)")
        conn.execute("INSERT INTO bench_item SELECT g, md5(g::text) "
                     "FROM generate_series(1, %s) g", [ITEMS])
        conn.execute(sql.SQL("GRANT SELECT ON bench_item TO {}, {}").format(
            sql.Identifier(model.role_name("app_authenticator")),
            sql.Identifier(model.role_name("member"))))
    return model, for_role(model, "member", tenant_id=data.a.id, user_id=data.a.member)


def _round_trips(conn: psycopg.Connection, work: Callable[[], None]) -> int:
    with tempfile.TemporaryFile() as trace:
        conn.pgconn.trace(trace.fileno())
        try:
            work()
        finally:
            conn.pgconn.untrace()
        trace.seek(0)
        return trace.read().decode().count("\tReadyForQuery")


def _floor(conn: psycopg.Connection, ctx: RequestContext) -> Callable[[int], None]:
    """The least a context sent as a statement can cost: what `rlskit.psycopg.transaction`
    sends (BEGIN and a prepared statement binding the role and the same values, in one
    exchange, then the query and COMMIT) with a statement that sets nothing."""
    values = [ctx.role.encode(), *(v.encode() for _, v in session_settings(ctx))]
    noop = ("SELECT " + ", ".join(f"${i}::text" for i in range(1, len(values) + 1))).encode()
    name = b"bench_floor"
    conn.pgconn.prepare(name, noop)

    def exchange() -> Iterator[Any]:
        pgconn = conn.pgconn
        pgconn.enter_pipeline_mode()
        try:
            pgconn.send_query_params(b"BEGIN", None)
            pgconn.send_query_prepared(name, values)
            pgconn.pipeline_sync()
            yield from generators.send(pgconn)
            for _ in range(3):  # BEGIN, the statement, the sync
                yield from generators.fetch_many(pgconn)
        finally:
            pgconn.exit_pipeline_mode()

    def floor(i: int) -> None:
        wire.set_autocommit(conn, True)
        conn.wait(exchange())
        conn.execute(QUERY, [i]).fetchone()
        conn.commit()
        wire.set_autocommit(conn, False)

    return floor


def run(quick: bool = False) -> dict:
    batch, rounds = (200, 3) if quick else (2000, 7)
    with open_cluster() as cluster, \
            cluster.database() as db:
        model, ctx = _prepare(db.url, db.role_prefix)
        app_url = cluster.url(db.name, user=model.role_name("app_authenticator"))
        rates: dict[str, list[float]] = {}
        cpu: dict[str, list[float]] = {}
        with psycopg.connect(app_url) as conn:
            set_role = sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(ctx.role))
            settings = sql.SQL("SELECT {}").format(sql.SQL(", ").join(
                [sql.SQL("set_config(%s, %s, true)")] * len(ctx.settings)))
            flat = [v for pair in ctx.settings for v in pair]

            def bare(i: int) -> None:  # psycopg's implicit BEGIN, then COMMIT
                conn.execute(QUERY, [i]).fetchone()
                conn.commit()

            def plain(i: int) -> None:
                with conn.transaction():
                    conn.execute(QUERY, [i]).fetchone()

            def rlskit(i: int) -> None:
                with transaction(conn, ctx):
                    conn.execute(QUERY, [i]).fetchone()

            def rolled_back(i: int) -> None:
                with transaction(conn, ctx):
                    conn.execute(QUERY, [i]).fetchone()
                    raise psycopg.Rollback()

            def plain_rolled_back(i: int) -> None:
                with conn.transaction():
                    conn.execute(QUERY, [i]).fetchone()
                    raise psycopg.Rollback()

            callers = itertools.cycle([dataclasses.replace(ctx, settings=tuple(
                (name, str(uuid.uuid4()) if name.endswith("user_id") else value)
                for name, value in ctx.settings)) for _ in range(CALLERS)])

            def new_caller(i: int) -> None:  # no cache helps: a context not seen lately
                with transaction(conn, next(callers)):
                    conn.execute(QUERY, [i]).fetchone()

            def unsealed(i: int) -> None:
                with transaction(conn, unsealed_ctx):
                    conn.execute(QUERY, [i]).fetchone()

            def naive(i: int) -> None:
                with conn.transaction():
                    conn.execute(set_role)
                    conn.execute(settings, flat)
                    conn.execute(QUERY, [i]).fetchone()

            unsealed_ctx = dataclasses.replace(ctx, sealed=False)
            variants = {"psycopg_bare": bare, "psycopg_plain": plain, "psycopg_rlskit": rlskit,
                        "psycopg_new_caller": new_caller, "psycopg_unsealed": unsealed,
                        "psycopg_floor": _floor(conn, unsealed_ctx), "psycopg_naive": naive}
            for _ in range(6):  # psycopg prepares the query on its sixth run: before tracing
                for f in variants.values():
                    f(1)
            trips = {name: _round_trips(conn, lambda f=f: f(1)) for name, f in variants.items()}
            for _ in range(8):  # psycopg prepares the query on its sixth run
                rlskit(1)
            trips["psycopg_rlskit_rollback"] = _round_trips(conn, lambda: rolled_back(1))
            trips["psycopg_rlskit_after_rollback"] = _round_trips(conn, lambda: rlskit(1))
            interleaved(variants, batch, rounds, rates, cpu, items=ITEMS)
            interleaved({"psycopg_plain_rollback": plain_rolled_back,
                         "psycopg_rlskit_rollback": rolled_back}, batch, rounds, rates,
                        items=ITEMS)

        async def async_rounds() -> None:
            aconn = await psycopg.AsyncConnection.connect(app_url)
            async with aconn:
                async def aplain(i: int) -> None:
                    async with aconn.transaction():
                        await (await aconn.execute(QUERY, [i])).fetchone()

                async def arlskit(i: int) -> None:
                    async with transaction(aconn, ctx):
                        await (await aconn.execute(QUERY, [i])).fetchone()

                await interleaved_async({"async_plain": aplain, "async_rlskit": arlskit},
                                        batch, rounds, rates, items=ITEMS)

        asyncio.run(async_rounds())

        engine = create_engine(sqlalchemy_url(app_url), pool_size=1, max_overflow=0)
        install_engine(engine, model, require=False)
        stmt = text(QUERY.replace("%s", ":id"))

        def sa_plain(i: int) -> None:
            with engine.begin() as c:
                c.execute(stmt, {"id": i}).fetchone()

        def sa_rlskit(i: int) -> None:
            with as_context(ctx), engine.begin() as c:
                c.execute(stmt, {"id": i}).fetchone()

        def session_plain(i: int) -> None:
            with Session(engine) as session, session.begin():
                session.execute(stmt, {"id": i}).fetchone()

        def session_rlskit(i: int) -> None:
            with as_context(ctx), Session(engine) as session, session.begin():
                session.execute(stmt, {"id": i}).fetchone()

        with engine.connect() as c:  # the pool's only connection, traced once released
            raw = c.connection.driver_connection
        variants = {"sqlalchemy_plain": sa_plain, "sqlalchemy_rlskit": sa_rlskit,
                    "session_plain": session_plain, "session_rlskit": session_rlskit}
        trips |= {name: _round_trips(raw, lambda f=f: f(1)) for name, f in variants.items()}
        interleaved(variants, batch, rounds, rates, items=ITEMS)
        engine.dispose()

    rows = [{"variant": name, "round_trips": trips.get(name, ""),
             "min_tx_s": min(v), "median_tx_s": statistics.median(v), "max_tx_s": max(v),
             "client_cpu_us": statistics.median(cpu[name]) if name in cpu else ""}
            for name, v in rates.items()]

    def ratio(variant: str, baseline: str) -> float:
        """Median over rounds of the ratio measured within each round."""
        return statistics.median(a / b for a, b in zip(rates[variant], rates[baseline],
                                                         strict=True))

    return {
        "benchmark": "context",
        "rows": rows,
        "ratios": {
            "psycopg_rlskit_over_plain": ratio("psycopg_rlskit", "psycopg_plain"),
            "psycopg_rlskit_over_bare": ratio("psycopg_rlskit", "psycopg_bare"),
            "psycopg_new_caller_over_plain": ratio("psycopg_new_caller", "psycopg_plain"),
            "psycopg_plain_over_bare": ratio("psycopg_plain", "psycopg_bare"),
            "rollback_rlskit_over_plain": ratio("psycopg_rlskit_rollback",
                                                "psycopg_plain_rollback"),
            "psycopg_naive_over_plain": ratio("psycopg_naive", "psycopg_plain"),
            "psycopg_unsealed_over_plain": ratio("psycopg_unsealed", "psycopg_plain"),
            "psycopg_floor_over_plain": ratio("psycopg_floor", "psycopg_plain"),
            "psycopg_unsealed_over_floor": ratio("psycopg_unsealed", "psycopg_floor"),
            "sealed_over_unsealed": ratio("psycopg_rlskit", "psycopg_unsealed"),
            "async_rlskit_over_plain": ratio("async_rlskit", "async_plain"),
            "sqlalchemy_rlskit_over_plain": ratio("sqlalchemy_rlskit", "sqlalchemy_plain"),
            "session_rlskit_over_plain": ratio("session_rlskit", "session_plain"),
        },
        "checks": {
            "psycopg_context_adds_no_round_trip":
                trips["psycopg_rlskit"] == trips["psycopg_plain"],
            "rollback_keeps_prepared_statements":  # ROLLBACK: no DEALLOCATE ALL, and the
                trips["psycopg_rlskit_rollback"] == 3  # next one prepares nothing again
                and trips["psycopg_rlskit_after_rollback"] == 3,
            "sealing_adds_no_round_trip":
                trips["psycopg_rlskit"] == trips["psycopg_unsealed"],
            "sqlalchemy_context_adds_no_round_trip":
                trips["sqlalchemy_rlskit"] == trips["sqlalchemy_plain"],
        },
    }
