"""Who holds a data product's roles is data: grants to users, groups and attribute rules in
the store, checked by the database, resolved from tokens, revoked for the next transaction,
promoted from dev to prod, and explained when a caller may not connect."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from support.products import Environment, regions
from support.tokens import AUDIENCE, ISSUER, SECRET

import rlskit
from rlskit import access
from rlskit.access import AccessError
from rlskit.context import for_role
from rlskit.diff import diff_database, drift_sql
from rlskit.psycopg import transaction

ANALYST = "sales_analytics_analyst"


def read_as(env: Environment, token_claims: dict, role: str | None = ANALYST) -> list[str]:
    """The regions of the orders a caller with these (verified) claims reads."""
    with env.gateway() as conn:
        ctx = access.context_for(conn, env.model, token_claims, role=role)
        with transaction(conn, ctx):
            return regions(conn)


def forced(env: Environment, role: str = ANALYST, **values: str) -> list[str]:
    """What an application that skips the grant check (or forges it) reads: the product
    tables' policy still asks the store."""
    with env.gateway() as conn, transaction(conn, for_role(env.model, role, **values)):
        return regions(conn)


def log(env: Environment) -> list[tuple]:
    with env.db.connect() as conn:
        return conn.execute("SELECT actor, action, role, kind, subject, value, reason "
                            "FROM rlskit.access_log ORDER BY id").fetchall()


def test_the_owner_grants_a_user_who_then_reads_and_nobody_else_does(dev):
    assert dev.give("analyst", user="u-ann", reason="quarterly report")
    assert read_as(dev, {"sub": "u-ann"}) == ["EU", "EU"]  # the analysts' EU filter applies
    with pytest.raises(AccessError) as refused:
        read_as(dev, {"sub": "u-bea"})
    message = str(refused.value)
    assert f"does not hold {dev.role('analyst')}" in message
    assert "u-ann" not in message  # who holds what is for the role's administrators
    assert f"Its owner role {dev.role('owner')} is held by: login '{dev.person('bob')}'" \
        in message
    assert forced(dev, user_id="u-bea") == []  # no grant, no rows
    assert forced(dev, user_id="u-ann") == ["EU", "EU"]
    assert log(dev) == [(dev.person("bob"), "grant", dev.role("analyst"), "user", "u-ann", "",
                         "quarterly report")]


def test_an_attribute_rule_gives_finance_the_analyst_role_and_not_marketing(dev):
    dev.give("analyst", attribute="department=Finance", reason="finance reporting")
    assert read_as(dev, {"sub": "u-fin", "department": "Finance"}) == ["EU", "EU"]
    with pytest.raises(AccessError, match="no product role"):
        read_as(dev, {"sub": "u-mkt", "department": "Marketing"}, role=None)
    assert forced(dev, department="Marketing") == []
    assert forced(dev, department="Finance") == ["EU", "EU"]


def test_a_group_grant_covers_every_member_of_the_group(dev):
    dev.give("engineer", group="data-eng", reason="pipeline team")
    member = {"sub": "u-eng", "groups": ["analytics", "data-eng"]}
    assert read_as(dev, member, role=None) == ["EU", "EU", "US"]  # the only role held
    with pytest.raises(AccessError):
        read_as(dev, {"sub": "u-x", "groups": ["data-engineering"]})
    with dev.gateway() as conn:
        with transaction(conn, access.context_for(conn, dev.model, member)):
            conn.execute("UPDATE sales.orders SET amount = amount + 1")
        assert access.roles_held(conn, dev.model, {"groups": ("data-eng",)}) == \
            [dev.role("engineer")]


def test_revoking_takes_effect_on_the_next_transaction(dev):
    dev.give("analyst", user="u-ann")
    with dev.gateway() as conn:
        ctx = access.context_for(conn, dev.model, {"sub": "u-ann"}, role=ANALYST)
        with transaction(conn, ctx):
            assert regions(conn) == ["EU", "EU"]
        with dev.db.connect(user=dev.person("bob")) as owner:
            access.revoke(owner, dev.model, "sales_analytics", "analyst",
                          access.grantee(dev.model, user="u-ann"), "left the team")
        with transaction(conn, ctx):  # the same, already resolved context
            assert regions(conn) == []
    assert [row[1] for row in log(dev)] == ["grant", "revoke"]


