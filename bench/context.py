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
import random
import statistics
import tempfile
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterator

import psycopg
from psycopg import sql
from sqlalchemy import create_engine, text

from rlskit.context import RequestContext, as_context, for_role
from rlskit.examples.install import install
from rlskit.examples.saas import build_model
from rlskit.model import Model
from rlskit.psycopg import transaction
from rlskit.seal import ContextKey, use_key
from rlskit.sqlalchemy import install as install_engine
from rlskit.testing import open_cluster
from rlskit.urls import sqlalchemy_url

ITEMS = 1000
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


def _turns(names: list[str], batch: int, rounds: int) -> Iterator[tuple[int, str, int]]:
    """(round, variant, item) in running order: within a round the variants take turns
    transaction by transaction, so that the machine's noise hits all of them alike."""
    rng = random.Random(7)
    for r in range(rounds):
        order = _rotated(names, r)
        for _ in range(batch):
            item = rng.randint(1, ITEMS)
            for name in order:
                yield r, name, item


def _record(spent: dict[tuple[int, str], float], names: list[str], batch: int, rounds: int,
            rates: dict[str, list[float]]) -> None:
    """Transactions per second of each variant in each round."""
    for r in range(rounds):
        for name in names:
            rates.setdefault(name, []).append(batch / spent[r, name])


def _interleaved(variants: dict[str, Callable[[int], object]], batch: int, rounds: int,
                 rates: dict[str, list[float]]) -> None:
    spent: dict[tuple[int, str], float] = defaultdict(float)
    for r, name, item in _turns(list(variants), batch, rounds):
        start = time.perf_counter()
        variants[name](item)
        spent[r, name] += time.perf_counter() - start
    _record(spent, list(variants), batch, rounds, rates)


async def _interleaved_async(variants: dict[str, Callable[[int], Awaitable[object]]],
                             batch: int, rounds: int, rates: dict[str, list[float]]) -> None:
    spent: dict[tuple[int, str], float] = defaultdict(float)
    for r, name, item in _turns(list(variants), batch, rounds):
        start = time.perf_counter()
        await variants[name](item)
        spent[r, name] += time.perf_counter() - start
    _record(spent, list(variants), batch, rounds, rates)


def run(quick: bool = False) -> dict:
    batch, rounds = (200, 3) if quick else (2000, 7)
    with open_cluster() as cluster, \
            cluster.database() as db:
        model, ctx = _prepare(db.url, db.role_prefix)
        app_url = cluster.url(db.name, user=model.role_name("app_authenticator"))
        rates: dict[str, list[float]] = {}
        with psycopg.connect(app_url) as conn:
            set_role = sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(ctx.role))
            settings = sql.SQL("SELECT {}").format(sql.SQL(", ").join(
                [sql.SQL("set_config(%s, %s, true)")] * len(ctx.settings)))
            flat = [v for pair in ctx.settings for v in pair]

            def plain(i: int) -> None:
                with conn.transaction():
                    conn.execute(QUERY, [i]).fetchone()

            def rlskit(i: int) -> None:
                with transaction(conn, ctx):
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
            variants = {"psycopg_plain": plain, "psycopg_rlskit": rlskit,
                        "psycopg_unsealed": unsealed, "psycopg_naive": naive}
            trips = {name: _round_trips(conn, lambda f=f: f(1)) for name, f in variants.items()}
            _interleaved(variants, batch, rounds, rates)

        async def async_rounds() -> None:
            aconn = await psycopg.AsyncConnection.connect(app_url)
            async with aconn:
                async def aplain(i: int) -> None:
                    async with aconn.transaction():
                        await (await aconn.execute(QUERY, [i])).fetchone()

                async def arlskit(i: int) -> None:
                    async with transaction(aconn, ctx):
                        await (await aconn.execute(QUERY, [i])).fetchone()

                await _interleaved_async({"async_plain": aplain, "async_rlskit": arlskit},
                                         batch, rounds, rates)

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

        with engine.connect() as c:  # the pool's only connection, traced once released
            raw = c.connection.driver_connection
        variants = {"sqlalchemy_plain": sa_plain, "sqlalchemy_rlskit": sa_rlskit}
        trips |= {name: _round_trips(raw, lambda f=f: f(1)) for name, f in variants.items()}
        _interleaved(variants, batch, rounds, rates)
        engine.dispose()

    rows = [{"variant": name, "round_trips": trips.get(name, ""),
             "min_tx_s": min(v), "median_tx_s": statistics.median(v), "max_tx_s": max(v)}
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
            "psycopg_naive_over_plain": ratio("psycopg_naive", "psycopg_plain"),
            "psycopg_unsealed_over_plain": ratio("psycopg_unsealed", "psycopg_plain"),
            "sealed_over_unsealed": ratio("psycopg_rlskit", "psycopg_unsealed"),
            "async_rlskit_over_plain": ratio("async_rlskit", "async_plain"),
            "sqlalchemy_rlskit_over_plain": ratio("sqlalchemy_rlskit", "sqlalchemy_plain"),
        },
        "checks": {
            "psycopg_context_adds_no_round_trip":
                trips["psycopg_rlskit"] == trips["psycopg_plain"],
            "sealing_adds_no_round_trip":
                trips["psycopg_rlskit"] == trips["psycopg_unsealed"],
            "sqlalchemy_context_adds_no_round_trip":
                trips["sqlalchemy_rlskit"] == trips["sqlalchemy_plain"],
        },
    }


def _rotated(names: list[str], r: int) -> list[str]:
    """Variants in a different order each round, so that drift hits all of them alike."""
    k = r % len(names)
    return names[k:] + names[:k]
