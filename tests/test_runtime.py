"""The runtime against real PostgreSQL: contexts applied per transaction with psycopg (sync
and async), pools that refuse leftovers, start-up checks, and isolation under concurrency."""

from __future__ import annotations

import asyncio
import random
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from conftest import Example, owner_login
from psycopg import sql
from psycopg.pq import TransactionStatus
from psycopg_pool import AsyncConnectionPool, ConnectionPool
from support.tokens import AUDIENCE, ISSUER, SECRET, claims, sign, unsigned

from rlskit import ContextError, RequestContext, TokenError, UnsafeConnectionError
from rlskit.context import for_role, from_claims, from_token
from rlskit.jwt import Verifier
from rlskit.psycopg import async_pool_options, pool_options, transaction
from rlskit.runtime import check_connection

TRANSACTIONS = 10_000
WORKERS = 8
POOL_SIZE = 3


def authenticator_url(example: Example) -> str:
    return example.db.cluster.url(example.db.name, user=example.role("app_authenticator"))


def state(conn: psycopg.Connection) -> tuple:
    """What a connection holds outside any transaction: its role and the model's settings."""
    assert conn.info.transaction_status == TransactionStatus.IDLE
    row = conn.execute("SELECT current_user::text, "
                       "coalesce(current_setting('app.tenant_id', true), ''), "
                       "coalesce(current_setting('app.user_id', true), '')").fetchone()
    conn.rollback()
    return row


def member_context(example: Example, tenant: object = None, user: object = None
                   ) -> RequestContext:
    tenant = tenant or example.data.a.id
    return from_claims(example.model, {"tenant_id": str(tenant),
                                       "sub": str(user or example.data.a.member),
                                       "role": "member"})


@pytest.mark.parametrize("autocommit", [False, True])
def test_transaction_applies_the_context_and_leaves_nothing(example: Example,
                                                            autocommit: bool) -> None:
    with psycopg.connect(authenticator_url(example), autocommit=autocommit) as conn:
        clean = (example.role("app_authenticator"), "", "")
        assert state(conn) == clean
        ctx = member_context(example)
        with transaction(conn, ctx) as tx:
            assert tx.info.transaction_status == TransactionStatus.INTRANS
            row = tx.execute("SELECT current_user::text, rlskit.tenant_id(), rlskit.user_id(), "
                             "array_agg(DISTINCT tenant_id) FROM flow").fetchone()
            assert row == (example.role("member"), example.data.a.id, example.data.a.member,
                           [example.data.a.id])
        assert state(conn) == clean


def test_an_exception_rolls_the_transaction_back(example: Example) -> None:
    with psycopg.connect(authenticator_url(example)) as conn:
        with pytest.raises(RuntimeError), transaction(conn, member_context(example)) as tx:
            tx.execute("INSERT INTO flow (tenant_id, name) VALUES (%s, 'doomed')",
                       [example.data.a.id])
            raise RuntimeError("request failed")
        assert state(conn)[0] == example.role("app_authenticator")
    with example.db.connect() as admin:
        assert admin.execute("SELECT count(*) FROM flow WHERE name = 'doomed'").fetchone()[0] == 0


def test_a_context_needs_a_transaction_of_its_own(example: Example) -> None:
    with psycopg.connect(authenticator_url(example)) as conn:
        conn.execute("SELECT 1")
        with pytest.raises(ContextError, match="must start its own transaction"), \
                transaction(conn, member_context(example)):
            pass


BAD_TOKENS = {
    "expired": (lambda c: sign(claims(**c, exp=1)), TokenError, "token has expired"),
    "not yet valid": (lambda c: sign(claims(**c, nbf=2**33)), TokenError, "not yet valid"),
    "wrong audience": (lambda c: sign({**claims(**c), "aud": "other"}), TokenError,
                       "audience is wrong"),
    "wrong issuer": (lambda c: sign({**claims(**c), "iss": "https://evil.example"}),
                     TokenError, "issuer is wrong"),
    "bad signature": (lambda c: sign(claims(**c), "another-secret-" * 4), TokenError,
                      "signature is invalid"),
    "alg none": (lambda c: unsigned(claims(**c)), TokenError, "'none' is not allowed"),
    "tenant not a UUID": (lambda c: sign(claims(**{**c, "tenant_id": "acme"})), ContextError,
                          "claim 'tenant_id' must be a UUID"),
    "missing required claim": (lambda c: sign(claims(**{k: v for k, v in c.items()
                                                        if k != "sub"})),
                               ContextError, "token has no 'sub' claim"),
    "role not granted": (lambda c: sign(claims(**{**c, "role": "tenant_admin"})),
                         ContextError, "the model gives this caller no role"),
}


