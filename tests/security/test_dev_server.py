"""The embedded development server is not open to other local users: its socket lives in
a private directory and is itself private; a predictable socket directory somebody else
prepared is refused."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import psycopg
import pytest

from rlskit.errors import ConfigError
from rlskit.server import LocalServer


def test_the_socket_and_its_directory_are_private(tmp_path: Path) -> None:
    deep = tmp_path / ("x" * 60) / ("y" * 60) / "pgdata"  # too long for a socket path
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


def test_a_socket_directory_prepared_by_someone_else_is_refused(tmp_path: Path) -> None:
    deep = tmp_path / ("a" * 60) / ("b" * 60) / "pgdata"
    server = LocalServer(deep, durable=False)
    server.socket_dir.mkdir(mode=0o777)  # as another user would: open to everyone
    server.socket_dir.chmod(0o777)
    try:
        with pytest.raises(ConfigError, match="is not a private directory"):
            server.start()
        assert not (server.data_dir / "PG_VERSION").exists()
    finally:
        server.socket_dir.rmdir()
