"""pytest plugin (auto-loaded when rlskit is installed): real PostgreSQL fixtures.

- ``rlskit_cluster`` (session): the running server, see `rlskit.testing.databases`.
- ``rlskit_db`` (function): a fresh database with a role prefix of its own, dropped
  (with the prefix's roles) after the test.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .databases import Cluster, ScratchDatabase, open_cluster


@pytest.fixture(scope="session")
def rlskit_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with open_cluster(tmp_path_factory.mktemp("rlskit-pg")) as cluster:
        yield cluster


@pytest.fixture
def rlskit_db(rlskit_cluster: Cluster) -> Iterator[ScratchDatabase]:
    with rlskit_cluster.database() as db:
        yield db
