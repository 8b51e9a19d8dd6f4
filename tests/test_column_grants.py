"""Column grants change per (privilege, column): widening, narrowing and repairing never take
away a column the model keeps (issue 17's cases), and rewrites that only commute operands
are not drift."""

from __future__ import annotations

import pytest
from alembic.autogenerate import produce_migrations
from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext
from psycopg import sql
from sqlalchemy import MetaData, create_engine, pool

from rlskit import Claim, Model
from rlskit.diff import diff_database, drift_sql
from rlskit.migrations.render import render_op
from rlskit.urls import sqlalchemy_url

TABLE = """
CREATE TABLE profile (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), tenant_id uuid NOT NULL,
                      display_name text, email text, secret text)
"""


def model_with(prefix: str, member_grants: str) -> Model:
    model = Model(role_prefix=prefix)
    model.context(tenant_id=Claim("tenant_id", type="uuid"))
    member = model.role("member")
    model.authenticator("login")
    model.tenant_table("profile", grants={member: member_grants})
    return model


def upgrade_ops(url: str, model: Model) -> list:
    engine = create_engine(sqlalchemy_url(url), poolclass=pool.NullPool)
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={
            "target_metadata": MetaData(), "rlskit_model": model,
            "autogenerate_plugins": ["rlskit"]})
        return produce_migrations(context, MetaData()).upgrade_ops.ops


def run(url: str, model: Model, operations: list) -> None:
    engine = create_engine(sqlalchemy_url(url), poolclass=pool.NullPool)
    with engine.begin() as conn:
        context = MigrationContext.configure(conn, opts={"rlskit_role_prefix": model.role_prefix})
        for op in operations:
            Operations(context).invoke(op)


@pytest.fixture
def installed(rlskit_db):
    """The profile table with `member` granted SELECT and UPDATE (display_name)."""
    owner = sql.Identifier(rlskit_db.role_prefix + "owner")
    with rlskit_db.connect() as conn:
        conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(owner))
        conn.execute(sql.SQL("GRANT CREATE ON SCHEMA public TO {}").format(owner))
        conn.execute(sql.SQL("SET ROLE {}").format(owner))
        conn.execute(TABLE)
        conn.commit()
    model = model_with(rlskit_db.role_prefix, "SELECT, UPDATE (display_name)")
    run(rlskit_db.url, model, upgrade_ops(rlskit_db.url, model))
    return rlskit_db


def column_privileges(db, privilege: str) -> set[str]:
    with db.connect() as conn:
        rows = conn.execute(
            "SELECT attname FROM pg_attribute WHERE attrelid = 'profile'::regclass "
            "AND attnum > 0 AND has_column_privilege(%s, 'profile'::regclass, attname, %s)",
            [db.role_prefix + "member", privilege]).fetchall()
    return {name for (name,) in rows}


@pytest.mark.parametrize(("after", "rendered", "columns"), [
    ("SELECT, UPDATE (display_name, email)",  # widening grants the new column only
     ["op.grant('UPDATE (email)', table='profile', to='member', schema='public')"],
     {"display_name", "email"}),
    ("SELECT, UPDATE (email)",  # one column for another
     ["op.revoke('UPDATE (display_name)', table='profile', from_='member', schema='public')",
      "op.grant('UPDATE (email)', table='profile', to='member', schema='public')"],
     {"email"}),
    ("SELECT, UPDATE",  # to the whole table: restated, so that the reverse is exact
     ["op.revoke('UPDATE (display_name)', table='profile', from_='member', schema='public')",
      "op.grant('UPDATE', table='profile', to='member', schema='public')"],
     {"id", "tenant_id", "display_name", "email", "secret"}),
])
def test_a_column_grant_change_migrates_and_reverses_exactly(installed, after, rendered,
                                                             columns):
    before = model_with(installed.role_prefix, "SELECT, UPDATE (display_name)")
    changed = model_with(installed.role_prefix, after)
    ops = upgrade_ops(installed.url, changed)
    assert [render_op(op) for op in ops] == rendered
    run(installed.url, changed, ops)
    assert column_privileges(installed, "UPDATE") == columns
    with installed.connect() as conn:
        assert diff_database(conn, changed) == []
    run(installed.url, before, [op.reverse() for op in reversed(ops)])
    assert column_privileges(installed, "UPDATE") == {"display_name"}
    with installed.connect() as conn:
        assert diff_database(conn, before) == []


def test_from_the_whole_table_to_columns_restates_the_privilege(installed):
    """Revoking a table-wide privilege revokes its column privileges too: the change is
    revoke-then-grant of the whole privilege, both ways."""
    whole = model_with(installed.role_prefix, "SELECT, UPDATE")
    run(installed.url, whole, upgrade_ops(installed.url, whole))
    columns = model_with(installed.role_prefix, "SELECT, UPDATE (display_name, email)")
    ops = upgrade_ops(installed.url, columns)
    assert [" ".join(render_op(op).split()) for op in ops] == [
        "op.revoke('UPDATE', table='profile', from_='member', schema='public')",
        "op.grant( 'UPDATE (display_name, email)', table='profile', to='member', "
        "schema='public', )"]
    run(installed.url, columns, ops)
    assert column_privileges(installed, "UPDATE") == {"display_name", "email"}
    run(installed.url, whole, [op.reverse() for op in reversed(ops)])
    with installed.connect() as conn:
        assert diff_database(conn, whole) == []


def test_an_extra_column_grant_is_repaired_by_revoking_that_column_only(installed):
    model = model_with(installed.role_prefix, "SELECT (id, email, display_name), "
                                              "UPDATE (display_name)")
    run(installed.url, model, upgrade_ops(installed.url, model))
    member = sql.Identifier(installed.role_prefix + "member")
    with installed.connect() as conn:
        conn.execute(sql.SQL("GRANT SELECT (secret) ON profile TO {}").format(member))
        changes = diff_database(conn, model)
        repair = drift_sql(changes, conn.info.server_version // 10000)
        assert " ".join(line for line in repair.splitlines() if not line.startswith("--")
                        ).split() == ["REVOKE", "SELECT", "(secret)", "ON", "TABLE",
                                      "public.profile", "FROM",
                                      f"{installed.role_prefix}member;"]
        conn.execute(repair)
        assert diff_database(conn, model) == []
        conn.commit()
    assert column_privileges(installed, "SELECT") == {"id", "email", "display_name"}


def test_commuted_operands_are_not_drift(installed):
    model = model_with(installed.role_prefix, "SELECT, UPDATE (display_name)")
    model.tables[("public", "profile")].policy(
        "named", command="SELECT", to="member", using="true AND tenant_id IS NOT NULL")
    run(installed.url, model, upgrade_ops(installed.url, model))
    with installed.connect() as conn:
        conn.execute("ALTER POLICY tenant_isolation ON profile "  # commuted operands of =
                     "USING ((SELECT rlskit.tenant_id()) = tenant_id)")
        conn.execute("ALTER POLICY named ON profile USING (tenant_id IS NOT NULL AND true)")  # AND
        assert diff_database(conn, model) == []
        conn.execute("ALTER POLICY named ON profile USING (tenant_id IS NULL AND true)")
        assert [c.action for c in diff_database(conn, model)] == ["alter"]  # meaning changed
