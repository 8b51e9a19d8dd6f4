"""Generated policies plan well: the helper runs once (InitPlan) and the tenant index is used."""

from __future__ import annotations

import re

import pytest

from rlskit.examples.install import install
from rlskit.examples.saas import build_model

QUERIES = {
    "latest page": "SELECT * FROM flow ORDER BY created_at DESC LIMIT 50",
    "tenant-wide aggregate": "SELECT count(*) FROM flow",
    "all rows": "SELECT * FROM flow",
}


@pytest.fixture
def big_example(rlskit_db):
    model = build_model(role_prefix=rlskit_db.role_prefix)
    data = install(rlskit_db.url, model, rlskit_db.role_prefix + "owner",
                   flows_per_tenant=200, extra_tenants=50)
    return rlskit_db, model, data


@pytest.mark.parametrize("query", QUERIES.values(), ids=QUERIES.keys())
def test_helper_is_an_initplan_and_tenant_index_is_used(big_example, query):
    db, model, data = big_example
    with db.connect(user=model.role_name("app_authenticator")) as conn:
        conn.execute(f'SET LOCAL ROLE "{model.role_name("member")}"')
        conn.execute("SELECT set_config('app.tenant_id', %s, true)", [str(data.a.id)])
        plan = "\n".join(row[0] for row in conn.execute("EXPLAIN " + query))
    assert len(re.findall(r"^\s*InitPlan", plan, re.M)) == 1, plan
    assert re.search(r"Index Scan( Backward)? (using|on) flow_tenant_created", plan), plan
    assert re.search(r"Index Cond: \(tenant_id = ", plan), plan
    assert "current_setting" not in plan, plan
