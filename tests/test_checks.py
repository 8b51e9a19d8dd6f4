"""`rlskit check`: every lint rule against a real database — the bad state gives the
finding (rule, object, fix), the repaired state gives none."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import pytest
from conftest import Example
from psycopg import sql

from rlskit import Claim
from rlskit.checks import (
    RULES,
    Finding,
    check_database,
    check_facts,
    check_model,
    has_errors,
)
from rlskit.checks.live import read_facts
from rlskit.errors import ModelError
from rlskit.examples.saas import build_model
from rlskit.model import Model


@dataclass(frozen=True)
class Case:
    rule: str
    bad: str  # SQL; {member} etc. are role names, {db} the database
    good: str
    object: str
    fix: str

    def __str__(self) -> str:
        return self.rule


INVOICE = """CREATE TABLE invoice (id int PRIMARY KEY, tenant_id uuid NOT NULL);
ALTER TABLE invoice ENABLE ROW LEVEL SECURITY;
ALTER TABLE invoice FORCE ROW LEVEL SECURITY;
"""
ISOLATED = ("CREATE POLICY tenant_isolation ON invoice AS RESTRICTIVE "
            "USING (tenant_id = (SELECT rlskit.tenant_id()));")
EVENTS = """CREATE TABLE event (tenant_id uuid NOT NULL, at date NOT NULL) PARTITION BY RANGE (at);
CREATE TABLE event_2026 PARTITION OF event FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
ALTER TABLE event ENABLE ROW LEVEL SECURITY;
ALTER TABLE event FORCE ROW LEVEL SECURITY;
"""

CASES = [
    Case("RLS001",
         "CREATE TABLE invoice (id int PRIMARY KEY, tenant_id uuid);"
         "GRANT SELECT ON invoice TO {member};",
         INVOICE + ISOLATED + "GRANT SELECT ON invoice TO {member};",
         "public.invoice", "ENABLE ROW LEVEL SECURITY"),
    Case("RLS002",
         "CREATE TABLE plan (id int PRIMARY KEY, name text); GRANT SELECT ON plan TO {member};",
         "CREATE SCHEMA internal; CREATE TABLE internal.plan (id int PRIMARY KEY, name text);"
         "GRANT SELECT ON internal.plan TO {member};",
         "public.plan", "ALTER TABLE public.plan ENABLE ROW LEVEL SECURITY"),
    Case("RLS003", "ALTER TABLE flow DISABLE ROW LEVEL SECURITY;",
         "ALTER TABLE flow ENABLE ROW LEVEL SECURITY;",
         "public.flow", "ALTER TABLE public.flow ENABLE ROW LEVEL SECURITY"),
    Case("RLS004", "ALTER TABLE flow NO FORCE ROW LEVEL SECURITY;",
         "ALTER TABLE flow FORCE ROW LEVEL SECURITY;",
         "public.flow", "ALTER TABLE public.flow FORCE ROW LEVEL SECURITY"),
    Case("RLS005",
         "CREATE VIEW flow_names AS SELECT id, name FROM flow;"
         "GRANT SELECT ON flow_names TO {member};",
         "CREATE VIEW flow_names WITH (security_invoker = true) AS SELECT id, name FROM flow;"
         "GRANT SELECT ON flow_names TO {member};",
         "public.flow_names", "ALTER VIEW public.flow_names SET (security_invoker = true)"),
    Case("RLS006",
         "CREATE POLICY slow ON flow AS RESTRICTIVE FOR SELECT "
         "USING (tenant_id = current_setting('app.tenant_id')::uuid);",
         "CREATE POLICY slow ON flow AS RESTRICTIVE FOR SELECT "
         "USING (tenant_id = (SELECT current_setting('app.tenant_id')::uuid));",
         "public.flow.slow", "(SELECT current_setting()"),
    Case("RLS007", INVOICE + ISOLATED,
         INVOICE + ISOLATED + "CREATE INDEX ON invoice (tenant_id);",
         "public.invoice", "CREATE INDEX ON public.invoice (tenant_id)"),
    Case("RLS008",
         "CREATE POLICY drafts ON flow FOR SELECT TO {read_only} USING (status = 'draft');",
         "CREATE POLICY drafts ON flow AS RESTRICTIVE FOR SELECT TO {read_only} "
         "USING (status = 'draft');",
         "public.flow", "merge them into one policy"),
    Case("RLS009",
         INVOICE + "CREATE INDEX ON invoice (tenant_id);"
         "CREATE POLICY everyone ON invoice FOR SELECT TO {member} USING (true);",
         INVOICE + ISOLATED + "CREATE INDEX ON invoice (tenant_id);"
         "CREATE POLICY everyone ON invoice FOR SELECT TO {member} USING (true);",
         "public.invoice.everyone", "RESTRICTIVE policy on the tenant column"),
    Case("RLS010", "GRANT SELECT ON flow TO PUBLIC;",
         "CREATE TABLE country (code text PRIMARY KEY); GRANT SELECT ON country TO PUBLIC;",
         "public.flow", "REVOKE SELECT ON public.flow FROM PUBLIC"),
    Case("RLS011", "GRANT {owner} TO {app_authenticator};",
         "CREATE ROLE {prefix}maint; GRANT {prefix}maint TO {app_authenticator};",
         "{app_authenticator}", "separate migration role own the tables"),
    Case("RLS012",
         "CREATE FUNCTION public.f() RETURNS int LANGUAGE sql SECURITY DEFINER "
         "AS 'SELECT 1';",
         "CREATE FUNCTION public.f() RETURNS int LANGUAGE sql SECURITY DEFINER "
         "SET search_path = pg_catalog AS 'SELECT 1';",
         "public.f()", "ALTER FUNCTION public.f() SET search_path"),
    Case("RLS013", "GRANT DELETE ON flow TO {runner};",
         "GRANT DELETE ON flow TO {runner};"
         "CREATE POLICY runner_delete ON flow FOR DELETE TO {runner} USING (status = 'done');",
         "public.flow", "add a DELETE policy for {runner}"),
    Case("RLS014", "GRANT TRUNCATE ON flow TO {member};",
         "CREATE ROLE {prefix}maint; GRANT TRUNCATE ON flow TO {prefix}maint;",
         "public.flow", "REVOKE TRUNCATE ON public.flow FROM {member}"),
    Case("RLS015", "GRANT REFERENCES ON flow TO {member};",
         "CREATE ROLE {prefix}maint; GRANT REFERENCES ON flow TO {prefix}maint;",
         "public.flow", "REVOKE REFERENCES ON public.flow FROM {member}"),
    Case("RLS016", EVENTS,
         EVENTS + "ALTER TABLE event_2026 ENABLE ROW LEVEL SECURITY;"
         "ALTER TABLE event_2026 FORCE ROW LEVEL SECURITY;",
         "public.event_2026", "ALTER TABLE public.event_2026 ENABLE ROW LEVEL SECURITY"),
    Case("RLS018",
         "CREATE TABLE note (id serial PRIMARY KEY, body text);"
         "GRANT INSERT ON note TO {member};",
         "CREATE TABLE note (id serial PRIMARY KEY, body text);"
         "GRANT INSERT ON note TO {member}; GRANT USAGE ON SEQUENCE note_id_seq TO {member};",
         "public.note", "GRANT USAGE ON SEQUENCE public.note_id_seq TO {member}"),
    Case("RLS019",
         "CREATE OR REPLACE FUNCTION rlskit.department() RETURNS text LANGUAGE sql STABLE "
         "RETURN NULLIF(pg_catalog.current_setting('app.department', true), '');",
         "CREATE OR REPLACE FUNCTION rlskit.department() RETURNS text LANGUAGE sql STABLE "
         "RETURN NULLIF(rlskit.sealed_setting(CURRENT_USER, 'app.department'), '');",
         "rlskit.department()", "drop sealed=False from model.context(...)"),
    Case("RLS020", "ALTER ROLE {app_authenticator} CREATEROLE;",
         "CREATE ROLE {prefix}platform CREATEROLE;",
         "{app_authenticator}", "ALTER ROLE {app_authenticator} NOCREATEROLE"),
    Case("RLS021",
         "CREATE FUNCTION peek() RETURNS int LANGUAGE sql SECURITY DEFINER "
         "SET search_path = pg_catalog, pg_temp RETURN 1;",
         "CREATE FUNCTION peek() RETURNS int LANGUAGE sql SECURITY DEFINER "
         "SET search_path = pg_catalog, pg_temp RETURN 1; "
         "REVOKE EXECUTE ON FUNCTION peek() FROM PUBLIC;",
         "public.peek()", "REVOKE EXECUTE ON FUNCTION public.peek() FROM PUBLIC"),
    Case("RLS022",
         "CREATE SCHEMA {prefix}scratch; GRANT CREATE ON SCHEMA {prefix}scratch TO PUBLIC; "
         "CREATE FUNCTION peek() RETURNS int LANGUAGE sql SECURITY DEFINER "
         "SET search_path = {prefix}scratch, pg_catalog, pg_temp RETURN 1; "
         "REVOKE EXECUTE ON FUNCTION peek() FROM PUBLIC;",
         "CREATE SCHEMA {prefix}scratch; "
         "CREATE FUNCTION peek() RETURNS int LANGUAGE sql SECURITY DEFINER "
         "SET search_path = {prefix}scratch, pg_catalog, pg_temp RETURN 1; "
         "REVOKE EXECUTE ON FUNCTION peek() FROM PUBLIC;",
         "public.peek()", "SET search_path = pg_catalog, pg_temp"),
    Case("RLS024",
         "CREATE MATERIALIZED VIEW flow_copy AS SELECT * FROM flow; "
         "GRANT SELECT ON flow_copy TO {member};",
         "CREATE MATERIALIZED VIEW flow_copy AS SELECT * FROM flow;",
         "public.flow_copy", "REVOKE SELECT ON public.flow_copy FROM {member}"),
    Case("RLS025",
         "CREATE FOREIGN DATA WRAPPER {prefix}fdw; CREATE SERVER {prefix}remote FOREIGN DATA "
         "WRAPPER {prefix}fdw; CREATE FOREIGN TABLE invoices (id int) SERVER {prefix}remote; "
         "GRANT SELECT ON invoices TO {read_only};",
         "CREATE FOREIGN DATA WRAPPER {prefix}fdw; CREATE SERVER {prefix}remote FOREIGN DATA "
         "WRAPPER {prefix}fdw; CREATE FOREIGN TABLE invoices (id int) SERVER {prefix}remote;",
         "public.invoices", "REVOKE SELECT ON public.invoices FROM {read_only}"),
    Case("RLS026", "ALTER TABLE flow OWNER TO CURRENT_USER;",  # the test's superuser
         "ALTER TABLE flow OWNER TO {owner};",
         "public.flow", "declare model.owner(\"owner\") and migrate"),
    Case("RLS017",
         "ALTER ROLE {app_authenticator} SET app.tenant_id = "
         "'00000000-0000-0000-0000-000000000001';",
         "ALTER ROLE {app_authenticator} SET statement_timeout = '5s';",
         "role {app_authenticator}", "ALTER ROLE {app_authenticator} RESET app.tenant_id"),
    Case("RLS028",
         "CREATE POLICY by_claim ON flow AS RESTRICTIVE FOR SELECT USING (tenant_id = "
         "((current_setting('request.jwt.claims', true)::jsonb -> 'user_metadata') "
         "->> 'tenant_id')::uuid);",
         "CREATE POLICY by_claim ON flow AS RESTRICTIVE FOR SELECT USING (tenant_id = "
         "((current_setting('request.jwt.claims', true)::jsonb -> 'app_metadata') "
         "->> 'tenant_id')::uuid);",
         "public.flow.by_claim", "app_metadata"),
    Case("RLS029",
         "CREATE POLICY published ON flow FOR SELECT USING (status = 'published');",
         "CREATE POLICY published ON flow FOR SELECT TO {read_only} "
         "USING (status = 'published');",
         "public.flow.published", "ALTER POLICY published ON public.flow TO"),
    Case("RLS030",
         "CREATE POLICY via_flow ON membership AS RESTRICTIVE FOR SELECT "
         "USING (EXISTS (SELECT 1 FROM flow f WHERE f.tenant_id = membership.tenant_id));"
         "CREATE POLICY via_membership ON flow AS RESTRICTIVE FOR SELECT "
         "USING (EXISTS (SELECT 1 FROM membership m WHERE m.tenant_id = flow.tenant_id));",
         "CREATE POLICY via_membership ON flow AS RESTRICTIVE FOR SELECT "
         "USING (EXISTS (SELECT 1 FROM membership m WHERE m.tenant_id = flow.tenant_id));",
         "public.flow", "SECURITY DEFINER function"),
    Case("RLS031",
         "CREATE FUNCTION positive(int) RETURNS boolean LANGUAGE sql IMMUTABLE LEAKPROOF "
         "AS 'SELECT $1 > 0';",
         "CREATE FUNCTION positive(int) RETURNS boolean LANGUAGE sql IMMUTABLE "
         "AS 'SELECT $1 > 0';",
         "public.positive(integer)", "NOT LEAKPROOF"),
    Case("RLS032",
         "CREATE FUNCTION peek() RETURNS bigint LANGUAGE sql SECURITY DEFINER "
         "SET search_path = pg_catalog, pg_temp AS 'SELECT count(*) FROM public.flow';"
         "REVOKE EXECUTE ON FUNCTION peek() FROM PUBLIC;"
         "GRANT EXECUTE ON FUNCTION peek() TO {member};",
         "CREATE FUNCTION peek() RETURNS bigint LANGUAGE sql SECURITY DEFINER "
         "SET search_path = pg_catalog, pg_temp AS 'SELECT count(*) FROM public.flow';"
         "REVOKE EXECUTE ON FUNCTION peek() FROM PUBLIC;",
         "public.peek()", "REVOKE EXECUTE ON FUNCTION public.peek() FROM"),
    Case("RLS033",
         INVOICE + ISOLATED + "CREATE INDEX ON invoice (tenant_id);"
         "ALTER TABLE invoice ADD COLUMN flow_id uuid REFERENCES flow (id);",
         INVOICE + ISOLATED + "CREATE INDEX ON invoice (tenant_id);"
         "ALTER TABLE invoice ADD COLUMN flow_id uuid REFERENCES flow (id);"
         "CREATE INDEX ON invoice (flow_id);",
         "public.invoice", "CREATE INDEX ON public.invoice (flow_id)"),
    Case("RLS034",
         "CREATE POLICY drafts ON flow FOR UPDATE TO {member} USING (status = 'draft') "
         "WITH CHECK (true);",
         "CREATE POLICY drafts ON flow FOR UPDATE TO {member} USING (status = 'draft') "
         "WITH CHECK (status = 'draft');",
         "public.flow.drafts", "ALTER POLICY drafts ON public.flow WITH CHECK ("),
    Case("RLS035",
         "CREATE ROLE {prefix}ghost NOLOGIN;"
         "CREATE POLICY ghostly ON flow FOR SELECT TO {prefix}ghost USING (true);",
         "CREATE ROLE {prefix}ghost NOLOGIN; GRANT {prefix}ghost TO {member};"
         "CREATE POLICY ghostly ON flow FOR SELECT TO {prefix}ghost USING (true);",
         "public.flow.ghostly", "ALTER POLICY ghostly ON public.flow TO"),
    Case("RLS036",
         INVOICE + ISOLATED + "GRANT INSERT ON invoice TO {runner};",
         INVOICE + ISOLATED + "GRANT SELECT, INSERT ON invoice TO {runner};",
         "public.invoice", "GRANT SELECT ON public.invoice TO {runner}"),
    Case("RLS037",
         INVOICE + ISOLATED + "GRANT UPDATE, DELETE ON invoice TO {runner};",
         INVOICE + ISOLATED + "GRANT SELECT (id), UPDATE, DELETE ON invoice TO {runner};",
         "public.invoice", "GRANT SELECT ON public.invoice TO {runner}"),
    Case("RLS038",
         "CREATE POLICY by_session ON flow AS RESTRICTIVE FOR SELECT "
         "USING (name <> session_user);",
         "CREATE POLICY by_session ON flow AS RESTRICTIVE FOR SELECT "
         "USING (name <> current_user);",
         "public.flow.by_session", "rlskit.user_id()"),
    Case("RLS039",
         INVOICE.replace("tenant_id uuid NOT NULL", "tenant_id uuid") + ISOLATED,
         INVOICE + ISOLATED,
         "public.invoice", "ALTER TABLE public.invoice ALTER COLUMN tenant_id SET NOT NULL"),
    Case("RLS040",
         INVOICE + ISOLATED + "ALTER TABLE invoice ADD COLUMN number text UNIQUE;",
         INVOICE + ISOLATED + "ALTER TABLE invoice ADD COLUMN number text, "
         "ADD UNIQUE (tenant_id, number);",
         "public.invoice", "make it unique (tenant_id, number)"),
]


def names(example: Example) -> dict[str, str]:
    roles = {r: example.role(r) for r in example.model.roles}
    return roles | {"owner": example.owner, "prefix": example.db.role_prefix,
                    "db": example.db.name}


def findings_after(example: Example, statements: str, rule: str) -> list[Finding]:
    """The findings of `rule` once `statements` ran, inside a transaction rolled back after."""
    with example.db.connect() as conn:
        conn.execute(statements.format(**names(example)))
        found = [f for f in check_database(conn, example.model) if f.rule == rule]
        conn.rollback()
    return found


def test_every_rule_has_a_case():
    """Each rule has a bad and a good case here, but RLS023 (below: it needs an old server)
    and RLS027, RLS041, RLS042 (tests/test_citus.py: they need a Citus cluster)."""
    assert sorted(c.rule for c in CASES) == sorted(set(RULES) - {"RLS023", "RLS027", "RLS041",
                                                                  "RLS042"})


def test_a_server_without_the_rls_fixes_is_an_error(example):
    """RLS023 (this server has the fixes: the facts of an older release, read from it)."""
    with example.db.connect() as conn:
        facts = read_facts(conn, example.model)
    assert [f.rule for f in check_facts(facts, []) if f.rule == "RLS023"] == []
    for version, upgrade in ((150008, "15.9"), (140013, "14.14"), (160004, "16.5"),
                             (170000, "17.1")):
        found = [f for f in check_facts(dataclasses.replace(facts, server_version=version), [])
                 if f.rule == "RLS023"]
        assert [(f.object, f.severity) for f in found] == [("server", "error")]
        assert f"upgrade to {upgrade} or later" in found[0].message
    old = [f for f in check_facts(dataclasses.replace(facts, server_version=130020), [])
           if f.rule == "RLS023"]
    assert "not supported" in old[0].message


def test_the_example_database_is_clean(example):
    with example.db.connect() as conn:
        assert check_database(conn, example.model) == []


@pytest.mark.parametrize("case", CASES, ids=str)
def test_rule_finds_the_bad_state(example, case):
    found = findings_after(example, case.bad, case.rule)
    values = names(example)
    assert [f.object for f in found] == [case.object.format(**values)], found
    finding = found[0]
    assert case.fix.format(**values) in finding.fix
    assert finding.severity == RULES[case.rule].severity
    assert finding.why and finding.message


@pytest.mark.parametrize("case", CASES, ids=str)
def test_rule_is_silent_on_the_good_state(example, case):
    assert findings_after(example, case.good, case.rule) == []


def test_bypassrls_and_database_defaults(example):
    auth = example.role("app_authenticator")
    found = findings_after(
        example, f"ALTER ROLE {auth} BYPASSRLS;"
        f"ALTER DATABASE {example.db.name} SET app.user_id = 'x';", "RLS011")
    assert [(f.object, f.message, f.fix) for f in found] == [
        (auth, "is BYPASSRLS", f"ALTER ROLE {auth} NOBYPASSRLS")]
    with example.db.connect() as conn:
        conn.execute(sql.SQL("ALTER DATABASE {} SET app.user_id = 'x'").format(
            sql.Identifier(example.db.name)))
        found = [f for f in check_database(conn, example.model) if f.rule == "RLS017"]
        conn.rollback()
    assert [f.object for f in found] == [f"database {example.db.name}"]


def test_a_waiver_keeps_the_finding_with_its_reason(example):
    example.model.waive("RLS014", "public.flow", reason="nightly purge job")
    found = findings_after(example, "GRANT TRUNCATE ON flow TO {member};", "RLS014")
    assert [f.waived for f in found] == ["nightly purge job"]
    assert not has_errors(found)


def test_waivers_are_validated():
    model = Model()
    with pytest.raises(ModelError, match="a reason is required"):
        model.waive("RLS001", "public.t", reason=" ")
    with pytest.raises(ModelError, match="an id like 'RLS007'"):
        model.waive("no-rls", "public.t", reason="why")
    model.waive("RLS999", "public.t", reason="why")
    with pytest.raises(ModelError, match="unknown check rule 'RLS999'"):
        check_model(model)


def test_model_only_findings():
    model = Model()
    model.context(tenant_id=Claim("tenant_id", type="uuid"))
    member = model.role("member")
    notes = model.table("notes", rls=True, grants={member: "SELECT, DELETE, TRUNCATE"})
    notes.policy("mine", command="SELECT", to=member,
                 using="owner = current_setting('app.user')")
    found = {(f.rule, f.object) for f in check_model(model)}
    assert found == {("RLS006", "public.notes.mine"), ("RLS013", "public.notes"),
                     ("RLS014", "public.notes")}
    assert has_errors(check_model(model))


def test_model_only_view_on_14():
    assert check_model(build_model()) == []
    with pytest.raises(ModelError, match="PostgreSQL 14 has no security_invoker"):
        check_model(build_model(), pg_version=14)
    accepting = build_model()
    accepting.views[("public", "member_directory")].security_invoker = False  # on purpose
    found = check_model(accepting, pg_version=14)
    assert [(f.rule, f.object) for f in found] == [("RLS005", "public.member_directory")]
