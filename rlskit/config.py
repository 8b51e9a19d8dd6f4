"""``[tool.rlskit]`` configuration and model loading.

Precedence: command-line flags, then the environment (``RLSKIT_DATABASE_URL``,
``DATABASE_URL``), then ``pyproject.toml``.
"""

from __future__ import annotations

import importlib
import os
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import ConfigError, ModelError
from .model import Model

if TYPE_CHECKING:
    from .jwt import Verifier
    from .server import LocalServer

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["Config", "Environment", "load_config", "load_context_settings", "load_model"]


@dataclass(frozen=True)
class Environment:
    """``[tool.rlskit.environments.<name>]``: the same model under another role prefix, in
    its own database (``RLSKIT_<NAME>_DATABASE_URL`` overrides the file)."""

    name: str
    role_prefix: str
    database_url: str | None


@dataclass(frozen=True)
class Config:
    root: Path
    model: str | None
    database_url: str | None
    migrations: str
    environments: dict[str, Environment] = field(default_factory=dict)
    jwt: dict = field(default_factory=dict)  # [tool.rlskit.jwt]
    context: dict = field(default_factory=dict)  # [tool.rlskit.context]
    project: bool = False  # a pyproject.toml with [tool.rlskit] was found

    def require_project(self) -> None:
        """Refuse to go on outside an rlskit project (before anything is started)."""
        if not self.project:
            raise ConfigError(f"no rlskit project in {self.root} or above (no pyproject.toml "
                              "with [tool.rlskit]): run `rlskit init` first, or pass "
                              "--database URL")

    def environment(self, name: str) -> Environment:
        if name not in self.environments:
            known = ", ".join(sorted(self.environments)) or "none configured"
            raise ConfigError(f"unknown environment {name!r} (known: {known}); declare it as "
                              f"[tool.rlskit.environments.{name}] in pyproject.toml")
        return self.environments[name]

    def verifier(self) -> Verifier:
        """The token verifier of ``[tool.rlskit.jwt]``: one of ``secret_env`` (the name
        of an environment variable holding the shared secret), ``public_key_file`` or
        ``jwks_url``; ``audience`` and ``issuer`` (``false`` turns a check off), optional
        ``algorithms``, ``leeway``."""
        from .jwt import Verifier

        options = dict(self.jwt)
        known = {"secret_env", "public_key_file", "jwks_url", "audience", "issuer",
                 "algorithms", "leeway"}
        if not options or set(options) - known:
            raise ConfigError("[tool.rlskit.jwt] must set one of secret_env, public_key_file, "
                              f"jwks_url (allowed keys: {', '.join(sorted(known))})")
        if "secret_env" in options:
            name = options.pop("secret_env")
            if not os.environ.get(name):
                raise ConfigError(f"[tool.rlskit.jwt] secret_env: ${name} is not set")
            options["secret"] = os.environ[name]
        if "public_key_file" in options:
            path = self.root / options.pop("public_key_file")
            if not path.is_file():
                raise ConfigError(f"[tool.rlskit.jwt] public_key_file: no file {path}")
            options["public_key"] = path.read_bytes()
        return Verifier(**options)

    def dev_server(self) -> LocalServer:
        """The project's embedded development server (refused outside a project)."""
        from .server import LocalServer

        self.require_project()
        return LocalServer(self.state_dir / "pgdata")

    @property
    def state_dir(self) -> Path:
        """Where the embedded development server keeps its data (ignored by git)."""
        return self.root / ".rlskit"


def _find_pyproject(start: Path) -> Path | None:
    for folder in (start, *start.parents):
        candidate = folder / "pyproject.toml"
        if candidate.is_file():
            return candidate
    return None


