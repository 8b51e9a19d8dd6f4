"""Pages across several tenants, one index scan per tenant.

A page of the latest rows of a user who belongs to several tenants, ``ORDER BY created_at
DESC LIMIT 50`` under a membership policy (``tenant_id = ANY (…the caller's tenants…)``),
cannot follow a ``(tenant_id, created_at)`` index as one ordered scan: PostgreSQL reads
every row of every one of those tenants and sorts them. No policy form avoids it; a
hand-written ``WHERE tenant_id = ANY ($1)`` pays the same. Asking each tenant for its own
first `limit` rows (a LATERAL join over the tenants, each scan walking the index in
order) and merging them reads at most tenants × `limit` rows::

    SELECT page.* FROM (<tenants>) AS tenants (tenant_id)
    CROSS JOIN LATERAL (SELECT … FROM item WHERE item.tenant_id = tenants.tenant_id
                        AND <where> ORDER BY created_at DESC LIMIT 50) AS page
    ORDER BY page.created_at DESC LIMIT 50

The row policies still apply to every inner scan: the tenants' list only decides where
to look, never what may be seen. `across_tenants` builds it from a SQLAlchemy ``select``,
`across_tenants_sql` with psycopg's ``sql`` composition.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from psycopg import sql
from sqlalchemy import ColumnElement, Select, select, true
from sqlalchemy.sql.elements import UnaryExpression
from sqlalchemy.sql.operators import desc_op, nulls_first_op, nulls_last_op

from .errors import ModelError
from .sqltext import SqlTextError, parse_query

__all__ = ["across_tenants", "across_tenants_sql"]

_ORDER = re.compile(r"^\s*(\w+)(?:\s+(ASC|DESC))?(?:\s+NULLS\s+(FIRST|LAST))?\s*$", re.I)


def across_tenants(query: Select[Any], tenant_column: ColumnElement[Any],
                   tenants: Select[Any], *, order_by: Sequence[ColumnElement[Any]],
                   limit: int) -> Select[Any]:
    """`query` (its columns, FROM and WHERE; no ORDER BY or LIMIT) paged over `tenants` (a
    one-column select of tenant ids, e.g. the caller's memberships): each tenant's first
    `limit` rows by `order_by` (columns of `query`'s output, or ``.desc()`` of them), then
    the first `limit` of all."""
    _check_limit(limit)
    if query._order_by_clauses or query._limit_clause is not None:
        raise ModelError("across_tenants takes the query without ORDER BY or LIMIT (give "
                         "them as order_by= and limit=)")
    listed = tenants.subquery("tenants")
    if len(listed.c) != 1:
        raise ModelError("across_tenants: tenants must select one column, the tenant id")
    page = (query.where(tenant_column == listed.c[0]).order_by(*order_by).limit(limit)
            .lateral("page"))
    return (select(page).select_from(listed).join(page, true())
            .order_by(*(_outer(page, o) for o in order_by)).limit(limit))


def _outer(page: Any, order: ColumnElement[Any]) -> ColumnElement[Any]:
    """`order` over the page's columns: the same column by name, the same direction."""
    modifiers = []
    while isinstance(order, UnaryExpression) and order.modifier in (
            desc_op, nulls_first_op, nulls_last_op):
        modifiers.append(order.modifier)
        order = order.element
    name = getattr(order, "key", None)
    if name is None or name not in page.c:
        raise ModelError(f"across_tenants: order_by {order} must be a column the query "
                         "selects")
    column = page.c[name]
    for modifier in reversed(modifiers):
        column = {desc_op: column.desc, nulls_first_op: column.nulls_first,
                  nulls_last_op: column.nulls_last}[modifier]()
    return column


def across_tenants_sql(table: str | tuple[str, str], columns: Sequence[str],
                       tenants: str | sql.Composable, *, order_by: Sequence[str],
                       limit: int, where: sql.Composable | None = None,
                       tenant_column: str = "tenant_id") -> sql.Composed:
    """The same page as psycopg SQL: `columns` of `table` (``"item"`` or ``("app",
    "item")``), over `tenants` (SQL text of a one-column SELECT, checked by pglast, or a
    ``sql.Composable``), each tenant's first `limit` rows by `order_by` (``"created_at
    DESC"``: selected columns, ASC/DESC, NULLS FIRST/LAST), with `where` (placeholders
    allowed: its values are the query's parameters) added to each tenant's scan."""
    _check_limit(limit)
    if isinstance(tenants, str):
        try:
            parsed = parse_query(tenants)
        except SqlTextError as exc:
            raise ModelError(f"across_tenants_sql: tenants: {exc}") from None
        if len(parsed.targetList or ()) != 1:
            raise ModelError("across_tenants_sql: tenants must select one column, the "
                             "tenant id")
        tenants = sql.SQL(tenants)  # parsed above: one SELECT, nothing else
    name = (table,) if isinstance(table, str) else table
    relation = sql.Identifier(*name)
    alias = sql.Identifier(name[-1])
    keys = [_order_key(o, columns) for o in order_by]
    match = sql.SQL("{}.{} = tenants.tenant_id").format(alias, sql.Identifier(tenant_column))
    condition = match if where is None else sql.SQL("{} AND ({})").format(match, where)
    return sql.SQL(
        "SELECT page.* FROM ({tenants}) AS tenants (tenant_id) CROSS JOIN LATERAL "
        "(SELECT {columns} FROM {relation} AS {alias} WHERE {condition} ORDER BY {inner} "
        "LIMIT {limit}) AS page ORDER BY {outer} LIMIT {limit}").format(
            tenants=tenants, columns=sql.SQL(", ").join(map(sql.Identifier, columns)),
            relation=relation, alias=alias, condition=condition,
            inner=sql.SQL(", ").join(k for _, k in keys),
            outer=sql.SQL(", ").join(sql.SQL("page.") + k for _, k in keys),
            limit=sql.Literal(limit))


def _order_key(text: str, columns: Sequence[str]) -> tuple[str, sql.Composed]:
    found = _ORDER.match(text)
    if found is None or found.group(1) not in columns:
        raise ModelError(f"across_tenants_sql: order_by {text!r} must be a selected column, "
                         "optionally ASC or DESC and NULLS FIRST or LAST")
    column, direction, nulls = found.groups()
    words = " ".join(filter(None, (direction and direction.upper(),
                                   nulls and f"NULLS {nulls.upper()}")))
    return column, sql.SQL("{}{}").format(sql.Identifier(column),
                                          sql.SQL(" " + words if words else ""))


def _check_limit(limit: int) -> None:
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
        raise ModelError(f"the page's limit must be a positive integer, not {limit!r}")
