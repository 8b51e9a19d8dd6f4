"""The example's generated SQL on a real server: tenants, roles and the view are isolated."""

from __future__ import annotations

import psycopg
import pytest
from conftest import owner_login
from psycopg import errors

TENANT_TABLES = ("tenant", "membership", "flow")


def ids(conn: psycopg.Connection, query: str, params: list | None = None) -> set:
    return {row[0] for row in conn.execute(query, params or []).fetchall()}


def test_member_sees_only_own_tenant(example):
    a, b = example.data.a, example.data.b
    with example.session("member", tenant=a.id, user=a.member) as conn:
        assert ids(conn, "SELECT id FROM flow") == set(a.flows)
        assert ids(conn, "SELECT tenant_id FROM membership") == {a.id}
        assert ids(conn, "SELECT id FROM tenant") == {a.id}
        assert ids(conn, "SELECT id FROM flow WHERE id = ANY(%s)", [list(b.flows)]) == set()
    with example.session("member", tenant=b.id, user=b.member) as conn:
        assert ids(conn, "SELECT id FROM flow") == set(b.flows)


def test_switching_tenant_is_a_new_context(example):
    a, b, both = example.data.a, example.data.b, example.data.both
    with example.session("member", tenant=a.id, user=both) as conn:
        assert ids(conn, "SELECT id FROM flow") == set(a.flows)
    with example.session("member", tenant=b.id, user=both) as conn:
        assert ids(conn, "SELECT id FROM flow") == set(b.flows)


def test_cannot_insert_into_another_tenant(example):
    a, b = example.data.a, example.data.b
    with example.session("member", tenant=a.id, user=a.member) as conn, \
            pytest.raises(errors.InsufficientPrivilege, match="row-level security"):
        conn.execute("INSERT INTO flow (tenant_id, name) VALUES (%s, 'x')", [b.id])


def test_cannot_move_a_row_to_another_tenant(example):
    a, b = example.data.a, example.data.b
    with example.session("member", tenant=a.id, user=a.member) as conn, \
            pytest.raises(errors.InsufficientPrivilege, match="row-level security"):
        conn.execute("UPDATE flow SET tenant_id = %s WHERE id = %s", [b.id, a.flows[0]])


def test_update_and_delete_never_touch_another_tenant(example):
    a, b = example.data.a, example.data.b
    with example.session("tenant_admin", tenant=a.id, user=a.admin) as conn:
        cur = conn.execute("UPDATE flow SET name = 'hijacked' WHERE id = ANY(%s) RETURNING id",
                           [list(b.flows)])
        assert cur.rowcount == 0 and cur.fetchall() == []
        cur = conn.execute("DELETE FROM flow WHERE id = ANY(%s) RETURNING id", [list(b.flows)])
        assert cur.rowcount == 0
        returned = ids(conn, "UPDATE flow SET status = 'running' RETURNING id")
        assert returned == set(a.flows)
    with example.db.connect() as conn:
        assert ids(conn, "SELECT id FROM flow WHERE name = 'hijacked'") == set()
        assert ids(conn, "SELECT id FROM flow WHERE id = ANY(%s)", [list(b.flows)]) == set(b.flows)


def test_insert_on_conflict_cannot_reach_another_tenant(example):
    a, b = example.data.a, example.data.b
    upsert = ("INSERT INTO flow (id, tenant_id, name) VALUES (%s, %s, 'x') "
              "ON CONFLICT (id) DO UPDATE SET name = 'overwritten' RETURNING id")
    with example.session("member", tenant=a.id, user=a.member) as conn, \
            pytest.raises(errors.InsufficientPrivilege, match="row-level security"):
        conn.execute(upsert, [b.flows[0], a.id])
    with example.session("member", tenant=a.id, user=a.member) as conn:
        cur = conn.execute("INSERT INTO flow (id, tenant_id, name) VALUES (%s, %s, 'x') "
                           "ON CONFLICT (id) DO NOTHING RETURNING id", [b.flows[0], a.id])
        assert cur.fetchall() == []
        new = conn.execute("INSERT INTO flow (tenant_id, name) VALUES (%s, 'mine') "
                           "RETURNING tenant_id", [a.id]).fetchone()
        assert new == (a.id,)
    with example.db.connect() as conn:
        assert conn.execute("SELECT name FROM flow WHERE id = %s",
                            [b.flows[0]]).fetchone()[0] == "b-flow-0"


@pytest.mark.parametrize("role", ["read_only", "member", "tenant_admin", "runner"])
def test_no_context_means_no_rows_and_no_writes(example, role):
    readable = ("flow",) if role == "runner" else (*TENANT_TABLES, "users")
    with example.session(role) as conn:
        for table in readable:
            assert conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == 0
        if role in ("member", "tenant_admin"):
            assert conn.execute("UPDATE flow SET name = 'x'").rowcount == 0
            with pytest.raises(errors.InsufficientPrivilege, match="row-level security"):
                conn.execute("INSERT INTO flow (tenant_id, name) VALUES (%s, 'x')",
                             [example.data.a.id])


