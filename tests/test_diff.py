"""Diff by meaning against a live database: no false drift, every real drift, nothing
unmanaged, and the database left untouched."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys

import psycopg
import psycopg.sql
import pytest
from support.snapshots import snapshot

from rlskit.diff import diff_database, drift_sql


def actions(changes) -> list[tuple]:
    return [(c.action, *c.obj.key) for c in changes]


def test_no_drift_right_after_install(example):
    with example.db.connect() as conn:
        before = snapshot(conn, example.db.role_prefix)
        assert diff_database(conn, example.model) == []
        assert snapshot(conn, example.db.role_prefix) == before


def test_reformatted_expressions_are_not_drift(example):
    for table in example.model.tables.values():
        for policy in table.policies:
            if policy.using:
                shouted = policy.using.sql.upper().replace(" = ", "   =   ")
                policy.using = dataclasses.replace(policy.using, sql=f"({shouted})")
    del example.model.views[("public", "member_directory")]
    example.model.view("member_directory", grants={"member": "SELECT"}, query=(
        "select U.ID, u.email, U.First_Name, u.last_name\n  from public.users AS u "
        "inner join membership AS m on (m.user_id = u.id)"))
    with example.db.connect() as conn:
        assert diff_database(conn, example.model) == []


def test_changed_using_is_exactly_one_alter_policy(example):
    membership = example.model.tables[("public", "membership")]
    policy = next(p for p in membership.policies if p.name == "leave_tenant")
    assert policy.using is not None
    policy.using = dataclasses.replace(
        policy.using, sql="user_id = (SELECT rlskit.user_id()) AND role <> 'owner'")
    with example.db.connect() as conn:
        changes = diff_database(conn, example.model)
        assert actions(changes) == [("alter", "policy", "public", "membership", "leave_tenant")]
        script = drift_sql(changes, example.db.version)
        assert script.count("ALTER POLICY leave_tenant ON public.membership") == 1
        conn.execute(script)
        assert diff_database(conn, example.model) == []


def test_changed_command_is_drop_and_create(example):
    users = example.model.tables[("public", "users")]
    policy = next(p for p in users.policies if p.name == "fellow_members")
    policy.command = "ALL"
    with example.db.connect() as conn:
        changes = diff_database(conn, example.model)
        assert actions(changes) == [("replace", "policy", "public", "users", "fellow_members")]
        script = drift_sql(changes, example.db.version)
        assert "DROP POLICY fellow_members ON public.users;" in script
        conn.execute(script)
        assert diff_database(conn, example.model) == []


DRIFT = {
    "dropped policy": ("DROP POLICY leave_tenant ON membership",
                       ("create", "policy", "public", "membership", "leave_tenant")),
    "no force": ("ALTER TABLE flow NO FORCE ROW LEVEL SECURITY",
                 ("alter", "rls", "public", "flow")),
    "disabled rls": ("ALTER TABLE flow DISABLE ROW LEVEL SECURITY",
                     ("create", "rls", "public", "flow")),
    "revoke": ('REVOKE DELETE ON membership FROM "{member}"',
               ("alter", "grant", "public", "membership", "{member}")),
    "bypassrls": ('ALTER ROLE "{member}" BYPASSRLS', ("alter", "role", "{member}")),
    "security_invoker removed": ("ALTER VIEW member_directory RESET (security_invoker)",
                                 ("alter", "view", "public", "member_directory")),
    "using changed behind our back": (
        "ALTER POLICY tenant_isolation ON flow USING (true)",
        ("alter", "policy", "public", "flow", "tenant_isolation")),
}


@pytest.mark.parametrize(("statement", "expected"), DRIFT.values(), ids=DRIFT.keys())
def test_drift_is_reported_and_fixed(example, statement, expected):
    member = example.role("member")
    if "security_invoker" in statement and example.db.version < 15:
        pytest.skip("no security_invoker before PostgreSQL 15")
    with example.db.connect() as conn:
        conn.execute(statement.format(member=member))
        changes = diff_database(conn, example.model)
        assert actions(changes) == [tuple(k.format(member=member) for k in expected)]
        conn.execute(drift_sql(changes, example.db.version))
        assert diff_database(conn, example.model) == []


def test_unmanaged_objects_are_left_alone(example):
    other = example.db.role_prefix + "analyst"
    with example.db.connect() as conn:
        conn.execute(f'CREATE ROLE "{other}"')
        conn.execute(f'GRANT SELECT ON flow TO "{other}"')
        conn.execute(f'CREATE POLICY analysts ON flow FOR SELECT TO "{other}" USING (true)')
        conn.execute(f'GRANT "{example.role("member")}" TO "{other}"')
        conn.execute("CREATE VIEW flow_names AS SELECT name FROM flow")
        assert diff_database(conn, example.model) == []


def test_cli_diff_exit_codes(example):
    env = {**os.environ, "RLSKIT_DATABASE_URL": example.db.url}
    code = ("from rlskit.examples.saas import build_model; "
            f"model = build_model({example.db.role_prefix!r})")

    def run() -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-c", code + "; import sys; sys.modules['m'] = sys.modules[__name__]"
             "; from rlskit.cli import app; app(['diff', '--model', 'm:model'])"],
            capture_output=True, text=True, env=env, timeout=120)

    clean = run()
    assert clean.returncode == 0, clean.stderr
    assert "no drift" in clean.stderr
    member = example.role("member")
    with example.db.connect() as conn:
        conn.execute("DROP POLICY leave_tenant ON membership")
        conn.execute("ALTER TABLE flow NO FORCE ROW LEVEL SECURITY")
        conn.execute(f'REVOKE DELETE ON membership FROM "{member}"')
        conn.execute(f'ALTER ROLE "{member}" BYPASSRLS')
    drifted = run()
    assert drifted.returncode == 1, drifted.stderr
    assert "4 difference(s)" in drifted.stderr
    for fix in ("CREATE POLICY leave_tenant ON public.membership",
                "ALTER TABLE public.flow FORCE ROW LEVEL SECURITY;",
                f"GRANT DELETE\n  ON TABLE public.membership\n  TO {member};",
                "NOBYPASSRLS\n", "CONNECTION LIMIT -1;"):
        assert fix in drifted.stdout, drifted.stdout


def test_cli_diff_outside_a_project_without_database_is_exit_2(tmp_path):
    env = {k: v for k, v in os.environ.items()
           if k not in ("RLSKIT_DATABASE_URL", "DATABASE_URL")}
    result = subprocess.run([sys.executable, "-m", "rlskit", "diff", "--model",
                             "rlskit.examples.saas:model"], capture_output=True, text=True,
                            env=env, cwd=tmp_path, timeout=120)
    assert result.returncode == 2 and "rlskit init" in result.stderr
    assert "--database URL" in result.stderr and not (tmp_path / ".rlskit").exists()


DIRECTORY = "SELECT {} FROM users u JOIN membership m ON m.user_id = u.id"


@pytest.mark.parametrize(("query", "action"), [
    # columns change: dropped and created (CREATE OR REPLACE could not undo an addition)
    (DIRECTORY.format("u.id, u.email"), "replace"),
    (DIRECTORY.format("u.id, u.email, u.first_name, u.last_name, m.role"), "replace"),
    # same columns, other rows: replaced in place
    (DIRECTORY.format("u.id, u.email, u.first_name, u.last_name") + " WHERE u.email <> ''",
     "alter"),
])
def test_changed_view_query(example, query, action):
    del example.model.views[("public", "member_directory")]
    example.model.view("member_directory", grants={"member": "SELECT"}, query=query)
    with example.db.connect() as conn:
        changes = diff_database(conn, example.model)
        expected = [(action, "view", "public", "member_directory")]
        if action == "replace":  # the view's grants are revoked before, granted after
            grant = ("grant", "public", "member_directory", example.role("member"))
            expected = [("drop", *grant), *expected, ("create", *grant)]
        assert actions(changes) == expected
        conn.execute(drift_sql(changes, example.db.version))
        assert diff_database(conn, example.model) == []


def test_an_expression_the_server_rejects_is_drift_not_a_crash(example):
    users = example.model.tables[("public", "users")]
    policy = next(p for p in users.policies if p.name == "fellow_members")
    assert policy.using is not None
    policy.using = dataclasses.replace(policy.using, sql="no_such_column = 1")
    with example.db.connect() as conn:
        changes = diff_database(conn, example.model)
        assert actions(changes) == [("alter", "policy", "public", "users", "fellow_members")]


def test_a_context_removed_from_the_model_drops_its_helper(example):
    del example.model.claims["department"]
    example.model.assignments = [a for a in example.model.assignments if not a.attributes]
    with example.db.connect() as conn:
        changes = diff_database(conn, example.model)
        assert actions(changes) == [("drop", "function", "rlskit", "department")]
        conn.execute(drift_sql(changes, example.db.version))
        assert diff_database(conn, example.model) == []
        assert conn.execute("SELECT to_regprocedure('rlskit.claim(text)') IS NOT NULL"
                            ).fetchone()[0]


def test_a_table_removed_from_the_model_stays_closed(example):
    """Its policies go; RLS stays enabled and forced, so nobody reads a row of it (the
    README's promise)."""
    del example.model.tables[("public", "flow")]
    with example.db.connect() as conn:
        changes = diff_database(conn, example.model)
        assert {c.obj.key[:2] for c in changes} <= {("policy", "public"), ("grant", "public")}
        assert ("drop", "policy", "public", "flow", "tenant_isolation") in actions(changes)
        conn.execute(drift_sql(changes, example.db.version))
        conn.commit()
        assert conn.execute("SELECT relrowsecurity, relforcerowsecurity, (SELECT count(*) "
                            "FROM pg_policy WHERE polrelid = 'flow'::regclass) "
                            "FROM pg_class WHERE oid = 'flow'::regclass").fetchone() == (
            True, True, 0)
        assert conn.execute("SELECT count(*) FROM flow").fetchone()[0] > 0  # rows are there
    for role in ("member", "tenant_admin"):
        with example.session(role, example.data.a.id, example.data.a.member) as conn:
            try:
                seen = conn.execute("SELECT count(*) FROM flow").fetchone()[0]
            except psycopg.errors.InsufficientPrivilege:
                seen = 0  # its grants went too
            assert seen == 0, role
    with example.db.connect() as conn:  # FORCE binds the owner too
        conn.execute(psycopg.sql.SQL("SET ROLE {}").format(psycopg.sql.Identifier(
            example.owner)))
        assert conn.execute("SELECT count(*) FROM flow").fetchone()[0] == 0
