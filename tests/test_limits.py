"""Per-role limits: role settings the migrations create and the diff compares, applied
with every request context (SET ROLE does not load a role's settings)."""

from __future__ import annotations

import psycopg
import pytest
from conftest import Example
from psycopg import errors

from rlskit import ModelError, generate_sql
from rlskit.context import for_role
from rlskit.diff import diff_database, drift_sql
from rlskit.examples.saas import build_model
from rlskit.model import Model
from rlskit.psycopg import transaction

ROLE_SETTINGS = """
SELECT r.rolname, s.setconfig, r.rolconnlimit FROM pg_roles r
LEFT JOIN pg_db_role_setting s ON s.setrole = r.oid AND s.setdatabase = 0
WHERE r.rolname = %s"""


def limited(prefix: str) -> Model:
    model = build_model(role_prefix=prefix)
    runner = model.roles["runner"]
    runner.limits = (("statement_timeout", "150ms"), ("work_mem", "8MB"))
    runner.connection_limit = 5
    return model


def test_limits_are_validated():
    model = Model()
    for kwargs, message in [
        ({"limits": {"search_path": "x"}}, "'search_path' is not a per-role limit"),
        ({"limits": {"app.tenant_id": "x"}}, "is not a per-role limit"),
        ({"limits": {"work_mem": ""}}, "limit work_mem must be a value like"),
        ({"connection_limit": -2}, "connection_limit must be a non-negative integer"),
    ]:
        with pytest.raises(ModelError, match=message):
            model.role("r", **kwargs)
    role = model.role("analyst", limits={"work_mem": "64MB", "statement_timeout": 30000},
                      connection_limit=3)
    assert role.limits == (("statement_timeout", "30000"), ("work_mem", "64MB"))


def test_limits_are_role_settings_and_diffed(example: Example):
    model = limited(example.db.role_prefix)
    runner = model.role_name("runner")
    assert f"ALTER ROLE {runner} SET statement_timeout TO '150ms'" in generate_sql(model)
    with example.db.connect() as conn:
        assert [c.action for c in diff_database(conn, model)] == ["alter"]
        conn.execute(drift_sql(diff_database(conn, model), 18))
        assert conn.execute(ROLE_SETTINGS, [runner]).fetchone() == (
            runner, ["statement_timeout=150ms", "work_mem=8MB"], 5)
        assert diff_database(conn, model) == []
        model.roles["runner"].limits = (("work_mem", "4MB"),)
        model.roles["runner"].connection_limit = None
        script = drift_sql(diff_database(conn, model), 18)
        assert "CONNECTION LIMIT -1" in script and "RESET ALL" in script
        conn.execute(script)
        assert conn.execute(ROLE_SETTINGS, [runner]).fetchone() == (runner, ["work_mem=4MB"], -1)
        assert diff_database(conn, model) == []
        conn.rollback()


def test_a_request_in_a_limited_role_is_cut_off(example: Example):
    model = limited(example.db.role_prefix)
    ctx = for_role(model, "runner", tenant_id=example.data.a.id)
    assert ("statement_timeout", "150ms") in ctx.limits
    with example.db.connect(user=example.role("app_authenticator")) as conn:
        with pytest.raises(errors.QueryCanceled), transaction(conn, ctx):
            conn.execute("SELECT pg_sleep(2)")
        with transaction(conn, for_role(model, "member", tenant_id=example.data.a.id)):
            conn.execute("SELECT pg_sleep(0.3)")  # no limit for members
        assert conn.execute("SHOW statement_timeout").fetchone() == ("0",)  # nothing left


def test_children_inherit_the_nearest_limits():
    model = Model()
    parent = model.role("parent", limits={"statement_timeout": "5s", "work_mem": "8MB"})
    child = model.role("child", inherits=parent, limits={"work_mem": "64MB"})
    assert model.limits(child) == (("statement_timeout", "5s"), ("work_mem", "64MB"))


def test_connection_limit_applies_to_logins(example: Example):
    model = limited(example.db.role_prefix)
    with example.db.connect() as conn:
        conn.execute(drift_sql(diff_database(conn, model), 18))
        conn.execute(f"ALTER ROLE {model.role_name('runner')} LOGIN CONNECTION LIMIT 1")
        conn.commit()
    with example.db.connect(user=model.role_name("runner")), \
            pytest.raises(psycopg.OperationalError, match="too many connections"):
        example.db.connect(user=model.role_name("runner"))


def test_autogenerate_alters_the_role_and_reverses_it(rlskit_db):
    from alembic.autogenerate import render_python_code
    from alembic.operations import ops as alembic_ops
    from test_migrations import SETTINGS, apply, autogenerate, names, upgrade

    model = build_model(role_prefix=rlskit_db.role_prefix)
    upgrade(SETTINGS, "head", rlskit_db.url, None, model=model)
    runner = model.roles["runner"]
    runner.limits, runner.connection_limit = (("statement_timeout", "150ms"),), 5
    proposed = autogenerate(rlskit_db.url, model)
    assert names(proposed) == ["alter_role"]
    code = render_python_code(alembic_ops.UpgradeOps(ops=proposed))
    assert "settings={'statement_timeout': '150ms'}" in code
    assert "connection_limit=5" in code
    apply(rlskit_db.url, model, proposed)
    assert autogenerate(rlskit_db.url, model) == []
    apply(rlskit_db.url, model, [proposed[0].reverse()])
    runner.limits, runner.connection_limit = (), None
    assert autogenerate(rlskit_db.url, model) == []
