"""The pytest plugin's helpers, as a user's policy tests would use them."""

from __future__ import annotations

import pytest

from rlskit.examples.saas import build_model
from rlskit.testing import access_matrix_tests, assert_denied, assert_invisible, assert_visible

test_access_matrix = access_matrix_tests(build_model())


@pytest.fixture
def rlskit_model():
    return build_model()


@pytest.fixture
def tenants(rlskit_policy_db):
    """Two tenants with a member and a flow each."""
    with rlskit_policy_db.connect() as conn:
        ids = {}
        for name in ("acme", "globex"):
            tenant = conn.execute("INSERT INTO tenant (name) VALUES (%s) RETURNING id",
                                  [name]).fetchone()[0]
            user = conn.execute("INSERT INTO users (email, first_name, last_name) "
                                "VALUES (%s, 'A', 'B') RETURNING id", [name]).fetchone()[0]
            conn.execute("INSERT INTO membership (tenant_id, user_id) VALUES (%s, %s)",
                         [tenant, user])
            conn.execute("INSERT INTO flow (tenant_id, name) VALUES (%s, 'f')", [tenant])
            ids[name] = (tenant, user)
        conn.commit()
    return ids


def test_a_policy_test_in_a_few_lines(rlskit_policy_db, tenants):
    (acme, alice), (globex, _) = tenants["acme"], tenants["globex"]
    with rlskit_policy_db.as_user(role="member", tenant=acme, user=alice) as conn:
        assert_visible(conn, "flow", tenant_id=acme)
        assert_visible(conn, "users", count=1)
        assert_invisible(conn, "flow", tenant_id=globex)
        assert_denied(conn, "DELETE FROM flow")
        conn.execute("INSERT INTO flow (tenant_id, name) VALUES (%s, 'mine')", [acme])
        assert_visible(conn, "flow", count=2)
    with rlskit_policy_db.as_user(role="member", tenant=acme, user=alice) as conn:
        assert_visible(conn, "flow", count=1)  # rolled back unless commit=True


def test_failure_messages_say_who_looked_at_what(rlskit_policy_db, tenants):
    (acme, alice), (globex, _) = tenants["acme"], tenants["globex"]
    member = rlskit_policy_db.model.role_name("member")
    with rlskit_policy_db.as_user(role="member", tenant=acme, user=alice) as conn:
        with pytest.raises(AssertionError, match=(
                f"expected some rows of flow with tenant_id = UUID.*to be visible as "
                f"{member} with app.tenant_id = {acme}, app.user_id = {alice}, but 0 are")):
            assert_visible(conn, "flow", tenant_id=globex)
        with pytest.raises(AssertionError, match="expected no rows of flow to be visible"):
            assert_invisible(conn, "flow")
        with pytest.raises(AssertionError, match=r"'SELECT 1' to be denied .* succeeded"):
            assert_denied(conn, "SELECT 1")
