"""The shape of the tables `rlskit verify` seeds and probes, read from the catalog: columns
with their types, primary keys and single-column foreign keys."""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

__all__ = ["Column", "Shape", "read_shapes"]


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # as format_type prints it, safe to splice into a cast
    category: str  # pg_type.typcategory
    not_null: bool
    has_default: bool  # a default, identity or generated value
    enum_first: str | None  # for enums, the first label


@dataclass(frozen=True)
class Shape:
    schema: str
    name: str
    kind: str  # "table" or "view"
    columns: tuple[Column, ...]
    key: tuple[str, ...]  # primary key, or every column
    references: dict[str, tuple[str, str]]  # column -> (qualified table, column)

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)


_COLUMNS = """
SELECT n.nspname, c.relname, c.relkind, a.attname,
       pg_catalog.format_type(a.atttypid, a.atttypmod), t.typcategory, a.attnotnull,
       a.atthasdef OR a.attidentity <> '' OR a.attgenerated <> '',
       (SELECT e.enumlabel FROM pg_catalog.pg_enum e WHERE e.enumtypid = t.oid
        ORDER BY e.enumsortorder LIMIT 1)
FROM pg_catalog.pg_attribute a
JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p', 'v')
  AND (n.nspname, c.relname) IN (SELECT * FROM unnest(%s::text[], %s::text[]))
ORDER BY n.nspname, c.relname, a.attnum"""

_CONSTRAINTS = """
SELECT n.nspname, c.relname, k.contype,
       ARRAY(SELECT a.attname::text FROM unnest(k.conkey) WITH ORDINALITY u(num, pos)
             JOIN pg_catalog.pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = u.num
             ORDER BY u.pos),
       rn.nspname || '.' || r.relname,
       ARRAY(SELECT a.attname::text FROM unnest(k.confkey) WITH ORDINALITY u(num, pos)
             JOIN pg_catalog.pg_attribute a ON a.attrelid = k.confrelid AND a.attnum = u.num
             ORDER BY u.pos)
FROM pg_catalog.pg_constraint k
JOIN pg_catalog.pg_class c ON c.oid = k.conrelid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_catalog.pg_class r ON r.oid = k.confrelid
LEFT JOIN pg_catalog.pg_namespace rn ON rn.oid = r.relnamespace
WHERE k.contype IN ('p', 'f')
  AND (n.nspname, c.relname) IN (SELECT * FROM unnest(%s::text[], %s::text[]))"""


def read_shapes(conn: psycopg.Connection, relations: list[tuple[str, str]]
                ) -> dict[str, Shape]:
    """Shapes of `relations` ((schema, name) pairs) that exist, by qualified name."""
    params = [[s for s, _ in relations], [n for _, n in relations]]
    columns: dict[tuple[str, str], list[Column]] = {}
    kinds = {}
    for schema, name, kind, *column in conn.execute(_COLUMNS, params):
        columns.setdefault((schema, name), []).append(Column(*column))
        kinds[(schema, name)] = "view" if kind == "v" else "table"
    keys: dict[tuple[str, str], tuple[str, ...]] = {}
    references: dict[tuple[str, str], dict[str, tuple[str, str]]] = {}
    for schema, name, kind, cols, target, target_cols in conn.execute(_CONSTRAINTS, params):
        if kind == "p":
            keys[(schema, name)] = tuple(cols)
        elif len(cols) == 1:
            references.setdefault((schema, name), {})[cols[0]] = (target, target_cols[0])
    return {f"{s}.{n}": Shape(s, n, kinds[(s, n)], tuple(cols),
                              keys.get((s, n)) or tuple(c.name for c in cols),
                              references.get((s, n), {}))
            for (s, n), cols in columns.items()}
