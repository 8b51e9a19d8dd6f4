"""pytest plugin (auto-loaded when rlskit is installed): real PostgreSQL fixtures.

- ``rlskit_cluster`` (session): the running server, see `rlskit.testing.databases`.
- ``rlskit_db`` (function): a fresh database with a role prefix of its own, dropped
  (with the prefix's roles) after the test.
- ``rlskit_model`` (function): the model under test, ``[tool.rlskit] model`` unless a
  conftest overrides the fixture.
- ``rlskit_policy_db`` (function): ``rlskit_db`` with the model's tables (from its
  SQLAlchemy definitions) and SQL installed, as a `PolicyDatabase` (``as_user``).
- ``rlskit_context_key`` (session, automatic): a random test key every sealed context of
  the test run is signed with; ``rlskit_policy_db`` adds it to the database's key table.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ..config import load_config, load_model
from ..keystore import rotate
from ..model import Model
from ..scratch import install_model, with_prefix
from ..seal import ContextKey, use_key
from .databases import Cluster, ScratchDatabase, open_cluster
from .policy import PolicyDatabase


@pytest.fixture(scope="session")
def rlskit_cluster() -> Iterator[Cluster]:
    with open_cluster() as cluster:
        yield cluster


@pytest.fixture(scope="session", autouse=True)
def rlskit_context_key() -> Iterator[ContextKey]:
    key = ContextKey.generate("rlskit-test")
    use_key(key)
    yield key
    use_key(None)


@pytest.fixture
def rlskit_db(rlskit_cluster: Cluster) -> Iterator[ScratchDatabase]:
    with rlskit_cluster.database() as db:
        yield db


@pytest.fixture
def rlskit_model() -> Model:
    config = load_config()
    return load_model(config.model, config.root)


@pytest.fixture
def rlskit_policy_db(rlskit_db: ScratchDatabase, rlskit_model: Model,
                     rlskit_context_key: ContextKey) -> PolicyDatabase:
    model = with_prefix(rlskit_model, rlskit_db.role_prefix)
    owner = rlskit_db.role_prefix + "owner"
    with rlskit_db.connect() as conn:
        install_model(conn, model, owner)
        if model.sealed:
            rotate(conn, model.helpers_schema, rlskit_context_key)
        conn.commit()
    return PolicyDatabase(rlskit_db, model, owner)
