"""Generated SQL: committed copies, determinism, version differences, hostile names."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from psycopg import sql

from rlskit import Claim, Model, ModelError, generate_sql
from rlskit.examples.saas import build_model
from rlskit.examples.saas import model as example_model
from rlskit.examples.sales import model as sales_model
from rlskit.render import Ident, render, render_uncached

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(("example", "version"), [
    ("saas", 15), ("saas", 18), ("sales", 15), ("sales", 18)])
def test_committed_sql_matches_the_generator(example, version):
    model = example_model if example == "saas" else sales_model
    committed = (ROOT / "sql" / f"{example}-pg{version}.sql").read_text()
    assert committed == generate_sql(model, pg_version=version), (
        f"sql/{example}-pg{version}.sql is stale: run rlskit sql --model "
        f"rlskit.examples.{example}:model --pg-version {version} "
        f"-o sql/{example}-pg{version}.sql")


def test_output_is_byte_identical_across_processes():
    code = ("import sys; from rlskit import generate_sql; "
            "from rlskit.examples.saas import model; sys.stdout.write(generate_sql(model))")
    outputs = {
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                       env={**os.environ, "PYTHONHASHSEED": seed}).stdout
        for seed in ("1", "2", "3")
    }
    assert len(outputs) == 1
    assert outputs.pop() == generate_sql(example_model)


def test_membership_options_follow_the_server_version():
    v16 = generate_sql(example_model, pg_version=16)
    v15 = generate_sql(example_model, pg_version=15)
    assert "GRANT read_only TO member WITH INHERIT TRUE\n" in v16
    assert ", SET FALSE;" in v16
    assert "GRANT member TO app_authenticator WITH INHERIT FALSE\n" in v16
    assert "GRANT read_only TO member;" in v15
    assert "WITH INHERIT" not in v15


def test_security_invoker_only_where_supported():
    assert "security_invoker = true" in generate_sql(example_model, pg_version=15)
    with pytest.raises(ModelError, match="view 'member_directory' reads public.membership, "
                                         "public.users, protected by row-level security"):
        generate_sql(example_model, pg_version=14)  # it would show every tenant's users
    model = build_model()
    model.views[("public", "member_directory")].security_invoker = False  # accepted
    assert "security_invoker" not in generate_sql(model, pg_version=14)


def test_sections_are_in_dependency_order():
    script = generate_sql(example_model)
    order = ["CREATE SCHEMA", "CREATE TABLE IF NOT EXISTS rlskit.context_key",
             "CREATE OR REPLACE FUNCTION rlskit.tenant_id", "CREATE ROLE read_only",
             "GRANT read_only TO", "GRANT USAGE\n  ON SCHEMA rlskit\n  TO read_only",
             "GRANT EXECUTE", "GRANT SELECT",
             "ENABLE ROW LEVEL SECURITY", "CREATE POLICY", "CREATE VIEW"]
    positions = [script.index(marker) for marker in order]
    assert positions == sorted(positions)


HOSTILE = 'Sales "Team" $rlskit$ ; --'


def hostile_model(prefix: str) -> Model:
    model = Model(schema="Odd Schema", role_prefix=prefix)
    model.context(tenant_id=Claim("tenant_id", type="uuid"))
    team = model.role(HOSTILE)
    table = model.tenant_table("Order Items", tenant_column="Tenant Id",
                               grants={team: 'SELECT ("Tenant Id", "Note $$")'})
    table.policy("select; drop", command="SELECT", to=team, using='"Note $$" <> \'x\'')
    return model


def test_hostile_identifiers_are_quoted_not_executed(rlskit_db):
    model = hostile_model(rlskit_db.role_prefix)
    role = rlskit_db.role_prefix + HOSTILE
    with rlskit_db.connect() as conn:
        conn.execute('CREATE SCHEMA "Odd Schema"')
        conn.execute('CREATE TABLE "Odd Schema"."Order Items" '
                     '("Tenant Id" uuid, "Note $$" text)')
        conn.execute(generate_sql(model, pg_version=rlskit_db.version))
        assert conn.execute("SELECT count(*) FROM pg_roles WHERE rolname = %s",
                            [role]).fetchone()[0] == 1
        policies = conn.execute("SELECT polname FROM pg_policy ORDER BY 1").fetchall()
        assert policies == [("select; drop",), ("tenant_isolation",)]
        assert conn.execute("SELECT has_column_privilege(%s, '\"Odd Schema\".\"Order Items\"', "
                            "'Note $$', 'SELECT')", [role]).fetchone()[0]


names = st.text(alphabet=st.sampled_from('abcxyz_AZ09 "$.'), min_size=1, max_size=20)


@settings(max_examples=200, deadline=None)
@given(schema=names, table=names, role=names, column=names)
def test_shape_cache_gives_the_same_text_as_direct_prettify(schema, table, role, column):
    statements = [
        sql.SQL("GRANT SELECT ({}), UPDATE ON TABLE {} TO {}").format(
            Ident(column), Ident(schema, table), Ident(role)),
        sql.SQL("CREATE POLICY {} ON {} AS PERMISSIVE FOR SELECT TO {} USING ({} = 1)").format(
            Ident(role), Ident(schema, table), Ident(role), Ident(column)),
        sql.SQL("ALTER TABLE {} FORCE ROW LEVEL SECURITY").format(Ident(schema, table)),
    ]
    for statement in statements:
        assert render(statement) == render_uncached(statement)
        assert render(statement) == render(statement)  # cached path, second time


def test_tables_by_name_table_object_or_class_generate_the_same_sql():
    from rlskit.examples.saas import Flow

    def model_with(table: object) -> str:
        model = Model()
        model.context(tenant_id=Claim("tenant_id", type="uuid"))
        model.tenant_table(table, grants={model.role("member"): "SELECT, UPDATE (status)"})
        return generate_sql(model)

    assert model_with(Flow) == model_with(Flow.__table__) == model_with("flow")