@pytest.mark.parametrize("case", sorted(BAD_TOKENS))
def test_a_bad_token_leaves_the_connection_unchanged(example: Example, case: str) -> None:
    make, error, message = BAD_TOKENS[case]
    good = {"tenant_id": str(example.data.a.id), "sub": str(example.data.a.member),
            "role": "member"}
    verifier = Verifier(secret=SECRET, audience=AUDIENCE, issuer=ISSUER)
    assert from_token(example.model, verifier, sign(claims(**good))).role == \
        example.role("member")
    with psycopg.connect(authenticator_url(example)) as conn:
        before = state(conn)
        with pytest.raises(error, match=message), \
                transaction(conn, from_token(example.model, verifier, make(good))):
            pytest.fail("a transaction was opened for a bad token")
        assert state(conn) == before


def test_the_database_refuses_a_role_the_connection_may_not_take(example: Example) -> None:
    forged = RequestContext("postgres", "postgres", {}, (("app.tenant_id", ""),))
    with psycopg.connect(authenticator_url(example)) as conn:
        before = state(conn)
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="set role"), \
                transaction(conn, forged):
            pass
        assert state(conn) == before


@pytest.mark.parametrize("prepare_threshold", [5, None])
def test_the_context_is_one_round_trip_with_begin_and_survives_a_lost_statement(
        example: Example, prepare_threshold: int | None) -> None:
    """BEGIN and the context go in one exchange (prepared once per connection unless
    prepare_threshold is None); DEALLOCATE ALL behind its back costs one retry, no error."""
    ctx = member_context(example)
    with psycopg.connect(authenticator_url(example),
                         prepare_threshold=prepare_threshold) as conn:
        for _ in range(2):
            with transaction(conn, ctx):
                assert conn.execute("SELECT current_user::text").fetchone() == (
                    example.role("member"),)
        prepared = conn.execute("SELECT count(*) FROM pg_prepared_statements "
                                "WHERE name LIKE 'rlskit_context_%'").fetchone()
        assert prepared == (0 if prepare_threshold is None else 1,)
        conn.execute("DEALLOCATE ALL")
        conn.commit()
        with transaction(conn, ctx):
            assert conn.execute("SELECT rlskit.tenant_id()").fetchone() == (example.data.a.id,)
        assert state(conn)[0] == example.role("app_authenticator")


def test_savepoints_quiet_rollback_and_an_early_commit(example: Example) -> None:
    ctx = member_context(example)
    insert = "INSERT INTO flow (tenant_id, name) VALUES (%s, %s)"
    with psycopg.connect(authenticator_url(example)) as conn:
        with transaction(conn, ctx):
            conn.execute(insert, [example.data.a.id, "kept"])
            with pytest.raises(psycopg.errors.UniqueViolation), conn.transaction():
                conn.execute(insert, [example.data.a.id, "inner"])
                conn.execute("INSERT INTO flow SELECT * FROM flow LIMIT 1")
        with transaction(conn, ctx):
            conn.execute(insert, [example.data.a.id, "rolled back"])
            raise psycopg.Rollback()
        with pytest.raises(ContextError, match="ended inside its block"), \
                transaction(conn, ctx):
            conn.commit()
        with pytest.raises(ContextError, match="before conn.pipeline"), conn.pipeline(), \
                transaction(conn, ctx):
            pass
        assert state(conn)[0] == example.role("app_authenticator")
    with example.db.connect() as admin:
        names = admin.execute("SELECT name FROM flow WHERE name IN ('kept', 'inner', "
                              "'rolled back')").fetchall()
    assert names == [("kept",)]