def test_empty_setting_is_no_context(example):
    with example.session("member", tenant="") as conn:
        assert conn.execute("SELECT count(*) FROM flow").fetchone()[0] == 0


def test_read_only_cannot_write(example):
    a = example.data.a
    for statement in ("INSERT INTO flow (tenant_id, name) VALUES (%s, 'x')",
                      "UPDATE flow SET name = 'x' WHERE tenant_id = %s",
                      "DELETE FROM membership WHERE tenant_id = %s"):
        with example.session("read_only", tenant=a.id, user=a.reader) as conn, \
                pytest.raises(errors.InsufficientPrivilege, match="permission denied"):
            conn.execute(statement, [a.id])


def test_member_deletes_only_own_membership(example):
    a = example.data.a
    with example.session("member", tenant=a.id, user=a.member) as conn:
        assert conn.execute("DELETE FROM membership WHERE user_id = %s", [a.reader]).rowcount == 0
        assert conn.execute("DELETE FROM membership WHERE user_id = %s", [a.member]).rowcount == 1


def test_admin_deletes_any_membership_in_own_tenant_only(example):
    a, b = example.data.a, example.data.b
    with example.session("tenant_admin", tenant=a.id, user=a.admin) as conn:
        assert conn.execute("DELETE FROM membership WHERE user_id = ANY(%s)",
                            [[b.member, b.reader]]).rowcount == 0
        assert conn.execute("DELETE FROM membership WHERE user_id = %s",
                            [example.data.both]).rowcount == 1
        assert ids(conn, "SELECT tenant_id FROM membership") == {a.id}
    with example.db.connect() as conn:
        assert conn.execute("SELECT count(*) FROM membership WHERE tenant_id = %s",
                            [b.id]).fetchone()[0] == 4


def test_runner_updates_only_status(example):
    a = example.data.a
    with example.session("runner", tenant=a.id) as conn:
        assert conn.execute("UPDATE flow SET status = 'done'").rowcount == len(a.flows)
        with pytest.raises(errors.InsufficientPrivilege, match="permission denied"):
            conn.execute("UPDATE flow SET name = 'x'")


def test_directory_shows_fellow_members_allowed_columns_only(example):
    a, b = example.data.a, example.data.b
    with example.session("member", tenant=a.id, user=a.member) as conn:
        cur = conn.execute("SELECT * FROM member_directory")
        assert [c.name for c in cur.description] == ["id", "email", "first_name", "last_name"]
        assert {row[0] for row in cur.fetchall()} == {a.admin, a.member, a.reader,
                                                      example.data.both}
        with pytest.raises(errors.InsufficientPrivilege, match="permission denied"):
            conn.execute("SELECT password_hash FROM users")
    with example.session("member", tenant=b.id, user=b.member) as conn:
        seen = ids(conn, "SELECT id FROM member_directory")
        assert seen.isdisjoint({a.admin, a.member, a.reader})
    with example.session("member") as conn:
        assert ids(conn, "SELECT id FROM member_directory") == set()


def test_view_is_security_invoker(example):
    with example.db.connect() as conn:
        options = conn.execute("SELECT reloptions FROM pg_class WHERE relname = "
                               "'member_directory'").fetchone()[0]
    if example.db.version >= 15:
        assert "security_invoker=true" in options
    assert "security_barrier=true" in options


def test_table_owner_is_bound_too(example):
    a = example.data.a
    with owner_login(example) as owner, example.db.connect(user=owner) as conn:
        assert conn.execute("SELECT count(*) FROM flow").fetchone()[0] == 0
        conn.execute("SELECT set_config('app.tenant_id', %s, true)", [str(a.id)])
        with pytest.raises(errors.InsufficientPrivilege, match="row-level security"):
            conn.execute("INSERT INTO flow (tenant_id, name) VALUES (%s, 'x')",
                         [example.data.b.id])


def test_context_does_not_outlive_the_transaction(example):
    a = example.data.a
    with example.session("member", a.id, a.member) as conn:
        assert conn.execute("SELECT count(*) FROM flow").fetchone()[0] == len(a.flows)
        conn.commit()
        assert conn.execute("SELECT current_user").fetchone()[0] == \
            example.role("app_authenticator")
        with pytest.raises(errors.InsufficientPrivilege):
            conn.execute("SELECT count(*) FROM flow")


def test_authenticator_has_no_rights_of_its_own(example):
    with example.db.connect(user=example.role("app_authenticator")) as conn, \
            pytest.raises(errors.InsufficientPrivilege, match="permission denied"):
        conn.execute("SELECT * FROM flow")
