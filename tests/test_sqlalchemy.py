"""SQLAlchemy 2 integration against real PostgreSQL: Core and ORM, sync and asyncio."""

from __future__ import annotations

import asyncio

import pytest
from conftest import Example, owner_login
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.exc import ProgrammingError
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from sqlalchemy.orm import Session

from rlskit import ConfigError, ContextError, UnsafeConnectionError, as_context
from rlskit.context import for_role
from rlskit.examples.saas import Flow
from rlskit.sqlalchemy import install
from rlskit.urls import sqlalchemy_url

WHO = text("SELECT current_user::text, rlskit.tenant_id()")


def engine_url(example: Example, user: str | None = None) -> str:
    user = user or example.role("app_authenticator")
    return sqlalchemy_url(example.db.cluster.url(example.db.name, user=user))


def test_orm_sessions_run_in_the_current_context(example: Example) -> None:
    engine = create_engine(engine_url(example), pool_size=1, max_overflow=0)
    install(engine, example.model)
    a, b = example.data.a, example.data.b
    try:
        for tenant in (a, b, a):
            ctx = for_role(example.model, "member", tenant_id=tenant.id, user_id=tenant.member)
            with as_context(ctx), Session(engine) as session:
                assert set(session.scalars(select(Flow.tenant_id))) == {tenant.id}
                assert set(tenant.flows) <= set(session.scalars(select(Flow.id)))
                assert session.execute(WHO).one() == (example.role("member"), tenant.id)
                session.add(Flow(tenant_id=tenant.id, name="added"))
                session.commit()
                # a new transaction in the same session gets the context again
                assert session.scalar(select(func.count()).where(Flow.name == "added")) >= 1
        with pytest.raises(ContextError, match="without a request context"), \
                engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    finally:
        engine.dispose()


def test_without_require_no_context_means_no_access(example: Example) -> None:
    engine = create_engine(engine_url(example))
    install(engine, example.model, require=False)
    try:
        with engine.connect() as conn, pytest.raises(ProgrammingError, match="permission denied"):
            conn.execute(select(Flow.id))
    finally:
        engine.dispose()


def test_engines_refuse_unsafe_connections_and_other_drivers(example: Example) -> None:
    engine = create_engine(engine_url(example, user=example.owner))
    install(engine, example.model)
    try:
        with owner_login(example), pytest.raises(UnsafeConnectionError,
                                                 match="owns public.flow"), engine.connect():
            pass
    finally:
        engine.dispose()
    with pytest.raises(ConfigError, match="needs the psycopg driver"):
        install(create_engine("sqlite://"), example.model)


def test_async_sessions_keep_each_task_in_its_own_context(example: Example) -> None:
    asyncio.run(async_sessions(example))


async def async_sessions(example: Example) -> None:
    engine = create_async_engine(engine_url(example), pool_size=2, max_overflow=0)
    install(engine, example.model)
    seen: dict[object, set] = {}

    async def request(tenant: object, flows: tuple) -> None:
        ctx = for_role(example.model, "read_only", tenant_id=tenant)
        for _ in range(20):
            with as_context(ctx):
                async with AsyncSession(engine) as session:
                    ids = set((await session.scalars(select(Flow.id))).all())
                    seen.setdefault(tenant, set()).update(ids)
                    await asyncio.sleep(0)
        assert seen[tenant] == set(flows)

    try:
        a, b = example.data.a, example.data.b
        await asyncio.gather(*(request(t.id, t.flows) for t in (a, b, a, b, a, b)))
        async with engine.connect() as conn:
            with pytest.raises(ContextError, match="without a request context"):
                await conn.execute(text("SELECT 1"))
    finally:
        await engine.dispose()
    assert seen.keys() == {example.data.a.id, example.data.b.id}
