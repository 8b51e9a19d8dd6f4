"""``rlskit init``: a ``migrations/`` directory wired to rlskit, a model stub, and the
``[tool.rlskit]`` / ``[tool.alembic]`` settings (so ``alembic`` itself works too)."""

from __future__ import annotations

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


def init(root: Path, directory: str = "migrations") -> list[Path]:
    """Scaffold the project at `root`; returns the files written or changed."""
    location = root / directory
    if location.exists() and any(location.iterdir()):
        raise ConfigError(f"{location} already exists and is not empty")
    (location / "versions").mkdir(parents=True, exist_ok=True)
    written = [shutil.copy(TEMPLATE / name, location / name)
               for name in ("env.py", "script.py.mako")]
    out = [Path(p) for p in written]

    pyproject = root / "pyproject.toml"
    try:
        tool = tomllib.loads(pyproject.read_text()).get("tool", {}) if pyproject.exists() \
            else {}
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{pyproject}: invalid TOML: {exc}") from None
    additions = ""
    if "rlskit" not in tool:
        additions += (f'\n[tool.rlskit]\nmodel = "{MODEL_MODULE}:model"\n'
                      f'migrations = "{directory}"\n')
        stub = root / f"{MODEL_MODULE}.py"
        if not stub.exists():
            stub.write_text(MODEL_STUB)
            out.append(stub)
    if "alembic" not in tool:
        additions += f'\n[tool.alembic]\nscript_location = "%(here)s/{directory}"\n'
    if additions:
        _append(pyproject, additions)
        out.append(pyproject)

    gitignore = root / ".gitignore"
    if ".rlskit/" not in (gitignore.read_text().split() if gitignore.exists() else []):
        _append(gitignore, ".rlskit/\n")
        out.append(gitignore)
    return out
