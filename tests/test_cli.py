"""The command line: output, exit codes and one-line errors."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from support.cli import assert_one_line_error

from rlskit import generate_sql
from rlskit.examples.saas import model as example_model


def rlskit(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(cwd) if cwd else ""}
    return subprocess.run([sys.executable, "-m", "rlskit", *args], capture_output=True,
                          text=True, cwd=cwd, env=env, timeout=300)


def project(tmp_path: Path, model_source: str, spec: str = "app_rls:model") -> Path:
    (tmp_path / "pyproject.toml").write_text(f'[tool.rlskit]\nmodel = "{spec}"\n')
    (tmp_path / "app_rls.py").write_text(model_source)
    return tmp_path


GOOD_MODEL = """
from rlskit import Claim, Model
model = Model()
model.context(tenant_id=Claim("tenant_id", type="uuid"))
member = model.role("member")
model.tenant_table("notes", grants={member: "SELECT"})
"""


def test_sql_uses_the_configured_model(tmp_path):
    result = rlskit("sql", cwd=project(tmp_path, GOOD_MODEL))
    assert result.returncode == 0, result.stderr
    assert "CREATE POLICY tenant_isolation ON public.notes" in result.stdout


def test_sql_model_flag_and_out_file(tmp_path):
    target = tmp_path / "out.sql"
    result = rlskit("sql", "--model", "rlskit.examples.saas:model", "--pg-version", "15",
                    "--out", str(target))
    assert result.returncode == 0, result.stderr
    assert target.read_text() == generate_sql(example_model, pg_version=15)


def test_model_error_names_file_line_and_object(tmp_path):
    source = GOOD_MODEL + 'model.tables[("public", "notes")].policy(\n' \
        '    "mine", to=member, using="owner = = 1")\n'
    result = rlskit("sql", cwd=project(tmp_path, source))
    assert_one_line_error(result, "app_rls.py:7", "table 'notes', policy 'mine'",
                          "syntax error", "'owner = = 1'")


def test_unknown_role_is_exit_2(tmp_path):
    source = GOOD_MODEL.replace('grants={member: "SELECT"}', 'grants={"ghost": "SELECT"}')
    assert_one_line_error(rlskit("sql", cwd=project(tmp_path, source)), "unknown role 'ghost'")


@pytest.mark.parametrize("spec,fragment", [
    ("missing_module:model", "cannot import model module 'missing_module'"),
    ("app_rls:nothing", "has no attribute 'nothing'"),
    ("app_rls", "must look like package.module:attribute"),
    ("app_rls:member", "is a Role, not an rlskit Model"),
])
def test_bad_model_spec_is_exit_2(tmp_path, spec, fragment):
    assert_one_line_error(rlskit("sql", cwd=project(tmp_path, GOOD_MODEL, spec)), fragment)


def test_broken_model_module_is_exit_2(tmp_path):
    result = rlskit("sql", cwd=project(tmp_path, GOOD_MODEL + "undefined_name\n"))
    assert_one_line_error(result, "app_rls.py:7", "NameError")


def test_no_model_configured_is_exit_2(tmp_path):
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    assert_one_line_error(rlskit("sql", cwd=tmp_path), "no model configured")


def test_unsupported_version_is_exit_2():
    assert_one_line_error(rlskit("sql", "--model", "rlskit.examples.saas:model",
                                 "--pg-version", "12"), "PostgreSQL 12 is not supported")


def test_debug_shows_the_traceback(tmp_path):
    result = rlskit("--debug", "sql", cwd=project(tmp_path, GOOD_MODEL, "missing:model"))
    assert result.returncode != 0 and "Traceback" in result.stderr


def test_demo_on_a_server_is_isolated(rlskit_cluster):
    result = rlskit("demo", "--admin-url", rlskit_cluster.admin_url, "--database",
                    "rlskit_demo_test", "--format", "json")
    assert result.returncode == 0, result.stderr
    probes = json.loads(result.stdout)
    assert len(probes) == 16 and all(p["ok"] for p in probes)
    assert {p["cross_tenant_write"] for p in probes if p["table"] == "flow"} == {
        "refused", "denied"}
    member_flow = next(p for p in probes if (p["role"], p["table"]) == ("member", "flow"))
    assert member_flow["visible"] == 3 and member_flow["leaked"] == 0


def test_demo_on_a_missing_server_is_exit_2():
    assert_one_line_error(rlskit("demo", "--admin-url", "host=/nonexistent dbname=x"),
                          "connection")


LEAKY_MODEL = """
from rlskit import Model
model = Model()
member = model.role("member")
model.table("notes", rls=True, grants={member: "SELECT, TRUNCATE"})
model.waive("RLS013", "public.notes", reason="read through the notes_api view only")
"""


def test_check_the_example_model_is_clean():
    result = rlskit("check", "--model-only", "--model", "rlskit.examples.saas:model")
    assert result.returncode == 0, result.stderr
    assert "0 error(s), 0 warning(s), 0 waived" in result.stderr


def test_check_json_and_sarif_exit_1_on_errors(tmp_path):
    root = project(tmp_path, LEAKY_MODEL)
    result = rlskit("check", "--model-only", "--format", "json", cwd=root)
    assert result.returncode == 1, result.stderr
    found = {(f["rule"], f["object"], f["waived"]) for f in json.loads(result.stdout)}
    assert found == {("RLS013", "public.notes", "read through the notes_api view only"),
                     ("RLS014", "public.notes", None)}
    sarif = json.loads(rlskit("check", "--model-only", "--format", "sarif", cwd=root).stdout)
    assert sarif["version"] == "2.1.0"
    results = sarif["runs"][0]["results"]
    assert [(r["ruleId"], r["level"], "suppressions" in r) for r in results] == [
        ("RLS013", "warning", True), ("RLS014", "error", False)]
    rules = sarif["runs"][0]["tool"]["driver"]["rules"]
    assert rules[results[1]["ruleIndex"]]["id"] == "RLS014"


def test_check_a_live_database(tmp_path, rlskit_db):
    from conftest import make_example

    example = make_example(rlskit_db)
    root = project(tmp_path, "from rlskit.examples.saas import build_model\n"
                             f"model = build_model(role_prefix={rlskit_db.role_prefix!r})\n")
    clean = rlskit("check", "--database", rlskit_db.url, cwd=root)
    assert clean.returncode == 0, clean.stderr
    assert f"database {rlskit_db.name}: 0 error(s)" in clean.stderr
    with rlskit_db.connect() as conn:
        conn.execute(f"ALTER TABLE flow NO FORCE ROW LEVEL SECURITY; "
                     f"GRANT TRUNCATE ON flow TO {example.role('member')}")
        conn.commit()
    result = rlskit("check", "--database", rlskit_db.url, "--format", "json", cwd=root)
    assert result.returncode == 1, result.stderr
    assert {(f["rule"], f["object"]) for f in json.loads(result.stdout)} == {
        ("RLS004", "public.flow"), ("RLS014", "public.flow")}


def test_check_a_missing_database_is_exit_2():
    result = rlskit("check", "--model", "rlskit.examples.saas:model", "--database",
                    "postgresql://nobody@127.0.0.1:1/none?connect_timeout=2")
    assert_one_line_error(result, "connection")


def test_verify_builds_a_scratch_database_on_the_configured_server(rlskit_cluster):
    env_url = rlskit_cluster.url("postgres")
    result = subprocess.run(
        [sys.executable, "-m", "rlskit", "verify", "--model", "rlskit.examples.saas:model",
         "--format", "json"], capture_output=True, text=True, timeout=300,
        env={**os.environ, "RLSKIT_DATABASE_URL": env_url})
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] and len(report["cells"]) == 102
    assert "102 of 102 cells proven, 5 of 5 side channels closed" in result.stderr


def test_verify_a_broken_database_exits_1_with_the_cells(tmp_path, rlskit_db):
    from conftest import make_example

    make_example(rlskit_db)
    root = project(tmp_path, "from rlskit.examples.saas import build_model\n"
                             f"model = build_model(role_prefix={rlskit_db.role_prefix!r})\n")
    with rlskit_db.connect() as conn:
        conn.execute("ALTER TABLE flow NO FORCE ROW LEVEL SECURITY")
        conn.commit()
    markdown = rlskit("verify", "--database", rlskit_db.url, "--format", "markdown", cwd=root)
    assert markdown.returncode == 1, markdown.stderr
    assert "| public.flow | SELECT |" in markdown.stdout
    assert "✗ no rows" in markdown.stdout and "## Violations" in markdown.stdout
    page = rlskit("verify", "--database", rlskit_db.url, "--format", "html", cwd=root)
    assert page.returncode == 1
    assert page.stdout.startswith("<!DOCTYPE html>") and 'class="bad"' in page.stdout


@pytest.mark.parametrize(("fmt", "start"), [("mermaid", "flowchart LR"), ("dot", "digraph")])
def test_graph_formats(fmt, start):
    result = rlskit("graph", "--model", "rlskit.examples.saas:model", "--format", fmt)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(start) and "member_directory" in result.stdout


@pytest.fixture
def explained(tmp_path, rlskit_db):
    """The example in a database, a project whose model names its roles, and the command
    line of ``rlskit explain`` as a member of tenant A."""
    from conftest import make_example

    example = make_example(rlskit_db)
    root = project(tmp_path, "from rlskit.examples.saas import build_model\n"
                             f"model = build_model(role_prefix={rlskit_db.role_prefix!r})\n")

    def run(query: str, *more: str, role: str = "member") -> subprocess.CompletedProcess:
        return rlskit("explain", query, "--role", role, "--set",
                      f"tenant_id={example.data.a.id}", "--set",
                      f"user_id={example.data.a.member}", "-d", rlskit_db.url, *more, cwd=root)

    run.example = example  # type: ignore[attr-defined]
    return run


def test_explain_shows_the_plan_under_the_policies(explained, rlskit_db):
    result = explained("SELECT id FROM flow ORDER BY created_at DESC LIMIT 5")
    assert result.returncode == 0, result.stderr
    assert re.search(r"Filter: \(flow\.tenant_id = (\(InitPlan 1\)\.col1|\$0)\)",
                     result.stdout), result.stdout  # PostgreSQL 18 names it, 15 numbers it
    assert "hint" not in result.stdout
    plan = json.loads(explained("SELECT id FROM flow", "--format", "json",
                                "--analyze").stdout)
    with rlskit_db.connect() as conn:
        flows = conn.execute("SELECT count(*) FROM flow WHERE tenant_id = %s",
                             [explained.example.data.a.id]).fetchone()[0]
    assert plan["hints"] == [] and plan["plan"]["Actual Rows"] == flows  # tenant A's


def test_explain_analyze_leaves_the_data_alone(explained, rlskit_db):
    result = explained("DELETE FROM flow", "--analyze", role="tenant_admin")
    assert result.returncode == 0, result.stderr
    with rlskit_db.connect() as conn:
        assert conn.execute("SELECT count(*) FROM flow").fetchone()[0] > 2


@pytest.mark.parametrize(("args", "role", "message"), [
    (("SELECT 1; DROP TABLE flow",), "member", "one SELECT, INSERT, UPDATE or DELETE"),
    (("SELEKT 1",), "member", "not valid SQL"),
    (("SELECT nothing FROM flow",), "member", 'the query fails as member: column "nothing"'),
    (("SELECT 1",), "ghost", "ghost"),
    (("SELECT 1", "--set", "org=1"), "member", "unknown context name 'org'"),
    (("SELECT 1", "--set", "tenant_id"), "member", "write name=value"),
])
def test_explain_refuses_bad_input_in_one_line(explained, args, role, message):
    assert_one_line_error(explained(*args, role=role), message)


def test_check_with_a_baseline_reports_only_new_findings(tmp_path, rlskit_db):
    from conftest import make_example

    example = make_example(rlskit_db)
    root = project(tmp_path, "from rlskit.examples.saas import build_model\n"
                             f"model = build_model(role_prefix={rlskit_db.role_prefix!r})\n")
    baseline = tmp_path / "rls-baseline.json"

    def run(statement: str) -> subprocess.CompletedProcess:
        with rlskit_db.connect() as conn:
            conn.execute(statement)
            conn.commit()
        return rlskit("check", "--database", rlskit_db.url, "--baseline", str(baseline),
                      "--format", "json", cwd=root)

    recorded = run("ALTER TABLE flow NO FORCE ROW LEVEL SECURITY")  # an old database's error
    assert recorded.returncode == 0, recorded.stderr
    assert "recorded 1 finding(s)" in recorded.stderr
    assert [(e["rule"], e["object"]) for e in json.loads(baseline.read_text())["findings"]] \
        == [("RLS004", "public.flow")]
    again = run("SELECT 1")
    assert again.returncode == 0, again.stderr
    assert [(f["rule"], f["waived"]) for f in json.loads(again.stdout)] == [
        ("RLS004", "recorded in the baseline rls-baseline.json")]
    new = run(f"GRANT TRUNCATE ON flow TO {example.role('member')}")  # a new mistake counts
    assert new.returncode == 1
    assert sorted((f["rule"], f["waived"] is None) for f in json.loads(new.stdout)) == [
        ("RLS004", False), ("RLS014", True)]
    fixed = run(f"ALTER TABLE flow FORCE ROW LEVEL SECURITY; "
                f"REVOKE TRUNCATE ON flow FROM {example.role('member')}")
    assert fixed.returncode == 0, fixed.stderr
    assert "1 baseline finding(s) no longer found: RLS004 public.flow" in fixed.stderr


def test_check_refuses_a_file_that_is_not_a_baseline(tmp_path):
    root = project(tmp_path, GOOD_MODEL)
    (root / "other.json").write_text('{"findings": 3}')
    result = rlskit("check", "--model-only", "--baseline", "other.json", cwd=root)
    assert_one_line_error(result, "other.json is not an rlskit check baseline")
