"""Review by meaning: a change read off the access matrix, cell by cell, each classified
exactly (widening, narrowing, neutral); a refactor that keeps the matrix reports nothing."""

from __future__ import annotations

import dataclasses
import json

from test_cli import project, rlskit

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
    assert "1 cell(s) change: 1 widening, 0 narrowing" in result.stderr
    listed = json.loads(rlskit("review", "-d", example.db.url, "--format", "json",
                               cwd=root).stdout)
    assert listed == [{"actor": "member", "relation": "public.membership", "command": "DELETE",
                       "before": "own rows", "after": "own tenant", "kind": "widening"}]
