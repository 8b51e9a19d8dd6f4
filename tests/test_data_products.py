"""Data products: the sales analytics example in dev and prod in one cluster; each role's
rights, the owner granting roles (and nobody else), EU-only analysts, per-role timeouts."""

from __future__ import annotations

import psycopg
import pytest
from psycopg import errors
from support.products import regions

from rlskit import ModelError, access
from rlskit.context import for_role
from rlskit.diff import diff_database
from rlskit.examples.sales import build_model, orders
from rlskit.psycopg import transaction


def test_each_role_has_exactly_its_rights(dev):
    dev.grant("bob", "analyst", to="alice")
    dev.grant("bob", "engineer", to="carol")
    with dev.as_person("alice") as conn:
        assert regions(conn) == ["EU", "EU"]  # the analysts' row filter
        with pytest.raises(errors.InsufficientPrivilege):
            conn.execute("INSERT INTO sales.orders VALUES (9, 1, 'EU', 1)")
    with dev.as_person("carol") as conn:
        assert regions(conn) == ["EU", "EU", "US"]
        conn.execute("INSERT INTO sales.orders VALUES (9, 2, 'US', 5)")
        conn.execute("UPDATE sales.orders SET amount = amount + 1 WHERE region = 'US'")
    with dev.as_person("bob", "owner") as conn:
        assert regions(conn) == ["EU", "EU", "US", "US"]
    with dev.as_person("dave") as conn, pytest.raises(errors.InsufficientPrivilege):
        conn.execute("SELECT 1 FROM sales.orders")


def test_an_output_port_is_a_view_for_the_roles_it_names(dev):
    dev.grant("bob", "analyst", to="alice")
    dev.grant("bob", "engineer", to="carol")
    with dev.as_person("alice") as conn:  # the analysts' EU filter applies through it
        assert conn.execute("SELECT region, orders, revenue FROM sales.revenue_by_region"
                            ).fetchall() == [("EU", 2, 350)]
    with dev.as_person("carol") as conn, pytest.raises(errors.InsufficientPrivilege):
        conn.execute("SELECT 1 FROM sales.revenue_by_region")
    with pytest.raises(ModelError, match="has no role 'auditor'"):
        dev.model.products["sales_analytics"].output_port("x", query="SELECT 1",
                                                          to=["auditor"])


def test_only_the_owner_grants_the_products_roles(dev):
    dev.grant("bob", "engineer", to="carol")
    for grantor in ("carol", "alice", "dave"):
        with pytest.raises(errors.InsufficientPrivilege):
            dev.grant(grantor, "analyst", to="dave")
    with pytest.raises(errors.InsufficientPrivilege):  # not even its own role
        dev.grant("bob", "owner", to="dave")
    dev.grant("bob", "analyst", to="dave")
    with dev.as_person("dave") as conn:
        assert regions(conn) == ["EU", "EU"]


def test_dev_and_prod_share_the_cluster_without_interference(dev, prod):
    assert dev.role("analyst").endswith("dev_sales_analytics_analyst")
    assert prod.role("analyst").endswith("prod_sales_analytics_analyst")
    dev.grant("bob", "analyst", to="alice")
    with psycopg.connect(prod.db.cluster.url(prod.db.name, user=dev.person("alice"))) as conn, \
            pytest.raises(errors.InsufficientPrivilege):
        conn.execute("SELECT 1 FROM sales.orders")  # a dev analyst has nothing in prod
    for env in (dev, prod):
        with env.db.connect() as conn:
            assert diff_database(conn, env.model) == []


def test_an_analysts_statement_timeout_cuts_a_long_query(dev):
    dev.model.roles["sales_analytics_analyst"].limits = (("statement_timeout", "200ms"),)
    with dev.db.connect() as conn:
        for kind in ("analyst", "engineer"):
            access.grant(conn, dev.model, "sales_analytics", kind,
                         access.grantee(dev.model, user="u-1"), "timeout test")
    ctx = for_role(dev.model, "sales_analytics_analyst", user_id="u-1")
    gateway = dev.model.role_name("analytics_gateway")
    with dev.db.connect(user=gateway) as conn:
        with pytest.raises(errors.QueryCanceled), transaction(conn, ctx):
            conn.execute("SELECT pg_sleep(3) FROM sales.orders")
        with transaction(conn, for_role(dev.model, "sales_analytics_engineer",
                                        user_id="u-1")):
            assert len(conn.execute("SELECT pg_sleep(0.1) FROM sales.orders").fetchall()) == 3


def test_bad_product_declarations():
    model = build_model("x_")
    product = model.products["sales_analytics"]
    with pytest.raises(ModelError, match="has no role 'auditor'"):
        product.row_filter("auditor", orders, "true")
    with pytest.raises(ModelError, match="has no table 'invoices'"):
        product.row_filter(product.analyst, "invoices", "true")
    with pytest.raises(ModelError, match="declared twice"):
        model.data_product("sales_analytics", tables=["other"])
    with pytest.raises(ModelError, match="needs at least one table"):
        model.data_product("empty", tables=[])


def test_the_product_verifies(rlskit_cluster):
    """rlskit verify on a model without tenants: every role's rights are proven, writes to
    referenced rows included."""
    from rlskit.verify import verify_scratch

    matrix = verify_scratch(rlskit_cluster.url("postgres"), build_model("verify_"))
    assert matrix.ok, matrix.violations
    cells = {(c.actor, c.relation, c.command): c.promise for c in matrix.cells}
    assert cells[("sales_analytics_analyst", "sales.orders", "INSERT")] == "denied"
    assert cells[("sales_analytics_engineer", "sales.customers", "DELETE")] == \
        "beyond own tenant"
