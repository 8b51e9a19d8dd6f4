"""A new user's first project, as the README's "Your first project" section tells it: every
block of that section runs in order, through the installed `rlskit` and `alembic` commands,
in a project of its own (not rlskit's example) on its own development server. Then the ways
a first project goes wrong, each one line on stderr and exit code 2."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from support.cli import assert_one_line_error
from support.readme import blocks

BIN = Path(sys.executable).parent


def run(args: list[str] | str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    command = ["bash", "-euo", "pipefail", "-c", args] if isinstance(args, str) else args
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=600)


@pytest.fixture(scope="module")
def user_env(rlskit_cluster) -> dict[str, str]:
    """A user's shell: rlskit's environment on PATH, no database configured; the policy
    tests of the project run on this test run's server."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("RLSKIT_DATABASE_URL", "DATABASE_URL", "RLSKIT_CONTEXT_KEY")}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["RLSKIT_TEST_DATABASE_URL"] = rlskit_cluster.admin_url
    return env


def _directory() -> Path:
    # the development server runs as a system user under root: it must reach the project
    path = Path(tempfile.mkdtemp(prefix="rlskit-first-project-"))
    path.chmod(0o711)
    return path


@pytest.fixture(scope="module")
def project(user_env) -> Iterator[Path]:
    """The walked-through project (its development server stopped afterwards)."""
    root = _directory()
    try:
        for language, text in blocks(section="Your first project"):
            marker, _, body = text.partition("\n")
            if language == "sh":
                result = run(text, root, user_env)
                assert result.returncode == 0, f"{text}\n{result.stdout}\n{result.stderr}"
            elif marker.startswith("# file: "):
                path = root / marker.removeprefix("# file: ")
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text)
            elif marker.startswith("# append: "):
                with (root / marker.removeprefix("# append: ")).open("a") as f:
                    f.write(body)
            else:
                raise AssertionError(f"a block of the walkthrough does nothing: {text[:60]!r}")
        yield root
    finally:
        run([str(BIN / "rlskit"), "db", "stop"], root, user_env)
        shutil.rmtree(root, ignore_errors=True)