def test_async_transaction(example: Example) -> None:
    asyncio.run(async_transaction(example))


async def async_transaction(example: Example) -> None:
    ctx = member_context(example, example.data.b.id, example.data.b.member)
    async with await psycopg.AsyncConnection.connect(authenticator_url(example)) as conn:
        async with transaction(conn, ctx) as tx:
            cur = await tx.execute("SELECT current_user::text, array_agg(DISTINCT tenant_id) "
                                   "FROM flow")
            assert await cur.fetchone() == (example.role("member"), [example.data.b.id])
        cur = await conn.execute("SELECT current_user::text, "
                                 "coalesce(current_setting('app.tenant_id', true), '')")
        assert await cur.fetchone() == (example.role("app_authenticator"), "")


def test_check_connection_refuses_roles_that_bypass_rls(example: Example) -> None:
    auth = example.role("app_authenticator")
    with psycopg.connect(authenticator_url(example)) as conn:
        check_connection(conn, example.model)
    with example.db.connect() as conn, \
            pytest.raises(UnsafeConnectionError, match=r"is a superuser .*connect as the "
                                                       rf"model's authenticator '{auth}'"):
        check_connection(conn, example.model)
    with owner_login(example) as owner, example.db.connect(user=owner) as conn, \
            pytest.raises(UnsafeConnectionError,
                          match=rf"'{example.owner}' owns public\.flow, public\.membership"):
        check_connection(conn, example.model)
    bypass, via_owner = example.db.role_prefix + "bypass", example.db.role_prefix + "ops"
    with example.db.connect(autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE ROLE {} LOGIN BYPASSRLS").format(sql.Identifier(bypass)))
        admin.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(via_owner)))
        admin.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(example.owner),
                                                       sql.Identifier(via_owner)))
    with example.db.connect(user=bypass) as conn, \
            pytest.raises(UnsafeConnectionError, match=f"ALTER ROLE {bypass} NOBYPASSRLS"):
        check_connection(conn, example.model)
    with example.db.connect(user=via_owner) as conn, \
            pytest.raises(UnsafeConnectionError, match=f"can become '{example.owner}', which "
                                                       "owns public.flow"):
        check_connection(conn, example.model)


def test_pool_resets_session_level_leaks(example: Example) -> None:
    """Code that forgets itself and uses session-level SET: the pool undoes it on return."""
    with ConnectionPool(authenticator_url(example), min_size=1, max_size=1, open=True,
                        **pool_options(example.model)) as pool:
        with pool.connection() as conn:
            conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(example.role("member"))))
            conn.execute("SELECT set_config('app.tenant_id', %s, false)",
                         [str(example.data.a.id)])
            leaked = conn
        with pool.connection() as conn:
            assert conn is leaked
            assert state(conn) == (example.role("app_authenticator"), "", "")


def test_pool_discards_a_connection_still_holding_a_setting(example: Example) -> None:
    """A role-level default survives RESET ALL: such a connection never serves again."""
    auth = example.role("app_authenticator")
    with example.db.connect(autocommit=True) as admin:
        admin.execute(sql.SQL("ALTER ROLE {} SET app.tenant_id = {}").format(
            sql.Identifier(auth), sql.Literal(str(example.data.a.id))))
    try:
        with ConnectionPool(authenticator_url(example), min_size=1, max_size=1, open=True,
                            **pool_options(example.model)) as pool:
            with pool.connection() as conn:
                first = conn
            deadline = time.monotonic() + 10  # the pool resets returned connections in a worker
            while not first.closed and time.monotonic() < deadline:
                time.sleep(0.01)
            assert first.closed
            assert pool.get_stats()["returns_bad"] == 1
    finally:
        with example.db.connect(autocommit=True) as admin:
            admin.execute(sql.SQL("ALTER ROLE {} RESET ALL").format(sql.Identifier(auth)))


def test_pool_configure_refuses_an_unsafe_role(example: Example) -> None:
    configure = pool_options(example.model)["configure"]
    with example.db.connect() as conn, pytest.raises(UnsafeConnectionError, match="superuser"):
        configure(conn)


