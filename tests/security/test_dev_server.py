"""The embedded development server is not open to other local users: its socket lives in
a private directory and is itself private; a predictable socket directory somebody else
prepared is refused."""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from rlskit.errors import ConfigError
from rlskit.server import LocalServer, private_workdir


@pytest.fixture
def home() -> Iterator[Path]:
    """A directory the server's system user may reach (no parent is opened up for it)."""
    path = private_workdir()
    yield path
    shutil.rmtree(path, ignore_errors=True)


def nested(home: Path, *parts: str) -> Path:
    path = home.joinpath(*parts)
    path.mkdir(parents=True)
    if os.geteuid() == 0:  # the system user, as private_workdir made home
        for p in [*reversed(path.relative_to(home).parents), path.relative_to(home)]:
            shutil.chown(home / p, home.owner(), home.group())
    return path / "pgdata"


def test_the_socket_and_its_directory_are_private(home: Path) -> None:
    deep = nested(home, "x" * 60, "y" * 60)  # too long for a socket path
    server = LocalServer(deep, durable=False)
    assert server.socket_dir != server.data_dir
    server.start()
    try:
        with psycopg.connect(server.url()) as conn:
            assert conn.execute("SHOW unix_socket_permissions").fetchone() == ("0700",)
        for path in (server.data_dir, server.socket_dir):
            assert stat.S_IMODE(os.stat(path).st_mode) & 0o077 == 0, path
        socket = server.socket_dir / ".s.PGSQL.5432"
        assert stat.S_IMODE(os.stat(socket).st_mode) & 0o077 == 0
    finally:
        server.destroy()


def test_a_socket_directory_prepared_by_someone_else_is_refused(home: Path) -> None:
    deep = nested(home, "a" * 60, "b" * 60)
    server = LocalServer(deep, durable=False)
    server.socket_dir.mkdir(mode=0o777)  # as another user would: open to everyone
    server.socket_dir.chmod(0o777)
    try:
        with pytest.raises(ConfigError, match="is not a private directory"):
            server.start()
        assert not (server.data_dir / "PG_VERSION").exists()
    finally:
        server.socket_dir.rmdir()


@pytest.mark.skipif(os.geteuid() != 0, reason="the system user exists only under root")
def test_no_parent_directory_is_opened_up(tmp_path: Path) -> None:
    closed = tmp_path / "closed"
    closed.mkdir(mode=0o700)
    closed.chmod(0o700)
    server = LocalServer(closed / "pgdata", durable=False)
    with pytest.raises(ConfigError, match="cannot reach its data directory"):
        server.start()
    assert stat.S_IMODE(closed.stat().st_mode) == 0o700  # left as it was