def test_a_grant_to_a_database_login_is_a_membership_too(dev):
    """psql users: the store mirrors user grants to logins as real memberships."""
    dev.give("analyst", user=dev.person("alice"))
    with dev.as_person("alice") as conn:
        assert regions(conn) == ["EU", "EU"]
    with dev.db.connect(user=dev.person("bob")) as owner:
        access.revoke(owner, dev.model, "sales_analytics", "analyst",
                      access.grantee(dev.model, user=dev.person("alice")), "done")
    with dev.as_person("alice") as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        regions(conn)


def test_only_an_administrator_of_the_role_may_grant_it_and_a_refusal_changes_nothing(dev):
    dev.grant("bob", "engineer", to="carol")
    before = log(dev)
    for grantor in ("carol", "alice"):
        with pytest.raises(AccessError, match=f"{dev.person(grantor)} may not grant "
                                              f"{dev.role('analyst')}"):
            dev.give("analyst", grantor=grantor, user="u-1")
    with pytest.raises(AccessError, match="may not grant"):  # not even its own role
        dev.give("owner", user="u-1")
    assert log(dev) == before
    with dev.db.connect() as conn:
        assert access.list_grants(conn, dev.model) == []


@pytest.mark.parametrize(("call", "message"), [
    (lambda m, c: access.grant(c, m, "marketing", "analyst", access.grantee(m, user="u"), "r"),
     "unknown data product 'marketing' (the model declares: sales_analytics)"),
    (lambda m, c: access.grant(c, m, "sales_analytics", "auditor",
                               access.grantee(m, user="u"), "r"),
     "data product 'sales_analytics' has no role 'auditor'"),
    (lambda m, c: access.grantee(m, attribute="team=Finance"),
     "unknown attribute 'team' (attributes in the model's context: department, region)"),
    (lambda m, c: access.grantee(m, attribute="department"),
     "an attribute rule looks like department=Finance"),
    (lambda m, c: access.grantee(m, user="u", group="g"), "name exactly one grantee"),
    (lambda m, c: access.grant(c, m, "sales_analytics", "analyst",
                               access.grantee(m, user="u"), " "), "a reason is required"),
    (lambda m, c: access.revoke(c, m, "sales_analytics", "analyst",
                                access.grantee(m, group="nobody"), "r"),
     "group 'nobody' holds no grant of"),
])
def test_bad_input_is_refused_with_one_clear_error(dev, call, message):
    with dev.db.connect() as conn:
        with pytest.raises(AccessError) as refused:
            call(dev.model, conn)
        assert message in str(refused.value)
        assert access.list_grants(conn, dev.model) == []


def test_the_store_itself_refuses_what_the_model_would(dev):
    """The functions check on their own: a caller that bypasses the library gets the same
    answers (unknown role, unknown attribute, a value on a user grant)."""
    with dev.db.connect() as conn:
        for args, error in [
            (("no_such_role", "user", "u", "", "r"), "role no_such_role does not exist"),
            ((dev.role("analyst"), "attribute", "team", "x", "r"), "unknown attribute team"),
            ((dev.role("analyst"), "user", "u", "x", "r"), "only an attribute rule"),
            ((dev.role("analyst"), "attribute", "department", "", "r"), "needs a value"),
            ((dev.role("analyst"), "robot", "u", "", "r"), "not robot"),
        ]:
            with pytest.raises(psycopg.Error, match=error), conn.transaction():
                conn.execute("SELECT rlskit.grant_access(%s, %s, %s, %s, %s)", args)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(dev.role("owner"))))
            conn.execute("INSERT INTO rlskit.access_grant (role, kind, subject, reason) "
                         "VALUES ('x', 'user', 'u', 'r')")


