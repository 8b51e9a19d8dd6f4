"""``rlskit explain``: a query's plan as a role with a context sees it, and what to change.

EXPLAIN (with ANALYZE if asked) runs in a transaction that is rolled back, as the model's
`role` with the context `values` (sealed with a key of the run's own when the model seals
its context), so the plan is the one the application gets under its policies. The plan
is then read for the shapes that make row-level security slow:

- ``sorts-many-tenants``: a sort above a scan that a policy limits to several tenants
  (``tenant_id = ANY (…)``, a hashed subplan): an ORDER BY … LIMIT that reads and sorts
  every row of the caller's tenants, where one ordered index scan per tenant reads a page
  each (`rlskit.paging`);
- ``context-per-row``: a scan filter that reads the context (``current_setting`` or a
  helper) for every row instead of once per statement (an InitPlan).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import pglast
import psycopg
from pglast import ast
from psycopg import sql

from .context import for_role
from .errors import ConfigError
from .keystore import rotate
from .model import Model
from .rows import one
from .seal import ContextKey, sealed_settings

__all__ = ["Explained", "Hint", "explain", "plan_hints"]

_STATEMENTS = (ast.SelectStmt, ast.InsertStmt, ast.UpdateStmt, ast.DeleteStmt)
_SCANS = ("Seq Scan", "Index Scan", "Index Only Scan", "Bitmap Heap Scan")  # a bitmap
# index scan's condition is its heap scan's Recheck Cond
_CONDITIONS = ("Filter", "Index Cond", "Recheck Cond")
_SEVERAL = re.compile(r"\(?(\w+) = ANY \(|hashed SubPlan|\(?(\w+) IN \(")


@dataclass(frozen=True)
class Hint:
    id: str
    node: str  # the plan node it is about, e.g. "Seq Scan on item"
    message: str
    fix: str


@dataclass(frozen=True)
class Explained:
    text: str  # the plan as EXPLAIN prints it
    plan: dict[str, Any]  # the same plan as EXPLAIN (FORMAT JSON) gives it
    hints: list[Hint]


def explain(conn: psycopg.Connection, model: Model, query: str, role: str,
            values: Mapping[str, Any], *, analyze: bool = False) -> Explained:
    """The plan of `query` as the model's `role` with the context `values`, in a
    transaction that is rolled back (ANALYZE runs the query there; its writes are undone).
    `conn` must be allowed to switch to the role (an owner or superuser)."""
    _check_statement(query)
    ctx = for_role(model, role, **values)
    options = sql.SQL("ANALYZE, BUFFERS, " if analyze else "")
    with conn.transaction(force_rollback=True):
        key = None
        if model.sealed:
            key = rotate(conn, model.helpers_schema,
                         ContextKey.generate(f"explain-{uuid.uuid4().hex[:12]}"))
        conn.execute("SELECT set_config('role', %s, true)", [ctx.role])
        for name, value in sealed_settings(model, ctx.role, ctx.values, key) + ctx.limits:
            conn.execute("SELECT set_config(%s, %s, true)", [name, value])
        statement = sql.SQL(query)  # parsed above: one SELECT, INSERT, UPDATE or DELETE
        try:
            text = "\n".join(r[0] for r in conn.execute(
                sql.SQL("EXPLAIN ({}VERBOSE) {}").format(options, statement)))
            plan = one(conn.execute(sql.SQL("EXPLAIN ({}VERBOSE, FORMAT JSON) {}").format(
                options, statement)))[0][0]["Plan"]
        except psycopg.DatabaseError as exc:
            raise ConfigError(f"the query fails as {role}: "
                              f"{exc.diag.message_primary or exc}") from None
    return Explained(text, plan, plan_hints(plan))


def _check_statement(query: str) -> None:
    try:
        statements = pglast.parse_sql(query)
    except pglast.parser.ParseError as exc:
        raise ConfigError(f"not valid SQL: {exc}") from None
    if len(statements) != 1 or not isinstance(statements[0].stmt, _STATEMENTS):
        raise ConfigError("rlskit explain takes one SELECT, INSERT, UPDATE or DELETE")


def _nodes(plan: dict[str, Any], above: tuple[dict[str, Any], ...] = ()
           ) -> Iterator[tuple[dict[str, Any], tuple[dict[str, Any], ...]]]:
    """Every node of `plan` with the nodes above it (nearest last)."""
    yield plan, above
    for child in plan.get("Plans", ()):
        yield from _nodes(child, (*above, plan))


def _label(node: dict[str, Any]) -> str:
    name = node.get("Relation Name") or node.get("Index Name")
    return f"{node['Node Type']} on {name}" if name else node["Node Type"]


def _sorted_then_limited(above: tuple[dict[str, Any], ...]) -> bool:
    """Does a scan's output go whole into a sort that a LIMIT then cuts (and not through
    a LIMIT of its own first, as each tenant's page does)?"""
    kinds = [n["Node Type"] for n in reversed(above)]  # nearest first
    sort = next((i for i, k in enumerate(kinds) if k in ("Sort", "Incremental Sort")), None)
    return sort is not None and "Limit" not in kinds[:sort] and "Limit" in kinds[sort:]


def plan_hints(plan: dict[str, Any]) -> list[Hint]:
    """What to change, read from a JSON plan (see the module)."""
    hints = []
    for node, above in _nodes(plan):
        if node["Node Type"] not in _SCANS:
            continue
        conditions = " ".join(str(node[c]) for c in _CONDITIONS if c in node)
        several = _SEVERAL.search(conditions)
        if several and _sorted_then_limited(above):
            column = several.group(1) or several.group(2) or "tenant_id"
            rows = node.get("Actual Rows", node.get("Plan Rows"))
            hints.append(Hint(
                "sorts-many-tenants", _label(node),
                f"the page sorts every row of several {column} values (the policy admits "
                f"several tenants) before its LIMIT: {rows:g} rows into the sort",
                "page per tenant: rlskit.paging.across_tenants (SQLAlchemy) or "
                "across_tenants_sql (psycopg) read one ordered index scan per tenant"))
        if "current_setting(" in str(node.get("Filter", "")):
            hints.append(Hint(
                "context-per-row", _label(node),
                "the filter reads the context with current_setting for every row",
                "wrap the read in a subquery, (SELECT current_setting(…)), or use the "
                "model's helpers, so it runs once per statement (an InitPlan)"))
    return hints
