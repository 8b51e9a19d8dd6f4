"""`rlskit verify`: the example's access matrix is proven on a real database; deliberately
broken variants are reported cell by cell."""

from __future__ import annotations

import pytest
from conftest import Example, owner_login

from rlskit.errors import ConfigError
from rlskit.examples.saas import build_model
from rlskit.verify import Outcome, verify_database, verify_scratch

ROLES = ("read_only", "member", "tenant_admin", "runner", "app_authenticator", "owner")
RELATIONS = ("public.tenant", "public.users", "public.membership", "public.flow")


def violated(example: Example, statements: str) -> set[tuple[str, str, str]]:
    """Break the example's database with `statements` (committed), verify it."""
    with example.db.connect() as conn:
        conn.execute(statements.format(**{r: example.role(r) for r in example.model.roles}))
        conn.commit()
        matrix = verify_database(conn, example.model)
    assert not matrix.ok
    return {(c.actor, c.relation, c.command) for c in matrix.violations}


def test_the_example_model_is_proven_in_a_scratch_database(rlskit_cluster):
    admin = rlskit_cluster.url("postgres")
    matrix = verify_scratch(admin, build_model())
    assert matrix.ok, matrix.violations
    assert len(matrix.cells) == len(ROLES) * (4 * len(RELATIONS) + 1)
    cells = {(c.actor, c.relation, c.command): c for c in matrix.cells}
    promises = {key: cell.promise for key, cell in cells.items()}
    assert promises[("member", "public.flow", "SELECT")] == "own tenant"
    assert promises[("member", "public.flow", "INSERT")] == "own tenant"
    assert promises[("read_only", "public.flow", "DELETE")] == "denied"
    assert promises[("owner", "public.flow", "SELECT")] == "no rows"  # FORCE binds the owner
    assert promises[("member", "public.member_directory", "SELECT")] == "own tenant"
    # leave_tenant: a member deletes its own membership, not the rest of its tenant's
    assert promises[("member", "public.membership", "DELETE")] == "own rows"
    assert promises[("tenant_admin", "public.membership", "DELETE")] == "own tenant"
    leave = cells[("member", "public.membership", "DELETE")].observations
    assert [(o.context, str(o.actual)) for o in leave] == [
        ("A", "rows A1"), ("B", "rows B1"), ("none", "no rows")]  # only their own membership
    assert {s.probe for s in matrix.side_channels} == {
        "unique key (id)", "foreign key user_id -> public.users"}
    assert all(s.ok for s in matrix.side_channels)
    import psycopg
    with psycopg.connect(admin) as conn:
        left = conn.execute("SELECT count(*) FROM pg_database WHERE datname LIKE 'rlskit_verify%' "
                            "UNION ALL SELECT count(*) FROM pg_roles "
                            "WHERE rolname LIKE 'rlskit_verify%'").fetchall()
    assert left == [(0,), (0,)]


def test_a_live_database_is_proven_and_left_unchanged(example):
    counts = "SELECT (SELECT count(*) FROM flow), (SELECT count(*) FROM users)"
    with example.db.connect() as conn:
        before = conn.execute(counts).fetchone()
        conn.rollback()
        matrix = verify_database(conn, example.model)
        assert matrix.ok, matrix.violations
        assert conn.execute(counts).fetchone() == before
        assert conn.execute("SELECT count(*) FROM pg_class WHERE relname LIKE 'rlskit_%'"
                            ).fetchone() == (0,)


@pytest.mark.parametrize(("statements", "cells"), [
    pytest.param("ALTER TABLE flow NO FORCE ROW LEVEL SECURITY",
                 {("owner", "public.flow", c) for c in ("SELECT", "INSERT", "UPDATE", "DELETE")},
                 id="missing FORCE"),
    pytest.param("ALTER VIEW member_directory RESET (security_invoker)",
                 {("member", "public.member_directory", "SELECT"),
                  ("tenant_admin", "public.member_directory", "SELECT")},
                 id="view without security_invoker"),
    pytest.param("ALTER POLICY leave_tenant ON membership "
                 "USING (tenant_id = (SELECT rlskit.user_id()))",
                 {("member", "public.membership", "DELETE")},
                 id="policy on the wrong column"),
    pytest.param("GRANT DELETE ON flow TO {read_only}",
                 {("read_only", "public.flow", "DELETE"), ("member", "public.flow", "DELETE")},
                 id="DELETE granted beyond the model"),
])
def test_broken_variants_report_the_exact_cells(example, statements, cells):
    assert violated(example, statements) == cells


def test_a_violation_names_context_expected_and_actual(example):
    with example.db.connect() as conn:
        conn.execute("ALTER TABLE flow NO FORCE ROW LEVEL SECURITY")
        conn.commit()
        matrix = verify_database(conn, example.model)
    cell = next(c for c in matrix.violations if c.command == "SELECT")
    a = cell.observations[0]
    assert (a.context, a.expected) == ("A", Outcome.of_rows(()))
    assert {"A1", "A2", "B1", "B2"} <= a.actual.rows


def test_a_side_channel_that_shows_another_tenants_row_is_reported(example):
    """A SECURITY DEFINER trigger that echoes the row a new one collides with."""
    with example.db.connect() as conn:
        conn.execute("""
            CREATE FUNCTION public.echo() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
            SET search_path = public AS $$
            BEGIN
              IF EXISTS (SELECT 1 FROM flow WHERE id = NEW.id) THEN
                RAISE EXCEPTION 'id taken by flow %', (SELECT name FROM flow WHERE id = NEW.id);
              END IF;
              RETURN NEW;
            END $$;
            CREATE TRIGGER echo BEFORE INSERT ON flow FOR EACH ROW EXECUTE FUNCTION echo();""")
        conn.commit()
        matrix = verify_database(conn, example.model)
    leaks = [s for s in matrix.side_channels if not s.ok]
    assert {(s.actor, s.probe) for s in leaks} >= {("member", "unique key (id)")}
    assert all(any(v.endswith("B1-name") for v in s.revealed) for s in leaks)
    assert not matrix.ok


def test_verify_needs_a_superuser_and_the_tables(example):
    with owner_login(example) as owner, example.db.connect(user=owner) as conn, \
            pytest.raises(ConfigError, match="must connect as a superuser"):
        verify_database(conn, example.model)
    model = build_model(role_prefix="nowhere_")
    model.table("ghost")
    with example.db.connect() as conn, pytest.raises(ConfigError, match="public.ghost missing"):
        verify_database(conn, model)


def test_scratch_needs_sqlalchemy_definitions(rlskit_cluster):
    model = build_model()
    model.table("ghost")
    with pytest.raises(ConfigError, match="public.ghost is only named; pass --database"):
        verify_scratch(rlskit_cluster.url("postgres"), model)