def test_the_store_is_managed_like_everything_else(dev):
    """Migrated with the model: no drift, and the catalog reads it back."""
    with dev.db.connect() as conn:
        assert diff_database(conn, dev.model) == []
        conn.execute("DROP FUNCTION rlskit.access_history()")
        changes = diff_database(conn, dev.model)
        assert [(c.action, c.obj.key[0]) for c in changes][:1] == [("alter", "access store")]
        assert {c.obj.key[2] for c in changes[1:]} == {"access_history"}  # and its grants
        conn.execute(drift_sql(changes, dev.db.version))
        assert diff_database(conn, dev.model) == []
    from rlskit.migrations.compare import changes_to_ops
    from rlskit.migrations.render import render_op
    from rlskit.target import target_objects
    store = next(o for o in target_objects(dev.model, 18) if type(o).__name__ == "AccessStore")
    from rlskit.diff import Action, Change
    [op], _ = changes_to_ops([Change(Action.DROP, store, None)])
    assert render_op(op) == "op.drop_access_store('rlskit', settings_prefix='app', sealed=True)"
    assert render_op(op.reverse()) == \
        "op.create_access_store('rlskit', settings_prefix='app', sealed=True)"


# -- promotion, CLI and the connect helper ------------------------------------------------


def project(tmp_path: Path, dev: Environment, prod: Environment) -> dict[str, str]:
    """A project using the example model with dev and prod environments; its env vars."""
    (tmp_path / "pyproject.toml").write_text(f"""
[tool.rlskit]
model = "rlskit.examples.sales:model"

[tool.rlskit.environments.dev]
role_prefix = "{dev.model.role_prefix}"

[tool.rlskit.environments.prod]
role_prefix = "{prod.model.role_prefix}"

[tool.rlskit.jwt]
secret_env = "SALES_JWT_SECRET"
audience = "{AUDIENCE}"
issuer = "{ISSUER}"
""")
    env = {**os.environ, "RLSKIT_DEV_DATABASE_URL": dev.db.url,
           "RLSKIT_PROD_DATABASE_URL": prod.db.url, "SALES_JWT_SECRET": SECRET,
           "COLUMNS": "200"}
    env.pop("RLSKIT_DATABASE_URL", None)
    env.pop("DATABASE_URL", None)
    return env


