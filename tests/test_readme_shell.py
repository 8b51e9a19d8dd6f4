"""The README's shell blocks run as written: the data products' `rlskit access` block in a
project with dev and prod environments, the `rlskit key` block against the example. (The
opening two commands run in `.ci/run`; "Your first project" in test_first_project.py.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import Example
from support.products import Environment
from support.readme import blocks
from test_access import project

from rlskit.keystore import list_keys, rotate
from rlskit.seal import ContextKey

BIN = Path(sys.executable).parent


def block(first_command: str) -> str:
    """The README's ``sh`` block that starts with `first_command`."""
    found = [text for _, text in blocks("sh") if text.startswith(first_command)]
    assert len(found) == 1, first_command
    return found[0]


def run(text: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    env = {**env, "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}"}
    result = subprocess.run(["bash", "-euo", "pipefail", "-c", text], cwd=cwd, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"{text}\n{result.stdout}\n{result.stderr}"
    return result


def test_the_access_block(tmp_path, dev: Environment, prod: Environment):
    env = project(tmp_path, dev, prod)
    result = run(block("rlskit access grant"), tmp_path, env)
    assert "department = 'Finance'" in result.stdout  # the list, then the history
    assert f"granted {dev.role('analyst')} to attribute department = 'Finance'" in result.stderr
    with prod.db.connect() as conn:  # promoted to prod, and not revoked there
        listed = conn.execute("SELECT count(*) FROM rlskit.access_grant").fetchone()[0]
    assert listed == 1


def test_the_key_block(tmp_path, example: Example):
    (tmp_path / "pyproject.toml").write_text('[tool.rlskit]\nmodel = '
                                             '"rlskit.examples.saas:model"\n')
    with example.db.connect() as conn:
        rotate(conn, example.model.helpers_schema, ContextKey.generate("k2026"))
        conn.commit()
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    result = run(block("rlskit key rotate --id k2027"), tmp_path, {**env,
                                                        "RLSKIT_DATABASE_URL": example.db.url})
    assert (tmp_path / "app.key").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "app.key").read_text().startswith("k2027:")
    assert "k2027" in {k["id"] for k in json.loads(result.stdout)}
    assert "secret" not in result.stdout.lower()
    with example.db.connect() as conn:
        retired = {k.kid for k in list_keys(conn, example.model.helpers_schema) if k.retired_at}
    assert "k2026" in retired
