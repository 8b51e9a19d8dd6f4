"""Isolation through a real PgBouncer in transaction pooling mode, where session-level state
would travel from one client to the next."""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from conftest import Example
from support.pgbouncer import pgbouncer
from test_runtime import (
    COUNT_BY_TENANT,
    NO_CONTEXT_PROBE,
    TRANSACTIONS,
    WORKERS,
    Tally,
    in_threads,
)

from rlskit.context import for_role
from rlskit.psycopg import transaction


@contextmanager
def bouncer(example: Example, pool_size: int) -> Iterator[str]:
    auth = example.role("app_authenticator")
    with pgbouncer(example.db.cluster.admin_url, example.db.name, [auth], pool_size) as url:
        # PgBouncer 1.18 cannot route server-side prepared statements in transaction mode
        yield psycopg.conninfo.make_conninfo(url, user=auth)


def connect(url: str, **options: object) -> psycopg.Connection:
    return psycopg.connect(url, prepare_threshold=None, **options)


def test_session_level_set_leaks_between_clients_through_pgbouncer(example: Example) -> None:
    """The classic bug, shown so that the isolation test below is known to be able to fail:
    a session-level SET on one client is seen by another client sharing the server."""
    tenant = str(example.data.a.id)
    with bouncer(example, pool_size=1) as url, connect(url, autocommit=True) as first, \
            connect(url, autocommit=True) as second:
        first.execute("SELECT set_config('app.tenant_id', %s, false)", [tenant])
        leaked = second.execute(NO_CONTEXT_PROBE).fetchone()[1]
        assert leaked == tenant
        first.execute("RESET ALL")


def test_clients_of_pgbouncer_never_see_another_tenant(busy_example: Example) -> None:
    example = busy_example
    tally = Tally(example)

    def client(seed: int, url: str) -> None:
        rng = random.Random(seed)
        with connect(url) as conn:
            for _ in range(TRANSACTIONS // WORKERS):
                tenant = rng.choice(tally.tenants)
                with transaction(conn, for_role(example.model, "member", tenant_id=tenant)):
                    seen = dict(conn.execute(COUNT_BY_TENANT).fetchall())
                probe = conn.execute(NO_CONTEXT_PROBE).fetchone()
                conn.execute(tally.set_member)
                visible = conn.execute("SELECT count(*) FROM flow").fetchone()[0]
                conn.rollback()
                tally.record(tenant, seen, probe, visible)

    with bouncer(example, pool_size=3) as url:
        in_threads(client, url)
    tally.check()