def load_config(start: Path | None = None, *, model: str | None = None,
                database_url: str | None = None) -> Config:
    """Read ``[tool.rlskit]`` from the nearest pyproject.toml; flags and environment win."""
    start = (start or Path.cwd()).resolve()
    pyproject = _find_pyproject(start)
    section: dict = {}
    data: dict = {}
    if pyproject is not None:
        try:
            data = tomllib.loads(pyproject.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{pyproject}: invalid TOML: {exc}") from None
        section = data.get("tool", {}).get("rlskit", {})
        if not isinstance(section, dict):
            raise ConfigError(f"{pyproject}: [tool.rlskit] must be a table")
    env_url = os.environ.get("RLSKIT_DATABASE_URL") or os.environ.get("DATABASE_URL")
    return Config(
        root=pyproject.parent if pyproject else start,
        model=model or section.get("model"),
        database_url=database_url or env_url or section.get("database_url"),
        migrations=section.get("migrations", "migrations"),
        environments=_environments(section.get("environments", {}), pyproject),
        jwt=_table(section.get("jwt", {}), pyproject, "jwt"),
        context=_table(section.get("context", {}), pyproject, "context"),
        project="rlskit" in data.get("tool", {}),
    )


def load_context_settings(start: Path | None = None) -> tuple[str, Path | None, int]:
    """Where the application's context key is (``[tool.rlskit.context]``): the name of
    the environment variable (``key_env``, default ``RLSKIT_CONTEXT_KEY``), a file
    (``key_file``, relative to the project) and the seal's lifetime (``ttl`` seconds)."""
    from .seal import DEFAULT_KEY_ENV, DEFAULT_TTL

    config = load_config(start)
    options = dict(config.context)
    known = {"key_env", "key_file", "ttl"}
    if set(options) - known:
        raise ConfigError(f"[tool.rlskit.context] allows {', '.join(sorted(known))}, not "
                          f"{', '.join(sorted(set(options) - known))}")
    env, file, ttl = (options.get("key_env", DEFAULT_KEY_ENV), options.get("key_file"),
                      options.get("ttl", DEFAULT_TTL))
    if not isinstance(env, str) or not (file is None or isinstance(file, str)) or \
            not isinstance(ttl, int) or isinstance(ttl, bool):
        raise ConfigError("[tool.rlskit.context]: key_env and key_file are strings, ttl is a "
                          "number of seconds")
    return env, None if file is None else config.root / file, ttl


def _table(value: object, pyproject: Path | None, name: str) -> dict:
    if not isinstance(value, dict):
        raise ConfigError(f"{pyproject}: [tool.rlskit.{name}] must be a table")
    return value


def _environments(section: object, pyproject: Path | None) -> dict[str, Environment]:
    if not isinstance(section, dict):
        raise ConfigError(f"{pyproject}: [tool.rlskit.environments] must be a table")
    out = {}
    for name, values in section.items():
        if not isinstance(values, dict) or not isinstance(values.get("role_prefix"), str):
            raise ConfigError(f"{pyproject}: [tool.rlskit.environments.{name}] needs "
                              "role_prefix = \"...\"")
        url = os.environ.get(f"RLSKIT_{name.upper()}_DATABASE_URL") or values.get("database_url")
        out[name] = Environment(name, values["role_prefix"], url)
    return out


def _user_frame(exc: BaseException) -> str:
    """``file:line`` of the deepest traceback frame outside rlskit itself."""
    package = str(Path(__file__).parent)
    where = "model"
    if isinstance(exc, SyntaxError) and exc.filename:
        return f"{exc.filename}:{exc.lineno}"
    for frame, line in traceback.walk_tb(exc.__traceback__):
        filename = frame.f_code.co_filename
        internal = filename.startswith(package) and not filename.startswith(
            str(Path(package) / "examples"))
        if not internal and not filename.startswith("<frozen"):
            where = f"{filename}:{line}"
    return where


def load_model(spec: str | None, root: Path | None = None) -> Model:
    """Import ``"package.module:attribute"`` (a Model, or a function returning one)."""
    if not spec:
        raise ConfigError("no model configured: set model in [tool.rlskit] of pyproject.toml "
                          "(`rlskit init` starts a project) or pass --model "
                          "package.module:attribute")
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ConfigError(f"model {spec!r} must look like package.module:attribute")
    if root is not None and str(root) not in sys.path:
        sys.path.insert(0, str(root))
    try:
        module = importlib.import_module(module_name)
    except ModelError as exc:
        raise ModelError(f"{_user_frame(exc)}: {exc}") from None
    except ModuleNotFoundError as exc:
        raise ConfigError(f"cannot import model module {module_name!r}: {exc}") from None
    except Exception as exc:  # the user's module failed while importing
        raise ConfigError(f"{_user_frame(exc)}: error importing model module {module_name!r}: "
                          f"{type(exc).__name__}: {exc}") from None
    try:
        value = getattr(module, attr)
    except AttributeError:
        raise ConfigError(f"module {module_name!r} has no attribute {attr!r}") from None
    if callable(value) and not isinstance(value, Model):
        value = value()
    if not isinstance(value, Model):
        raise ConfigError(f"{spec} is a {type(value).__name__}, not an rlskit Model")
    return value
