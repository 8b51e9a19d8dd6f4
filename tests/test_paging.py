"""Pages across the caller's tenants (`rlskit.paging`): the same rows as the sorted page,
one index scan per tenant, and the row policies still deciding what is seen."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import psycopg
import pytest
from psycopg import sql
from sqlalchemy import Column, DateTime, Integer, MetaData, Table, func, select, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import UUID

from rlskit.errors import ModelError
from rlskit.explain import plan_hints
from rlskit.paging import across_tenants, across_tenants_sql
from rlskit.testing import ScratchDatabase

TENANTS, ROWS, LIMIT = 6, 400, 20
metadata = MetaData()
item = Table("item", metadata, Column("id", Integer, primary_key=True),
             Column("tenant_id", UUID), Column("created_at", DateTime(timezone=True)))
membership = Table("membership", metadata, Column("tenant_id", UUID), Column("user_id", UUID))
MEMBERSHIPS = ("SELECT tenant_id FROM membership "
               "WHERE user_id = (SELECT current_setting('app.user_id')::uuid)")
POLICY = f"tenant_id = ANY (ARRAY({MEMBERSHIPS}))"


@dataclass
class Setting:
    db: ScratchDatabase
    role: str
    user: str  # a member of tenants 0, 1 and 2
    tenants: list[str]


@pytest.fixture
def setting(rlskit_db: ScratchDatabase) -> Setting:
    role = rlskit_db.role_prefix + "reader"
    user = str(uuid.uuid4())
    tenants = [str(uuid.uuid4()) for _ in range(TENANTS)]
    with rlskit_db.connect() as conn:
        conn.execute("CREATE TABLE item (id int PRIMARY KEY, tenant_id uuid NOT NULL, "
                     "created_at timestamptz NOT NULL)")
        conn.execute("CREATE INDEX ON item (tenant_id, created_at)")
        conn.execute("CREATE TABLE membership (tenant_id uuid, user_id uuid)")
        conn.execute("INSERT INTO item SELECT g, (%s::uuid[])[1 + g %% %s], "
                     "now() - g * interval '1 minute' FROM generate_series(1, %s) g",
                     [tenants, TENANTS, TENANTS * ROWS])
        conn.execute("INSERT INTO membership SELECT t, %s FROM unnest(%s::uuid[]) t",
                     [user, tenants[:3]])
        conn.execute(sql.SQL("CREATE ROLE {}").format(sql.Identifier(role)))
        conn.execute(sql.SQL("GRANT SELECT ON item, membership TO {}").format(
            sql.Identifier(role)))
        conn.execute("ALTER TABLE item ENABLE ROW LEVEL SECURITY")
        conn.execute(sql.SQL("CREATE POLICY members ON item TO {} USING (" + POLICY + ")")
                     .format(sql.Identifier(role)))
        conn.execute("ANALYZE")
        conn.commit()
    return Setting(rlskit_db, role, user, tenants)


def as_reader(conn: psycopg.Connection, s: Setting) -> None:
    conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(s.role)))
    conn.execute("SELECT set_config('app.user_id', %s, false)", [s.user])


def rows_read(conn: psycopg.Connection, query: str | sql.Composable, params=None) -> int:
    """Rows of item the plan's scans returned, from EXPLAIN ANALYZE."""
    plan = conn.execute(sql.SQL("EXPLAIN (ANALYZE, FORMAT JSON) ") + (
        sql.SQL(query) if isinstance(query, str) else query), params).fetchone()[0][0]["Plan"]
    total, stack = 0, [plan]
    while stack:
        node = stack.pop()
        if node.get("Relation Name") == "item":
            total += node["Actual Rows"] * node["Actual Loops"]
        stack.extend(node.get("Plans", ()))
    return round(total)


SORTED = f"SELECT id, created_at FROM item ORDER BY created_at DESC LIMIT {LIMIT}"


def test_the_sql_helper_returns_the_sorted_page_reading_a_page_per_tenant(setting):
    page = across_tenants_sql("item", ["id", "created_at"], MEMBERSHIPS,
                              order_by=["created_at DESC"], limit=LIMIT)
    with setting.db.connect() as conn:
        as_reader(conn, setting)
        expected = conn.execute(SORTED).fetchall()
        assert conn.execute(page).fetchall() == expected and len(expected) == LIMIT
        assert rows_read(conn, SORTED) == 3 * ROWS  # every row of the three, sorted
        assert rows_read(conn, page) <= 3 * LIMIT


def test_the_policies_still_decide_what_is_seen(setting):
    """Listing every tenant, the caller's three or not, changes nothing: the page is the
    caller's."""
    everyone = sql.SQL("SELECT unnest({}::uuid[])").format(sql.Literal(setting.tenants))
    page = across_tenants_sql("item", ["id", "tenant_id"], everyone, order_by=["id"],
                              limit=TENANTS * ROWS)
    with setting.db.connect() as conn:
        as_reader(conn, setting)
        seen = {t for _, t in conn.execute(page).fetchall()}
    assert seen == {uuid.UUID(t) for t in setting.tenants[:3]}