def tenants_with_flows(example: Example) -> dict[uuid.UUID, int]:
    with example.db.connect() as admin:
        return dict(admin.execute("SELECT tenant_id, count(*) FROM flow GROUP BY 1").fetchall())


COUNT_BY_TENANT = "SELECT tenant_id, count(*) FROM flow GROUP BY tenant_id"
NO_CONTEXT_PROBE = ("SELECT current_user::text, coalesce(current_setting('app.tenant_id', "
                    "true), '')")


class Tally:
    """Outcomes of concurrent transactions: each one in a tenant's context must see exactly
    that tenant's rows; each probe with no context must hold nothing and see nothing."""

    def __init__(self, example: Example) -> None:
        self.expected = tenants_with_flows(example)
        self.tenants = list(self.expected)
        self.auth = example.role("app_authenticator")
        self.set_member = sql.SQL("SET LOCAL ROLE {}").format(
            sql.Identifier(example.role("member")))
        self.done = 0
        self.mismatches: list[str] = []
        self.lock = threading.Lock()

    def record(self, tenant: uuid.UUID, seen: dict, probe: tuple, visible: int) -> None:
        with self.lock:
            self.done += 1
            if seen != {tenant: self.expected[tenant]}:
                self.mismatches.append(f"tenant {tenant} saw {seen}")
            if probe != (self.auth, "") or visible != 0:
                self.mismatches.append(f"no-context transaction held {probe}, saw {visible}")

    def check(self) -> None:
        assert self.done == TRANSACTIONS
        assert self.mismatches == []


def test_threads_sharing_a_small_pool_never_see_another_tenant(busy_example: Example
                                                               ) -> None:
    example = busy_example
    tally = Tally(example)

    def worker(seed: int, pool: ConnectionPool) -> None:
        rng = random.Random(seed)
        for _ in range(TRANSACTIONS // WORKERS):
            tenant = rng.choice(tally.tenants)
            ctx = for_role(example.model, "member", tenant_id=tenant)
            with pool.connection() as conn, transaction(conn, ctx) as tx:
                seen = dict(tx.execute(COUNT_BY_TENANT).fetchall())
            with pool.connection() as conn:  # no context: who am I, and what do I see?
                probe = conn.execute(NO_CONTEXT_PROBE).fetchone()
                conn.execute(tally.set_member)
                visible = conn.execute("SELECT count(*) FROM flow").fetchone()[0]
            tally.record(tenant, seen, probe, visible)

    with ConnectionPool(authenticator_url(example), min_size=POOL_SIZE, max_size=POOL_SIZE,
                        open=True, **pool_options(example.model)) as pool:
        in_threads(worker, pool)
    tally.check()


def in_threads(work: Callable[[int, Any], None], shared: Any) -> None:
    """Run ``work(i, shared)`` for i in range(WORKERS), each in a thread of its own."""
    threads = [threading.Thread(target=work, args=(i, shared)) for i in range(WORKERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def test_tasks_sharing_a_small_async_pool_never_see_another_tenant(
        busy_example: Example) -> None:
    asyncio.run(tasks_sharing_a_pool(busy_example))


async def tasks_sharing_a_pool(example: Example) -> None:
    tally = Tally(example)

    async def worker(seed: int, pool: AsyncConnectionPool) -> None:
        rng = random.Random(seed)
        for _ in range(TRANSACTIONS // WORKERS):
            tenant = rng.choice(tally.tenants)
            ctx = for_role(example.model, "member", tenant_id=tenant)
            async with pool.connection() as conn, transaction(conn, ctx) as tx:
                seen = dict(await (await tx.execute(COUNT_BY_TENANT)).fetchall())
            async with pool.connection() as conn:
                probe = await (await conn.execute(NO_CONTEXT_PROBE)).fetchone()
                await conn.execute(tally.set_member)
                visible = (await (await conn.execute("SELECT count(*) FROM flow")
                                  ).fetchone())[0]
            tally.record(tenant, seen, probe, visible)

    async with AsyncConnectionPool(authenticator_url(example), min_size=POOL_SIZE,
                                   max_size=POOL_SIZE, open=False,
                                   **async_pool_options(example.model)) as pool:
        await asyncio.gather(*(worker(i, pool) for i in range(WORKERS)))
    tally.check()
