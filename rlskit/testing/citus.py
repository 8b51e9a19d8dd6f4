"""A real Citus cluster for tests and benchmarks: Citus built once from its source against
the embedded PostgreSQL, then a coordinator and workers on private Unix sockets.

The source is ``RLSKIT_CITUS_SOURCE``, else ``shared/vendor/citus-<version>.tar.gz``
beside the repository (or one of its parents). The build (about 35 s on two cores) is
cached in ``~/.cache/rlskit/citus-<version>-pg<N>`` (``RLSKIT_CITUS_CACHE`` moves it); a
fresh virtualenv only re-runs ``make install`` from it. When the build cannot be done,
`citus_unavailable` says why, and the tests skip with it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg

from ..ddl import create
from ..keystore import sync_workers
from ..model import Model
from ..render import render
from ..server import LocalServer, embedded_bin_dir
from ..target import target_objects

__all__ = ["CitusCluster", "citus_cluster", "citus_unavailable", "ensure_built",
           "install_model"]

VERSION = "14.0.1"
TARBALL = f"citus-{VERSION}.tar.gz"


def _source() -> Path:
    """The vendored source: ``RLSKIT_CITUS_SOURCE``, else ``shared/vendor/`` beside the
    repository or one of its parents (where the project's shared files live)."""
    if os.environ.get("RLSKIT_CITUS_SOURCE"):
        return Path(os.environ["RLSKIT_CITUS_SOURCE"])
    repo = Path(__file__).resolve().parents[2]  # the source tree holding rlskit/
    for parent in repo.parents:
        candidate = parent / "shared" / "vendor" / TARBALL
        if candidate.exists():
            return candidate
    return repo.parent / "shared" / "vendor" / TARBALL


SOURCE = _source()
CFLAGS = "-O2 -fno-strict-aliasing -fwrapv -fexcess-precision=standard"
HEADERS = ("openssl/ssl.h",)


def _pg_config(tool: str) -> str:
    out = subprocess.run([str(embedded_bin_dir() / "pg_config"), tool], check=True,
                         capture_output=True, text=True)
    return out.stdout.strip()


def installed() -> bool:
    return (Path(_pg_config("--pkglibdir")) / "citus.so").exists() and \
        (Path(_pg_config("--sharedir")) / "extension" / "citus.control").exists()


def citus_unavailable() -> str | None:
    """Why Citus cannot be built here, or None."""
    if installed():
        return None
    if not SOURCE.exists():
        return (f"the Citus source {SOURCE} is missing (set RLSKIT_CITUS_SOURCE to "
                f"{TARBALL})")
    if shutil.which("make") is None or shutil.which("gcc") is None:
        return "make and gcc are needed to build Citus"
    missing = [h for h in HEADERS if not Path("/usr/include", h).exists()
               and not Path("/usr/include/x86_64-linux-gnu", h).exists()]
    if missing:
        return f"the Citus build needs {', '.join(missing)} (apt-get install libssl-dev)"
    return None


def ensure_built() -> None:
    """Build Citus once (cached) and install it into the embedded PostgreSQL."""
    if installed():
        return
    server = _pg_config("--version").split()[1]  # e.g. 18.6: the headers built against
    cache = Path(os.environ.get("RLSKIT_CITUS_CACHE", Path.home() / ".cache" / "rlskit")
                 ) / f"citus-{VERSION}-pg{server}"
    tree = cache / f"citus-{VERSION}"
    pg_config = f"PG_CONFIG={embedded_bin_dir() / 'pg_config'}"
    if not (tree / "src" / "backend" / "distributed" / "citus.so").exists():
        shutil.rmtree(cache, ignore_errors=True)
        cache.mkdir(parents=True)
        with tarfile.open(SOURCE) as archive:
            archive.extractall(cache, filter="data")
        _run(["./configure", pg_config, "--without-libcurl", "--without-lz4",
              "--without-zstd"], tree)
        _run(["make", "-j2", f"CFLAGS={CFLAGS}"], tree)
    _run(["make", "install", pg_config], tree)  # into this installation, wherever it lives
    if not installed():
        raise RuntimeError(f"make install of Citus from {tree} did not install it into "
                           f"{_pg_config('--pkglibdir')}")


def _run(command: list[str], cwd: Path) -> None:
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).splitlines()[-20:])
        raise RuntimeError(f"{' '.join(command)} failed in {cwd}:\n{tail}")


@dataclass
class CitusCluster:
    """A coordinator and its workers, one database (`dbname`) with Citus in it."""

    coordinator: LocalServer
    workers: list[LocalServer]
    dbname: str = "app"

    def url(self, user: str = "postgres") -> str:
        return self.coordinator.url(self.dbname, user)

    def worker_url(self, i: int, user: str = "postgres") -> str:
        return self.workers[i].url(self.dbname, user)

    def connect(self, **kwargs: object) -> psycopg.Connection:
        return psycopg.connect(self.url(), **kwargs)  # type: ignore[arg-type]


@contextmanager
def citus_cluster(root: Path, workers: int = 2) -> Iterator[CitusCluster]:
    """Start a coordinator and `workers` workers under `root`, with database ``app``
    holding the extension on every node and the workers registered; stopped after."""
    ensure_built()
    settings = ("shared_preload_libraries=citus", "max_prepared_transactions=100",
                "citus.shard_count=8")
    nodes = [LocalServer(root / name, durable=False, settings=settings)
             for name in ("coordinator", *(f"worker{i}" for i in range(workers)))]
    try:
        for node in nodes:
            node.start()
            with psycopg.connect(node.url(), autocommit=True) as conn:
                conn.execute("CREATE DATABASE app")
            with psycopg.connect(node.url("app"), autocommit=True) as conn:
                conn.execute("CREATE EXTENSION citus")
        cluster = CitusCluster(nodes[0], nodes[1:])
        with cluster.connect(autocommit=True) as conn:
            conn.execute("SELECT citus_set_coordinator_host(%s, 5432)",
                         [str(nodes[0].socket_dir)])
            for worker in nodes[1:]:
                conn.execute("SELECT citus_add_node(%s, 5432)", [str(worker.socket_dir)])
        yield cluster
    finally:
        for node in nodes:
            node.destroy()


def install_model(conn: psycopg.Connection, model: Model) -> None:
    """`model`'s objects on the cluster `conn` (autocommit, a superuser's) is the
    coordinator of, one statement at a time as Alembic runs them, then the workers' key
    tables as `rlskit migrate` makes them once the migration has committed."""
    version = conn.info.server_version // 10000
    for obj in target_objects(model, version):
        for statement in create(obj, version):
            conn.execute(render(statement))
    sync_workers(conn, model.helpers_schema)