def test_a_where_clause_keeps_its_parameters(setting):
    page = across_tenants_sql("item", ["id", "created_at"], MEMBERSHIPS,
                              order_by=["created_at DESC"], limit=LIMIT,
                              where=sql.SQL("item.id %% 2 = %s"))
    with setting.db.connect() as conn:
        as_reader(conn, setting)
        got = conn.execute(page, [1]).fetchall()
        expected = conn.execute(f"SELECT id, created_at FROM item WHERE id % 2 = 1 "
                                f"ORDER BY created_at DESC LIMIT {LIMIT}").fetchall()
    assert got == expected


def test_the_sqlalchemy_helper_returns_the_sorted_page(setting):
    mine = select(membership.c.tenant_id).where(
        membership.c.user_id == func.current_setting("app.user_id").cast(UUID))
    page = across_tenants(select(item.c.id, item.c.created_at), item.c.tenant_id, mine,
                          order_by=[item.c.created_at.desc()], limit=LIMIT)
    compiled = page.compile(dialect=postgresql.psycopg.dialect(),
                            compile_kwargs={"literal_binds": True})
    with setting.db.connect() as conn:
        as_reader(conn, setting)
        assert conn.execute(str(compiled)).fetchall() == conn.execute(SORTED).fetchall()
        assert rows_read(conn, str(compiled)) <= 3 * LIMIT
    assert "LATERAL" in str(compiled)


@pytest.mark.parametrize(("call", "message"), [
    (lambda: across_tenants_sql("item", ["id"], MEMBERSHIPS, order_by=["created_at"],
                                limit=5), "order_by 'created_at' must be a selected column"),
    (lambda: across_tenants_sql("item", ["id"], "SELECT 1, 2", order_by=["id"], limit=5),
     "tenants must select one column"),
    (lambda: across_tenants_sql("item", ["id"], "DELETE FROM item", order_by=["id"],
                                limit=5), "tenants"),
    (lambda: across_tenants_sql("item", ["id"], MEMBERSHIPS, order_by=["id; DROP"],
                                limit=5), "must be a selected column"),
    (lambda: across_tenants_sql("item", ["id"], MEMBERSHIPS, order_by=["id"], limit=0),
     "positive integer"),
    (lambda: across_tenants(select(item.c.id), item.c.tenant_id,
                            select(membership.c.tenant_id),
                            order_by=[item.c.created_at.desc()], limit=5),
     "must be a column the query selects"),
    (lambda: across_tenants(select(item.c.id).order_by(item.c.id), item.c.tenant_id,
                            select(membership.c.tenant_id), order_by=[item.c.id], limit=5),
     "without ORDER BY or LIMIT"),
    (lambda: across_tenants(select(item.c.id), item.c.tenant_id, select(membership),
                            order_by=[item.c.id], limit=5), "one column"),
])
def test_a_wrong_page_is_one_clear_error(call, message):
    with pytest.raises(ModelError, match=message):
        call()


def test_an_order_by_written_as_text_is_refused():
    """A `text()` ordering cannot be mapped onto the page's columns: one clear error."""
    with pytest.raises(ModelError, match="must be a column the query selects"):
        across_tenants(select(item.c.id), item.c.tenant_id, select(membership.c.tenant_id),
                       order_by=[text("id DESC")], limit=5)


def plan_of(conn: psycopg.Connection, query: str | sql.Composable) -> dict:
    return conn.execute(sql.SQL("EXPLAIN (ANALYZE, VERBOSE, FORMAT JSON) ") + (
        sql.SQL(query) if isinstance(query, str) else query)).fetchone()[0][0]["Plan"]


def test_explain_hints_at_a_sorted_page_over_several_tenants_and_not_at_the_paged_one(
        setting):
    page = across_tenants_sql("item", ["id", "created_at"], MEMBERSHIPS,
                              order_by=["created_at DESC"], limit=LIMIT)
    with setting.db.connect() as conn:
        as_reader(conn, setting)
        sorted_hints = plan_hints(plan_of(conn, SORTED))
        paged_hints = plan_hints(plan_of(conn, page))
        single = plan_hints(plan_of(conn, f"SELECT id FROM item WHERE tenant_id = "
                                          f"'{setting.tenants[0]}' ORDER BY created_at "
                                          f"LIMIT {LIMIT}"))
    assert [h.id for h in sorted_hints] == ["sorts-many-tenants"], sorted_hints
    assert sorted_hints[0].node.endswith("on item")
    assert f"{3 * ROWS} rows into the sort" in sorted_hints[0].message
    assert "rlskit.paging.across_tenants" in sorted_hints[0].fix
    assert paged_hints == [] and single == []


def test_explain_hints_at_a_context_read_per_row(setting):
    with setting.db.connect() as conn:
        as_reader(conn, setting)
        hints = plan_hints(plan_of(conn, "SELECT tenant_id FROM membership WHERE user_id = "
                                         "current_setting('app.user_id')::uuid"))
    assert [h.id for h in hints] == ["context-per-row"]