def cli(tmp_path: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rlskit", *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)


def test_cli_grant_list_revoke_and_history(tmp_path, dev, prod):
    env = project(tmp_path, dev, prod)
    as_bob = dev.db.cluster.url(dev.db.name, user=dev.person("bob"))
    done = cli(tmp_path, env, "access", "grant", "sales_analytics", "analyst",
               "--attribute", "department=Finance", "--reason", "finance", "-d", as_bob,
               "--env", "dev")
    assert done.returncode == 0, done.stderr
    assert f"granted {dev.role('analyst')} to attribute department = 'Finance'" in done.stderr
    listed = cli(tmp_path, env, "access", "list", "--format", "json", "--env", "dev")
    [row] = json.loads(listed.stdout)
    assert row["role"] == dev.role("analyst") and row["granted_by"] == dev.person("bob")
    assert row["reason"] == "finance"
    table = cli(tmp_path, env, "access", "list", "sales_analytics", "--env", "dev")
    assert "department = 'Finance'" in table.stdout
    gone = cli(tmp_path, env, "access", "revoke", "sales_analytics", "analyst", "--attribute",
               "department=Finance", "--reason", "reorg", "-d", as_bob, "--env", "dev")
    assert gone.returncode == 0, gone.stderr
    trail = json.loads(cli(tmp_path, env, "access", "list", "--history", "--format", "json",
                           "-d", as_bob, "--env", "dev").stdout)
    assert [(t["action"], t["actor"], t["reason"]) for t in trail] == [
        ("grant", dev.person("bob"), "finance"), ("revoke", dev.person("bob"), "reorg")]


@pytest.mark.parametrize(("args", "message"), [
    (("grant", "marketing", "analyst", "--user", "u", "--reason", "r"),
     "unknown data product 'marketing'"),
    (("grant", "sales_analytics", "auditor", "--user", "u", "--reason", "r"),
     "has no role 'auditor'"),
    (("grant", "sales_analytics", "analyst", "--attribute", "team=x", "--reason", "r"),
     "unknown attribute 'team'"),
    (("grant", "sales_analytics", "analyst", "--user", "u", "--reason", "r", "-d", "carol"),
     "may not grant"),
])
def test_cli_bad_input_exits_2_and_changes_nothing(tmp_path, dev, prod, args, message):
    env = project(tmp_path, dev, prod)
    args = tuple(dev.db.cluster.url(dev.db.name, user=dev.person("carol")) if a == "carol"
                 else a for a in args)
    result = cli(tmp_path, env, "access", *args, "--env", "dev")
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert log(dev) == []


def test_promotion_copies_dev_grants_to_prod_after_a_dry_run(tmp_path, dev, prod):
    env = project(tmp_path, dev, prod)
    dev.give("analyst", attribute="department=Finance", reason="finance")
    dev.give("engineer", group="data-eng", reason="pipelines")
    prod.give("analyst", user="u-auditor", reason="external audit")
    dry = cli(tmp_path, env, "access", "promote", "--from", "dev", "--to", "prod")
    assert dry.returncode == 0, dry.stderr
    assert f"+ {prod.role('analyst')} ← attribute department = 'Finance'" in dry.stdout
    assert f"+ {prod.role('engineer')} ← group 'data-eng'" in dry.stdout
    assert f"= {prod.role('analyst')} ← user 'u-auditor'  (only in prod; kept)" in dry.stdout
    assert "2 grant(s) would copy (dry run" in dry.stderr
    with prod.gateway() as conn:  # nothing yet
        assert access.roles_held(conn, prod.model, {"department": "Finance"}) == []
    applied = cli(tmp_path, env, "access", "promote", "--from", "dev", "--to", "prod",
                  "--apply", "--format", "json")
    assert applied.returncode == 0, applied.stderr
    assert len(json.loads(applied.stdout)["add"]) == 2
    assert read_as(prod, {"sub": "u-fin", "department": "Finance"}) == ["EU", "EU"]
    with prod.db.connect() as conn:
        reasons = {g.reason for g in access.list_grants(conn, prod.model)}
    assert reasons == {"promoted from dev: finance", "promoted from dev: pipelines",
                       "external audit"}
    again = cli(tmp_path, env, "access", "promote", "--from", "dev", "--to", "prod")
    assert "0 grant(s) would copy" in again.stderr


def test_a_promotion_the_target_refuses_changes_nothing(dev, prod):
    dev.give("analyst", user="u-1")
    dev.give("owner", grantor=None, user="u-2")
    with dev.db.connect() as conn:
        grants = access.list_grants(conn, dev.model)
    with prod.db.connect(user=prod.person("bob")) as conn:  # bob may not grant owner
        plan = access.plan_promotion(grants, dev.model, access.list_grants(conn, prod.model),
                                     prod.model)
        assert [g.role for g in plan.add] == [prod.role("analyst"), prod.role("owner")]
        with pytest.raises(AccessError, match="may not grant"):
            access.promote(conn, prod.model, plan, "dev")
        assert access.list_grants(conn, prod.model) == []


def test_connect_is_your_own_login_checked_first_and_explains_a_refusal(dev):
    dev.give("analyst", user=dev.person("alice"), reason="reports")
    as_alice = dev.db.cluster.url(dev.db.name, user=dev.person("alice"))
    with rlskit.connect(ANALYST, url=as_alice, model=dev.model) as conn:
        assert regions(conn) == ["EU", "EU"]
        assert conn.execute("SELECT current_user, session_user").fetchone() == \
            (dev.role("analyst"), dev.person("alice"))
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("INSERT INTO sales.orders VALUES (9, 1, 'EU', 1)")
        conn.rollback()
        with dev.db.connect(user=dev.person("bob")) as owner:  # revoked mid-session
            access.revoke(owner, dev.model, "sales_analytics", "analyst",
                          access.grantee(dev.model, user=dev.person("alice")), "reorg")
        assert regions(conn) == []  # the next statement: no longer a member, no rows
    with pytest.raises(AccessError) as refused:
        rlskit.connect(ANALYST, url=dev.db.cluster.url(dev.db.name, user=dev.person("dave")),
                       model=dev.model)
    assert f"login '{dev.person('dave')}' does not hold" in str(refused.value)
    gateway_url = dev.db.cluster.url(dev.db.name, user=dev.model.role_name("analytics_gateway"))
    with pytest.raises(AccessError, match="unknown product role 'sales_analytics_auditor'"):
        rlskit.connect("sales_analytics_auditor", url=gateway_url, model=dev.model)


def test_cli_connect_opens_psql_as_your_login_or_says_why_not(tmp_path, dev, prod):
    env = project(tmp_path, dev, prod)
    dev.give("analyst", user=dev.person("alice"))
    as_alice = dev.db.cluster.url(dev.db.name, user=dev.person("alice"))
    ran = cli(tmp_path, env, "connect", "--role", ANALYST, "-d", as_alice, "--env", "dev",
              "--", "-Atc", "SELECT current_user, session_user, count(*) FROM sales.orders")
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == f"{dev.role('analyst')}|{dev.person('alice')}|2"
    as_dave = dev.db.cluster.url(dev.db.name, user=dev.person("dave"))
    refused = cli(tmp_path, env, "connect", "--role", ANALYST, "-d", as_dave, "--env", "dev",
                  "--check")
    assert refused.returncode == 2
    assert f"login '{dev.person('dave')}' does not hold {dev.role('analyst')}" in refused.stderr
    assert f"Its owner role {dev.role('owner')} is held by: login '{dev.person('bob')}'" \
        in refused.stderr
    assert "--token" not in cli(tmp_path, env, "connect", "--help").stdout  # logins only


def test_the_store_ships_in_a_revision_and_downgrades_exactly(tmp_path, rlskit_db):
    from rlskit.config import load_config
    from rlskit.examples.sales import build_model
    from rlskit.migrations.commands import downgrade, revision, upgrade
    from rlskit.migrations.scaffold import init

    model = build_model(f"{rlskit_db.role_prefix}dev_")
    init(tmp_path, metadata="rlskit.examples.sales:metadata")
    settings = load_config(tmp_path)
    with rlskit_db.connect(autocommit=True) as conn:
        conn.execute("CREATE SCHEMA sales")
    made = revision(settings, "sales analytics", rlskit_db.url, model=model)
    assert made is not None and "+1 access store" in made.summary
    assert "op.create_access_store('rlskit', settings_prefix='app', sealed=True)" in \
        made.path.read_text()
    assert "DROP TABLE IF EXISTS rlskit.access_grant" in \
        made.sql_path.read_text().split("==== downgrade")[1]
    upgrade(settings, "head", rlskit_db.url, None, model=model)
    assert revision(settings, "again", rlskit_db.url, model=model) is None
    with rlskit_db.connect() as conn:
        assert access.grant(conn, model, "sales_analytics", "analyst",
                            access.grantee(model, user="u-1"), "first analyst")
    downgrade(settings, "base", rlskit_db.url, None, model=model)
    with rlskit_db.connect() as conn:
        assert conn.execute("SELECT to_regclass('rlskit.access_grant'), "
                            "to_regprocedure('rlskit.holds(name)')").fetchone() == (None, None)
    upgrade(settings, "head", rlskit_db.url, None, model=model)
    with rlskit_db.connect() as conn:
        assert diff_database(conn, model) == []


def test_a_database_without_the_store_says_so(rlskit_db):
    from rlskit.examples.sales import build_model

    model = build_model("x_")
    with rlskit_db.connect() as conn:
        for call in (lambda: access.list_grants(conn, model),
                     lambda: access.grant(conn, model, "sales_analytics", "analyst",
                                          access.grantee(model, user="u"), "r")):
            with pytest.raises(AccessError, match="this database has no grants store"):
                call()
