"""Review by meaning: a change read off the access matrix, cell by cell, each classified
exactly (widening, narrowing, neutral); a refactor that keeps the matrix reports nothing."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

from alembic.script import ScriptDirectory
from test_cli import project, rlskit

from rlskit.config import load_config
from rlskit.examples import saas
from rlskit.migrations.commands import alembic_config
from rlskit.migrations.review import review as review_states
from rlskit.verify import verify_database
from rlskit.verify.review import review


def changes_of(example) -> list[tuple[str, str, str, str, str, str]]:
    with example.db.connect() as conn:
        found = review(verify_database(conn, example.model))
    return [(c.actor, c.command, c.relation, str(c.before), str(c.after), str(c.kind))
            for c in found]


def leave_tenant(example):
    membership = example.model.tables[("public", "membership")]
    return next(p for p in membership.policies if p.name == "leave_tenant")


def test_a_policy_that_opens_the_tenant_is_a_widening_of_exactly_that_cell(example):
    policy = leave_tenant(example)
    policy.using = dataclasses.replace(policy.using, sql="true")
    assert changes_of(example) == [
        ("member", "DELETE", "public.membership", "own rows", "own tenant", "widening")]


def test_a_revoked_command_is_a_narrowing(example):
    membership = example.model.tables[("public", "membership")]
    member = example.model.roles["member"]
    membership.grants[member] = tuple(p for p in membership.grants[member]
                                      if p.name != "DELETE")
    assert changes_of(example) == [
        ("member", "DELETE", "public.membership", "own rows", "denied", "narrowing")]


def test_a_refactor_with_the_same_matrix_changes_nothing(example):
    policy = leave_tenant(example)
    policy.using = dataclasses.replace(
        policy.using, sql="(SELECT rlskit.user_id()) = user_id AND true")
    assert changes_of(example) == []


def test_the_command_line_prints_the_cells_and_exits_1_on_a_widening(tmp_path, example):
    root = project(tmp_path, "from rlskit.examples.saas import build_model\n"
                             f"model = build_model(role_prefix={example.db.role_prefix!r})\n"
                             "policy = next(p for p in model.tables[('public', 'membership')]"
                             ".policies if p.name == 'leave_tenant')\n"
                             "import dataclasses\n"
                             "policy.using = dataclasses.replace(policy.using, sql='true')\n")
    result = rlskit("review", "-d", example.db.url, cwd=root)
    assert result.returncode == 1, result.stderr
    assert result.stdout.strip() == (
        "member: DELETE on public.membership: own rows → own tenant (widening)")
    assert ("database → model: 1 cell change: 1 widening, 0 narrowing, 0 neutral"
            in result.stderr)
    listed = json.loads(rlskit("review", "-d", example.db.url, "--format", "json",
                               cwd=root).stdout)
    assert listed["changes"] == [{
        "actor": "member", "relation": "public.membership", "command": "DELETE",
        "before": "own rows", "after": "own tenant", "kind": "widening", "acknowledged": None}]


# -- two states: revisions, the model, the database ------------------------------------

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = ScriptDirectory.from_config(alembic_config(load_config(REPO)))
RUNNER_CELLS = [("runner", "SELECT", "public.flow", "denied", "own tenant", "widening"),
                ("runner", "UPDATE", "public.flow", "denied", "own tenant", "widening")]


def cells(outcome) -> list[tuple[str, str, str, str, str, str]]:
    return [(c.actor, c.command, c.relation, str(c.before), str(c.after), str(c.kind))
            for c in outcome.changes]


def test_the_repository_revision_that_adds_the_runner_widens_exactly_its_cells(rlskit_cluster):
    outcome = review_states(load_config(REPO), saas.model, rlskit_cluster.admin_url,
                            "5fb1d6533171", "1a6f855f7b9a")
    assert cells(outcome) == RUNNER_CELLS
    # the revision acknowledges both, with its reasons
    assert [c.acknowledged for c in outcome.changes] == [
        "the runner reads its tenant's flows to run them",
        "and records their status (that column only)"]
    assert outcome.unacknowledged == []


def test_a_revision_is_named_relative_to_another(rlskit_cluster):
    outcome = review_states(load_config(REPO), saas.model, rlskit_cluster.admin_url,
                            "1a6f855f7b9a-1", "1a6f")
    assert (outcome.before, outcome.after) == ("5fb1d6533171", "1a6f855f7b9a")
    assert cells(outcome) == RUNNER_CELLS


def test_going_back_a_revision_is_a_narrowing(rlskit_cluster):
    outcome = review_states(load_config(REPO), saas.model, rlskit_cluster.admin_url,
                            "1a6f855f7b9a", "5fb1d6533171")
    assert cells(outcome) == [(a, c, r, after, before, "narrowing")
                              for a, c, r, before, after, _ in RUNNER_CELLS]
    assert [c.acknowledged for c in outcome.changes] == [None, None]


def test_head_and_the_model_have_the_same_matrix(rlskit_cluster):
    outcome = review_states(load_config(REPO), saas.model, rlskit_cluster.admin_url,
                            "head", "model")
    assert (outcome.before, outcome.changes) == (SCRIPTS.get_current_head(), [])


def test_the_readme_shows_the_review_of_the_repository_revisions(rlskit_cluster):
    result = rlskit("review", "5fb1d6533171", "1a6f855f7b9a", "-d", rlskit_cluster.admin_url,
                    cwd=REPO)
    assert result.returncode == 0, result.stderr
    readme = (REPO / "README.md").read_text()
    shown = readme.split("<!-- review-output -->")[1].split("```")[1].removeprefix("text\n")
    assert shown == (f"$ rlskit review 5fb1d6533171 1a6f855f7b9a\n{result.stdout}"
                     f"{' '.join(result.stderr.split())}\n")


def copy_project(tmp_path: Path) -> Path:
    """The repository's project (model, migrations) in `tmp_path`, to edit."""
    shutil.copytree(REPO / "migrations", tmp_path / "migrations",
                    ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "pyproject.toml").write_text(
        '[tool.rlskit]\nmodel = "rlskit.examples.saas:model"\nmigrations = "migrations"\n')
    return tmp_path


