"""Seed tenants for `rlskit verify`: rows for each tenant in every table of the model,
following foreign keys, plus a request context per tenant drawn from those rows."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from itertools import count

import psycopg
from psycopg import sql

from ..errors import ConfigError
from ..model import Model
from ..rows import as_text
from .shapes import Column, Shape

__all__ = ["Seeded", "insert_row", "insert_statement", "row_values", "seed", "seed_root"]

ROWS_PER_TENANT = 2
TENANT_CONTEXT = "tenant_id"


@dataclass
class Seeded:
    """What was inserted: rows by relation (label such as ``A1`` -> column values as text),
    the tenant ids and a context (name -> value) per tenant label."""

    tenants: dict[str, str] = field(default_factory=dict)
    rows: dict[str, dict[str, dict[str, str | None]]] = field(default_factory=dict)
    contexts: dict[str, dict[str, str]] = field(default_factory=dict)

    def label(self, relation: str, key: tuple[str | None, ...], shape: Shape,
              columns: tuple[str, ...] | None = None) -> str:
        """The seeded row a key (the values of `columns`, default the table's key) names
        (``A1``; the first that matches), or ``other`` for rows not seeded here. A view's
        rows are named after the seeded row their key values come from."""
        if relation in self.rows:
            for label, row in self.rows[relation].items():
                if tuple(row[c] for c in columns or shape.key) == key:
                    return label
            return "other"
        for rows in self.rows.values():
            for label, row in rows.items():
                if set(key) <= set(row.values()):
                    return label
        return "other"


def seed_root(model: Model, shapes: dict[str, Shape]) -> str | None:
    """The tenant table whose key is its tenant column: its rows are the tenants."""
    for table in model.tables.values():
        shape = shapes.get(table.qualified)
        if shape and table.tenant_column and shape.key == (table.tenant_column,):
            return table.qualified
    return None


def _ordered(shapes: dict[str, Shape], root: str | None) -> list[Shape]:
    """Tables referenced before the tables referencing them (cycles keep model order)."""
    pending = [s for s in shapes.values() if s.kind == "table"]
    done: list[Shape] = []
    while pending:
        ready = [s for s in pending if s.qualified == root or all(
            target == s.qualified or target not in {p.qualified for p in pending}
            for target, _ in s.references.values())]
        ready = ready or pending[:1]
        for s in ready:
            pending.remove(s)
        done += ready
    return done


def _value(column: Column, tag: str, numbers: count) -> str:
    if column.type == "uuid":
        return str(uuid.uuid4())
    if column.category == "N":
        return str(next(numbers))
    if column.category == "S":
        return f"{tag}-{column.name}"
    if column.category == "E" and column.enum_first is not None:
        return column.enum_first
    simple = {"B": "true", "D": "2026-01-01", "T": "1 hour", "A": "{}", "I": "10.0.0.1"}
    if column.category in simple:
        return simple[column.category]
    if column.type in ("json", "jsonb"):
        return "{}"
    raise ConfigError(f"rlskit verify cannot make up a value for {tag.split(':')[0]}."
                      f"{column.name} ({column.type}); give it a default")


def _existing(conn: psycopg.Connection, table: str, column: str) -> str | None:
    schema, name = table.split(".", 1)
    row = conn.execute(sql.SQL("SELECT {}::text FROM {} LIMIT 1").format(
        sql.Identifier(column), sql.Identifier(schema, name))).fetchone()
    return row[0] if row else None


def seed(conn: psycopg.Connection, model: Model, shapes: dict[str, Shape],
         tenants: tuple[str, ...], seeded: Seeded | None = None) -> Seeded:
    """Insert rows for each tenant label (as a role that bypasses RLS), recorded in
    `seeded` (a new one by default) as they go in."""
    seeded = Seeded() if seeded is None else seeded
    root = seed_root(model, shapes)
    tenant_columns = {t.qualified: t.tenant_column for t in model.tables.values()}
    tenant_type = next((shapes[q].column(c) for q, c in tenant_columns.items()
                        if c and q in shapes), None)
    numbers = count(1000)
    for label in tenants:
        if root is None and tenant_type is not None:
            seeded.tenants[label] = _value(tenant_type, label, numbers)
    for shape in _ordered(shapes, root):
        rows = seeded.rows.setdefault(shape.qualified, {})
        per_tenant = 1 if shape.qualified == root else ROWS_PER_TENANT
        for label in tenants:
            for i in range(1, per_tenant + 1):
                row_label = f"{label}{i}"
                values = row_values(conn, shape, label, row_label, tenant_columns, seeded,
                                    numbers)
                rows[row_label] = insert_row(conn, shape, values)
                if shape.qualified == root:
                    seeded.tenants[label] = rows[row_label][shape.key[0]] or ""
    for label in tenants:
        seeded.contexts[label] = _context(model, seeded, label)
    return seeded


def row_values(conn: psycopg.Connection, shape: Shape, label: str, row_label: str,
               tenant_columns: dict[str, str | None], seeded: Seeded, numbers: count,
               parents: Mapping[str, Mapping[str, str | None]] | None = None
               ) -> dict[str, str]:
    """Column values (as text) for a new row of `label`'s tenant: its tenant id, keys of
    the rows it references (`parents` by table, else the tenant's seeded rows), made-up
    values where a value is required."""
    values: dict[str, str] = {}
    for column in shape.columns:
        if column.name == tenant_columns.get(shape.qualified) and label in seeded.tenants:
            values[column.name] = seeded.tenants[label]
        elif column.name in shape.references:
            target, target_column = shape.references[column.name]
            source = seeded.rows.get(target, {})
            row = ((parents or {}).get(target) or source.get(row_label)
                   or source.get(f"{label}1"))
            value = row[target_column] if row else _existing(conn, target, target_column)
            if value is not None:
                values[column.name] = value
            elif column.not_null:
                raise ConfigError(f"rlskit verify needs a row in {target} for "
                                  f"{shape.qualified}.{column.name}")
        elif column.not_null and not column.has_default:
            values[column.name] = _value(column, f"{shape.qualified}:{row_label}", numbers)
    return values


def insert_statement(target: sql.Composable, shape: Shape,
                     values: Mapping[str, str | None]) -> sql.Composed:
    """``INSERT INTO target (…) VALUES (CAST(%s AS type), …)``; `values` are the parameters
    (none: ``DEFAULT VALUES``)."""
    if not values:
        return sql.SQL("INSERT INTO {} DEFAULT VALUES").format(target)
    return sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
        target, sql.SQL(", ").join(map(sql.Identifier, values)),
        sql.SQL(", ").join(sql.SQL("CAST(%s AS {})").format(sql.SQL(shape.column(name).type))
                           for name in values))


def insert_row(conn: psycopg.Connection, shape: Shape, values: Mapping[str, str | None]
               ) -> dict[str, str | None]:
    """Insert a row; all its columns as text."""
    returning = sql.SQL(", ").join(sql.Identifier(c.name) for c in shape.columns)
    target = sql.Identifier(shape.schema, shape.name)
    insert = insert_statement(target, shape, values)
    (row,) = as_text(conn.execute(sql.SQL("{} RETURNING {}").format(insert, returning),
                                  list(values.values())))
    return dict(zip((c.name for c in shape.columns), row, strict=True))


def _context(model: Model, seeded: Seeded, label: str) -> dict[str, str]:
    """The tenant's id, and for every other context name the value of a column of that
    name in the tenant's first seeded rows (e.g. ``user_id``), when there is one."""
    context = {TENANT_CONTEXT: seeded.tenants[label]} if label in seeded.tenants else {}
    for name in model.claims:
        if name in context:
            continue
        for rows in seeded.rows.values():
            value = rows.get(f"{label}1", {}).get(name)
            if value is not None:
                context[name] = value
                break
    return context
