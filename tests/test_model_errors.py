"""Every malformed model gives one ModelError naming the table, the policy and the text."""

from __future__ import annotations

import pytest

from rlskit import Claim, Model, ModelError, generate_sql
from rlskit.examples.saas import Flow


def base() -> tuple[Model, object]:
    model = Model()
    model.context(tenant_id=Claim("tenant_id", type="uuid"))
    return model, model.role("member")


def flow_policy(using: str, *, to: object = None, command: str = "ALL", table=Flow):
    model, member = base()
    flow = model.tenant_table(table, grants={member: "SELECT"})
    flow.policy("p", command=command, to=to or member, using=using)
    generate_sql(model)


def cycle():
    model = Model()
    model.role("a", inherits="b")
    model.role("b", inherits="c")
    model.role("c", inherits="a")
    generate_sql(model)


def duplicate_policy():
    model, member = base()
    flow = model.tenant_table("flow", grants={member: "SELECT"})
    flow.policy("p", to=member, using="true")
    flow.policy("p", to=member, using="false")


def grants(spec: str, table=Flow):
    model, member = base()
    model.tenant_table(table, grants={member: spec})


def view(query: str):
    model, member = base()
    model.view("v", query=query, grants={member: "SELECT"})


def no_tenant_context():
    model = Model()
    model.role("r")
    model.tenant_table("flow", grants={"r": "SELECT"})
    generate_sql(model)


def insert_with_using():
    model, member = base()
    model.tenant_table("flow").policy("p", command="INSERT", to=member, using="true")


CASES = {
    "syntax error": (lambda: flow_policy("tenant_id = = 1"),
                     "table 'flow', policy 'p': syntax error in expression: syntax error at or "
                     "near \"=\" in 'tenant_id = = 1'"),
    "smuggled clause": (lambda: flow_policy("true) WITH CHECK (false"),
                        "syntax error at or near \"WITH\" in 'true) WITH CHECK (false'"),
    "smuggled statement": (lambda: flow_policy("true; DROP TABLE flow"),
                           "syntax error at or near \";\" in 'true; DROP TABLE flow'"),
    "unknown role in to=": (lambda: flow_policy("true", to="ghost"),
                            "table 'flow', policy 'p': unknown role 'ghost' in to="),
    "unknown role in grants": (lambda: grants_to_ghost(),
                               "table 'flow': unknown role 'ghost' in grants"),
    "unknown context": (lambda: flow_policy("tenant_id = rlskit.org_id()"),
                        "policy 'p': unknown context name 'org_id' (known: tenant_id) in "
                        "'tenant_id = rlskit.org_id()'"),
    "unknown claim()": (lambda: flow_policy("name = rlskit.claim('org')"),
                        "unknown context name 'org' (known: tenant_id)"),
    "cycle": (cycle, "role hierarchy has a cycle: a -> b -> c -> a"),
    "duplicate policy": (duplicate_policy, "table 'flow', policy 'p': duplicate policy name"),
    "bad command": (lambda: flow_policy("true", command="TRUNCATE"),
                    "table 'flow', policy 'p': unknown command 'TRUNCATE'; use one of SELECT, "
                    "INSERT, UPDATE, DELETE, ALL"),
    "missing column": (lambda: flow_policy("owner_id = rlskit.tenant_id()"),
                       "table 'flow', policy 'p': unknown column 'owner_id' in "
                       "'owner_id = rlskit.tenant_id()'"),
    "missing qualified column": (lambda: flow_policy("flow.owner_id IS NOT NULL"),
                                 "unknown column 'owner_id'"),
    "missing tenant column": (
        lambda: base()[0].tenant_table(Flow, tenant_column="org_id"),
        "table 'flow': tenant column 'org_id' is not a column of the table"),
    "missing grant column": (lambda: grants("UPDATE (nope)"),
                             "table 'flow': grant of UPDATE names missing column(s) nope"),
    "unknown privilege": (lambda: grants("SELEC", table="flow"),
                          "table 'flow': unknown privilege SELEC; use one of"),
    "smuggled grant": (lambda: grants("SELECT ON TABLE other TO x; GRANT SELECT", table="flow"),
                       "privilege list must be a single piece of SQL, found 2"),
    "view not a select": (lambda: view("DELETE FROM flow"),
                          "view 'v': a view query must be a SELECT, not DELETE"),
    "view two statements": (lambda: view("SELECT 1; SELECT 2"),
                            "view 'v': query must be a single piece of SQL, found 2"),
    "tenant context missing": (no_tenant_context, "tenant tables need a 'tenant_id' context"),
    "login role in grants": (lambda: grants_to_login_role(),
                             "table 'flow': login role 'app_authenticator' cannot be used in "
                             "grants; grant to group roles"),
    "inherits unknown role": (lambda: inherits_ghost(),
                              "role 'admin' inherits unknown role 'ghost'"),
    "insert with using": (insert_with_using,
                          "policy 'p': an INSERT policy takes with_check, not using"),
}


def grants_to_login_role():
    model, _ = base()
    model.authenticator("app_authenticator")
    model.tenant_table("flow", grants={"app_authenticator": "SELECT"})
    generate_sql(model)


def inherits_ghost():
    model, _ = base()
    model.role("admin", inherits="ghost")
    generate_sql(model)


def grants_to_ghost():
    model, _ = base()
    model.tenant_table("flow", grants={"ghost": "SELECT"})
    generate_sql(model)


@pytest.mark.parametrize(("build", "message"), CASES.values(), ids=CASES.keys())
def test_model_error_names_the_problem(build, message):
    with pytest.raises(ModelError) as info:
        build()
    assert message in str(info.value)


def test_model_error_carries_structured_location():
    with pytest.raises(ModelError) as info:
        flow_policy("tenant_id = = 1")
    assert (info.value.table, info.value.policy, info.value.text) == ("flow", "p",
                                                                      "tenant_id = = 1")


@pytest.mark.parametrize("name", ["public", "PUBLIC", "current_user", "none"])
def test_reserved_role_names_are_refused(name):
    with pytest.raises(ModelError, match="reserved"):
        Model().role(name)


def test_helper_calls_are_wrapped_for_initplan():
    model, member = base()
    model.context(user_id=Claim("sub", type="uuid"))
    flow = model.tenant_table("flow", grants={member: "SELECT, DELETE"})
    flow.policy("mine", command="DELETE", to=member,
                using="owner = rlskit.user_id() OR owner = (SELECT rlskit.user_id())")
    policy = next(p for p in model.tables[("public", "flow")].policies if p.name == "mine")
    assert policy.using is not None and policy.using.sql == ("owner = (SELECT rlskit.user_id()) "
                                "OR owner = (SELECT rlskit.user_id())")
