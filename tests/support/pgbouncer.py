"""A real PgBouncer in transaction pooling mode in front of the test cluster."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from rlskit.server import SYSTEM_USER


def pgbouncer_binary() -> str:
    found = shutil.which("pgbouncer") or shutil.which("pgbouncer", path="/usr/sbin")
    if found is None:
        pytest.skip("PgBouncer is not installed (Debian package 'pgbouncer'; .ci/run installs "
                    "it with apt-get where it can)")
    return found


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def pgbouncer(server_url: str, dbname: str, users: list[str], pool_size: int
              ) -> Iterator[str]:
    """PgBouncer (transaction mode, `pool_size` server connections) for `users` on
    loopback; yields the conninfo of `dbname` through it, without a user."""
    binary = pgbouncer_binary()
    server = conninfo_to_dict(server_url)
    port = _free_port()
    workdir = Path(tempfile.mkdtemp(prefix="rlskit-pgbouncer-"))
    workdir.chmod(0o755)  # readable by the unprivileged user it runs as under root
    (workdir / "users.txt").write_text("".join(f'"{user}" ""\n' for user in users))
    (workdir / "pgbouncer.ini").write_text(f"""\
[databases]
* = host={server.get("host", "localhost")} port={server.get("port", 5432)}
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {workdir / "users.txt"}
pool_mode = transaction
default_pool_size = {pool_size}
max_client_conn = 200
ignore_startup_parameters = extra_float_digits
""")
    for path in workdir.iterdir():
        path.chmod(0o644)
    command = [binary, str(workdir / "pgbouncer.ini")]
    if os.geteuid() == 0:
        command[1:1] = ["-u", SYSTEM_USER]  # it refuses to run as root
    log = (workdir / "pgbouncer.log").open("w+")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    url = make_conninfo(host="127.0.0.1", port=port, dbname=dbname)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                psycopg.connect(url, user=users[0], connect_timeout=2).close()
                break
            except psycopg.OperationalError:
                if process.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    raise RuntimeError(f"PgBouncer did not start: {log.read()}") from None
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(10)
        log.close()
        shutil.rmtree(workdir, ignore_errors=True)