def rlskit(project: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return run([str(BIN / "rlskit"), *args], project, env)


def test_the_walkthrough_leaves_two_revisions_applied_and_nothing_to_do(project, user_env):
    versions = sorted(p.name for p in (project / "migrations/versions").glob("*.py"))
    assert len(versions) == 2 and len(list((project / "migrations/versions").glob("*.sql"))) == 2
    status = rlskit(project, user_env, "status", "--format", "json")
    assert status.returncode == 0, status.stderr
    assert '"pending": []' in status.stdout and '"uncaptured": ""' in status.stdout
    matrix = (project / "access-matrix.txt").read_text()
    assert "own tenant" in matrix and "✗ " not in matrix.split("\n", 1)[1]
    # piped output: one line per row, no identifier wrapped
    assert re.search(r"│ public\.organization +│ SELECT +│", matrix)
    # plain alembic and rlskit agree on where the database is
    head = rlskit(project, user_env, "current").stdout.strip()
    assert head in run([str(BIN / "alembic"), "current"], project, user_env).stdout


def test_migrate_and_downgrade_say_what_they_did(project, user_env):
    history = rlskit(project, user_env, "history", "--format", "json").stdout
    first, second = re.findall(r'"revision": "(\w+)"', history)[::-1]
    down = rlskit(project, user_env, "downgrade", "-1")
    assert down.returncode == 0 and f"from {second} to {first}" in down.stderr
    status = rlskit(project, user_env, "status")
    assert status.returncode == 1 and f"({second}): run `rlskit migrate`" in status.stdout
    behind = rlskit(project, user_env, "revision", "-m", "too early")
    assert_one_line_error(behind, "Target database is not up to date", "run `rlskit migrate` first")
    up = rlskit(project, user_env, "migrate")
    assert up.returncode == 0 and f"upgraded from {first} to {second}" in up.stderr
    again = rlskit(project, user_env, "migrate")
    assert again.returncode == 0 and f"already at head: {second}" in again.stderr


def test_status_reports_model_changes_no_revision_captures(project, user_env):
    rules = project / "pm/rls.py"
    before = rules.read_text()
    try:
        rules.write_text(before + '\nmodel.role("auditor", inherits=viewer)\n')
        status = rlskit(project, user_env, "status")
        assert status.returncode == 1
        assert "changes no revision captures (+1 role, +2 memberships, +3 grants)" in status.stdout
        # a model the server refuses: nothing is written, one line names the object
        rules.write_text(before + '\ntasks.policy("broken", command="SELECT", to=viewer, '
                         'using="no_such_function(assignee_id)")\n')
        listed = sorted((project / "migrations/versions").iterdir())
        refused = rlskit(project, user_env, "revision", "-m", "broken")
        assert_one_line_error(refused, "revision refused, nothing written",
                              "policy public.task.broken", "no_such_function")
        assert sorted((project / "migrations/versions").iterdir()) == listed
        assert_one_line_error(rlskit(project, user_env, "verify"), "CREATE POLICY broken",
                              "no_such_function")
    finally:
        rules.write_text(before)


def test_every_url_form_of_sqlalchemy_users_is_accepted(project, user_env):
    url = rlskit(project, user_env, "db", "url").stdout.strip()
    dsn = psycopg.conninfo.conninfo_to_dict(url)
    socket = dsn["host"]
    forms = [f"postgresql+psycopg://postgres@/postgres?host={socket}",
             f"postgresql+psycopg2://postgres@/postgres?host={socket}",
             f"postgres://postgres@/postgres?host={socket}",
             f"host={socket} user=postgres dbname=postgres"]
    for form in forms:
        for command in ("diff", "check"):
            result = rlskit(project, user_env, command, "-d", form)
            assert result.returncode == 0, (form, command, result.stderr)
        via_env = run([str(BIN / "rlskit"), "diff"], project, {**user_env, "DATABASE_URL": form})
        assert via_env.returncode == 0, (form, via_env.stderr)


@pytest.mark.parametrize("command", ["diff", "check", "migrate", "revision", "status",
                                     "verify"])
@pytest.mark.parametrize("url", ["notaurl", "mysql://root:hunter2@db/app",
                                 "postgresql://u@h/d?nosuchoption=1"])
def test_a_bad_url_is_one_line_and_exit_2(project, user_env, command, url):
    args = [command, "-m", "x"] if command == "revision" else [command]
    result = rlskit(project, user_env, *args, "-d", url)
    assert_one_line_error(result, "URL")
    assert "hunter2" not in result.stderr
    via_env = run([str(BIN / "rlskit"), *args], project, {**user_env, "DATABASE_URL": url})
    assert_one_line_error(via_env, "URL")


@pytest.mark.parametrize("args", [["migrate"], ["revision", "-m", "x"], ["diff"], ["check"],
                                  ["verify"], ["status"], ["db", "start"], ["demo"]])
def test_outside_a_project_nothing_is_started(user_env, args):
    empty = _directory()
    try:
        result = run([str(BIN / "rlskit"), *args], empty, user_env)
        assert_one_line_error(result, "rlskit init")
        assert not (empty / ".rlskit").exists()
    finally:
        shutil.rmtree(empty, ignore_errors=True)


def test_help_keeps_bracketed_text_and_version_is_printed(user_env):
    home = Path.home()
    helped = run([str(BIN / "rlskit"), "migrate", "--help"], home, user_env)
    assert "[tool.rlskit]" in helped.stdout
    version = run([str(BIN / "rlskit"), "--version"], home, user_env)
    assert re.fullmatch(r"rlskit \d+\.\d+\.\d+\S*\n", version.stdout)
