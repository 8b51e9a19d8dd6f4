"""``rlskit init``: a ``migrations/`` directory wired to rlskit, a model stub, and the
``[tool.rlskit]`` / ``[tool.alembic]`` settings (so ``alembic`` itself works too)."""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

from ..errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["init"]

TEMPLATE = Path(__file__).parent / "template"
MODEL_MODULE = "rls_model"
_SPEC = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_][\w.]*")
_NO_METADATA = "run_migrations(target_metadata=None)\n"

MODEL_STUB = '''"""The row-level security model: who may see and change which rows.

Generate its SQL with `rlskit sql`, a migration with `rlskit revision -m "..."`.
"""

from rlskit import Claim, Model

model = Model(schema="public", settings_prefix="app")
model.context(
    tenant_id=Claim("tenant_id", type="uuid"),  # app.tenant_id, rlskit.tenant_id()
    user_id=Claim("sub", type="uuid"),          # app.user_id, rlskit.user_id()
)
member = model.role("member")
model.authenticator("app_authenticator")

# Protect a table that has a tenant column, e.g.:
# model.tenant_table("document", grants={member: "SELECT, INSERT, UPDATE"})
'''


def _append(path: Path, text: str) -> None:
    current = path.read_text() if path.exists() else ""
    separator = "\n" if current and not current.endswith("\n") else ""
    path.write_text(current + separator + text)


def init(root: Path, directory: str = "migrations", model: str | None = None,
         metadata: str | None = None) -> list[Path]:
    """Scaffold the project at `root`; returns the files written or changed. `model` is
    ``package.module:attribute`` (default: a stub in ``rls_model.py``); `metadata` the
    SQLAlchemy metadata Alembic manages, as ``package.module:Base.metadata``."""
    location = root / directory
    if location.exists() and any(location.iterdir()):
        raise ConfigError(f"{location} already exists and is not empty")
    for spec, what in ((model, "--model"), (metadata, "--metadata")):
        if spec is not None and not _SPEC.fullmatch(spec):
            raise ConfigError(f"{what} {spec!r} must look like package.module:attribute")
    (location / "versions").mkdir(parents=True, exist_ok=True)
    shutil.copy(TEMPLATE / "script.py.mako", location / "script.py.mako")
    env = (TEMPLATE / "env.py").read_text()
    if metadata is not None:
        module, _, attribute = metadata.partition(":")
        head, _, tail = attribute.partition(".")
        env = env.replace(_NO_METADATA, f"from {module} import {head}\n\n"
                          f"run_migrations(target_metadata={head}{'.' + tail if tail else ''})\n")
    (location / "env.py").write_text(env)
    out = [location / "env.py", location / "script.py.mako"]

    pyproject = root / "pyproject.toml"
    try:
        tool = tomllib.loads(pyproject.read_text()).get("tool", {}) if pyproject.exists() \
            else {}
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{pyproject}: invalid TOML: {exc}") from None
    additions = ""
    settings = tool.get("rlskit", {})
    keys = "".join(f'{key} = "{value}"\n' for key, value in (
        ("model", model or MODEL_MODULE + ":model"), ("migrations", directory))
        if key not in settings)
    if "model" not in settings and model is None and not (root / f"{MODEL_MODULE}.py").exists():
        (root / f"{MODEL_MODULE}.py").write_text(MODEL_STUB)
        out.append(root / f"{MODEL_MODULE}.py")
    header = re.search(r"^\[tool\.rlskit\][ \t]*(#.*)?$", pyproject.read_text(), re.M) \
        if pyproject.exists() else None
    if keys and header:  # under the existing header
        text = pyproject.read_text()
        pyproject.write_text(text[:header.end()] + "\n" + keys.rstrip("\n") + text[header.end():])
        out.append(pyproject)
    elif keys:
        additions += f"\n[tool.rlskit]\n{keys}"
    if "alembic" not in tool:
        additions += (f'\n[tool.alembic]\nscript_location = "%(here)s/{directory}"\n'
                      'prepend_sys_path = ["%(here)s"]  # env.py imports your package\n')
    if additions:
        _append(pyproject, additions)
        if pyproject not in out:
            out.append(pyproject)

    gitignore = root / ".gitignore"
    if ".rlskit/" not in (gitignore.read_text().split() if gitignore.exists() else []):
        _append(gitignore, ".rlskit/\n")
        out.append(gitignore)
    return out
