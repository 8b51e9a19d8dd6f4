"""What a table argument of the model names: a table name, an SQLAlchemy ``Table`` or a
mapped class."""

from __future__ import annotations

from typing import Any

from .errors import ModelError

__all__ = ["table_identity"]


def table_identity(table: Any, schema: str | None
                    ) -> tuple[str, str | None, frozenset | None, Any]:
    """(name, schema, columns, SQLAlchemy Table) of a table given by name or as SQLAlchemy
    Table / class."""
    if isinstance(table, str):
        return table, schema, None, None
    sa_table = getattr(table, "__table__", table)
    name = getattr(sa_table, "name", None)
    cols = getattr(sa_table, "columns", None)
    if not isinstance(name, str) or cols is None:
        raise ModelError(
            f"a table must be a name, an SQLAlchemy Table or a mapped class, got {table!r}"
        )
    return (name, schema or getattr(sa_table, "schema", None), frozenset(c.name for c in cols),
            sa_table)
