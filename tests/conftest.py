"""Shared fixtures: the SaaS example installed in a fresh database per test."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import psycopg
import pytest
from psycopg import sql
from support.products import Environment

from rlskit.examples.install import ExampleData, install
from rlskit.examples.saas import build_model
from rlskit.model import Model
from rlskit.seal import sealed_settings
from rlskit.testing import Cluster, ScratchDatabase


@dataclass
class Example:
    db: ScratchDatabase
    model: Model
    data: ExampleData
    owner: str

    def role(self, name: str) -> str:
        return self.model.role_name(name)

    @contextmanager
    def session(self, role: str | None, tenant: object = None, user: object = None
                ) -> Iterator[psycopg.Connection]:
        """A transaction as the authenticator, switched to `role` with the given context;
        rolled back at the end."""
        with self.db.connect(user=self.role("app_authenticator")) as conn:
            if role is not None:
                conn.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(self.role(role))))
            values = {k: v for k, v in (("tenant_id", tenant), ("user_id", user)) if v is not None}
            if values:  # sealed, as the runtime sends them
                role_name = self.role(role) if role is not None else self.role("app_authenticator")
                for name, value in sealed_settings(self.model, role_name, values):
                    conn.execute("SELECT set_config(%s, %s, true)", [name, value])
            yield conn
            conn.rollback()


@contextmanager
def owner_login(example: Example) -> Iterator[str]:
    """The tables' owner, NOLOGIN, allowed to log in for the block (tests that act as it)."""
    with example.db.connect(autocommit=True) as admin:
        admin.execute(sql.SQL("ALTER ROLE {} LOGIN").format(sql.Identifier(example.owner)))
        try:
            yield example.owner
        finally:
            admin.execute(sql.SQL("ALTER ROLE {} NOLOGIN").format(
                sql.Identifier(example.owner)))


def make_example(db: ScratchDatabase, **seed_options: int) -> Example:
    model = build_model(role_prefix=db.role_prefix)
    owner = db.role_prefix + "owner"
    data = install(db.url, model, owner, **seed_options)
    return Example(db, model, data, owner)


@pytest.fixture
def example(rlskit_db: ScratchDatabase) -> Example:
    return make_example(rlskit_db)


@pytest.fixture
def busy_example(rlskit_db: ScratchDatabase) -> Example:
    """The example with eight more tenants, so that random tenants rarely repeat."""
    return make_example(rlskit_db, extra_tenants=8)


@pytest.fixture
def dev(rlskit_cluster: Cluster) -> Iterator[Environment]:
    with rlskit_cluster.database() as db:
        yield Environment(db, "dev")


@pytest.fixture
def prod(rlskit_cluster: Cluster) -> Iterator[Environment]:
    with rlskit_cluster.database() as db:
        yield Environment(db, "prod")
