"""What the seal closes, shown from both sides: the same attacks succeed against a model with
``sealed=False`` (so the red-team suite is known to be able to fail), and fail against the
grants store of a sealed data product (an analyst switching role and forging groups)."""

from __future__ import annotations

import psycopg
import pytest
from conftest import Example
from psycopg import errors, sql

from rlskit.checks import check_database, check_model
from rlskit.context import for_role
from rlskit.examples.install import install
from rlskit.examples.saas import build_model
from rlskit.psycopg import transaction


def unsealed_example(rlskit_db) -> Example:
    model = build_model(role_prefix=rlskit_db.role_prefix)
    model.context(sealed=False)
    owner = rlskit_db.role_prefix + "owner"
    return Example(rlskit_db, model, install(rlskit_db.url, model, owner), owner)


def test_without_the_seal_one_injected_statement_crosses_tenants(rlskit_db):
    example = unsealed_example(rlskit_db)
    b = example.data.b
    url = rlskit_db.cluster.url(rlskit_db.name, user=example.role("app_authenticator"))
    ctx = for_role(example.model, "read_only", tenant_id=example.data.a.id)
    with psycopg.connect(url) as conn, transaction(conn, ctx):
        conn.execute("SELECT set_config('role', %s, true), set_config('app.tenant_id', %s, "
                     "true)", [example.role("tenant_admin"), str(b.id)])
        seen = {t for (t,) in conn.execute("SELECT tenant_id FROM flow")}
        assert seen == {b.id}  # tenant B's rows, read from a tenant A request
        conn.execute("DELETE FROM flow WHERE tenant_id = %s", [b.id])  # and written
        raise psycopg.Rollback()


def test_check_warns_about_an_unsealed_context_in_the_model_and_the_database(rlskit_db):
    example = unsealed_example(rlskit_db)
    hits = [f for f in check_model(example.model) if f.rule == "RLS019"]
    assert sorted(f.object for f in hits) == ["rlskit.claim(name text)", "rlskit.department()",
                                              "rlskit.tenant_id()", "rlskit.user_id()"]
    assert all(f.severity == "warning" and "sealed=False" in f.fix for f in hits)
    with rlskit_db.connect() as conn:
        live = [f.object for f in check_database(conn, example.model) if f.rule == "RLS019"]
    assert sorted(live) == sorted(f.object for f in hits)
    sealed = build_model(role_prefix=rlskit_db.role_prefix)
    assert [f for f in check_model(sealed) if f.rule == "RLS019"] == []


def test_an_analyst_who_switches_role_and_forges_groups_gets_nothing(dev):
    """The grants store's attack: inside a sealed request as the analyst, SET ROLE NONE,
    become the engineer or the owner, forge app.groups and app.user_id."""
    dev.give("analyst", user="u-ann", reason="reports")
    dev.give("engineer", group="data-eng", reason="pipelines")
    dev.give("owner", grantor=None, user="u-boss", reason="owns it")
    with dev.gateway() as conn, \
            transaction(conn, for_role(dev.model, "sales_analytics_analyst", user_id="u-ann")):
        assert [r for (r,) in conn.execute("SELECT region FROM sales.orders")] == ["EU", "EU"]
        conn.execute("SET ROLE NONE")
        with pytest.raises(errors.InsufficientPrivilege), conn.transaction():  # not at all
            conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(dev.role("owner"))))
        for role in ("engineer",):
            conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(dev.role(role))))
            conn.execute("SELECT set_config('app.groups', '{data-eng}', true), "
                         "set_config('app.user_id', 'u-boss', true)")
            assert conn.execute("SELECT count(*) FROM sales.orders").fetchone()[0] == 0
            assert conn.execute("SELECT count(*) FROM sales.customers").fetchone()[0] == 0
            assert conn.execute("UPDATE sales.orders SET amount = 0").rowcount == 0
            assert conn.execute("DELETE FROM sales.customers").rowcount == 0
            try:
                with conn.transaction():
                    conn.execute("INSERT INTO sales.customers VALUES (99, 'x', 'EU')")
                inserted = True
            except errors.InsufficientPrivilege:
                inserted = False
            assert not inserted
            assert conn.execute("SELECT count(*) FROM rlskit.roles_held()").fetchone()[0] == 0
        raise psycopg.Rollback()