def test_an_unacknowledged_widening_exits_1_and_names_the_line_to_add(tmp_path, rlskit_cluster):
    root = copy_project(tmp_path)
    script = next((root / "migrations/versions").glob("1a6f855f7b9a_*.py"))
    script.write_text("\n".join(line for line in script.read_text().splitlines()
                                if "rlskit: widens runner UPDATE" not in line) + "\n")
    result = rlskit("review", "5fb1d6533171", "1a6f855f7b9a", "--format", "json",
                    "-d", rlskit_cluster.admin_url, cwd=root)
    assert result.returncode == 1, result.stderr
    listed = json.loads(result.stdout)
    assert [(c["command"], c["kind"], c["acknowledged"]) for c in listed["changes"]] == [
        ("SELECT", "widening", "the runner reads its tenant's flows to run them"),
        ("UPDATE", "widening", None)]
    assert ("add to the revision: # rlskit: widens runner UPDATE public.flow — <reason>"
            in result.stderr)


def test_a_malformed_acknowledgement_is_one_error_naming_its_line(tmp_path, rlskit_cluster):
    root = copy_project(tmp_path)
    script = next((root / "migrations/versions").glob("1a6f855f7b9a_*.py"))
    text = script.read_text().replace("# rlskit: widens runner UPDATE flow — and",
                                      "# rlskit: widens runner flow because")
    script.write_text(text)
    line = next(n for n, t in enumerate(text.splitlines(), 1) if "widens runner flow" in t)
    result = rlskit("review", "5fb1d6533171", "head", "-d", rlskit_cluster.admin_url,
                    cwd=root)
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: {script.name}:{line}: write an acknowledgement "
                                     "as `# rlskit: widens ACTOR COMMAND RELATION — reason`")


def test_rlskit_revision_prints_the_review_and_writes_it_into_the_twin(tmp_path, rlskit_cluster):
    root = copy_project(tmp_path)
    pyproject = root / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace("rlskit.examples.saas:model",
                                                       "app_rls:model"))
    with rlskit_cluster.database() as db:
        (root / "app_rls.py").write_text(
            "from rlskit.examples.saas import build_model\n"
            f"model = build_model(role_prefix={db.role_prefix!r})\n")
        assert rlskit("migrate", "-d", db.url, cwd=root).returncode == 0
        with (root / "app_rls.py").open("a") as source:  # read-only users now write flows
            source.write("flow = model.tables[('public', 'flow')]\n"
                         "flow.grants[model.roles['read_only']] = "
                         "flow.grants[model.roles['member']]\n")
        result = rlskit("revision", "-m", "read-only users write flows", "-d", db.url,
                        cwd=root)
    assert result.returncode == 0, result.stderr
    widened = ["read_only: INSERT on public.flow: denied → own tenant (widening)",
               "read_only: UPDATE on public.flow: denied → own tenant (widening)"]
    assert "review: 2 cells change: 2 widening, 0 narrowing, 0 neutral" in result.stderr
    assert all(f"  {line}" in result.stderr for line in widened)
    twin = next((root / "migrations/versions").glob("*read_only_users_write_flows.sql"))
    header = twin.read_text().split("\n-- The exact SQL")[0].splitlines()
    assert header[3:] == [
        "-- Review: 2 cells change: 2 widening, 0 narrowing, 0 neutral",
        f"--   {widened[0]}",
        "--     acknowledge with: # rlskit: widens read_only INSERT public.flow — <reason>",
        f"--   {widened[1]}",
        "--     acknowledge with: # rlskit: widens read_only UPDATE public.flow — <reason>"]


def test_a_review_of_one_table_probes_it_and_what_reads_it(example):
    model = example.model
    with example.db.connect() as conn:
        matrix = verify_database(conn, model, only={"public.membership"})
    probed = {c.relation for c in matrix.cells}
    # users' policy and the directory read membership; flow and tenant do not
    assert probed == {"public.membership", "public.users", "public.member_directory"}
