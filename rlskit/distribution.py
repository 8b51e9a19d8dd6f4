"""Citus: which tables are sharded across the cluster, by which column, and which are
copied to every node.

A tenant table distributed by its tenant column keeps each tenant's rows on one node;
small shared tables that tenant tables reference (the tenant list itself) become reference
tables. Citus refuses subqueries in the policies of its tables, so on these tables the
model's policies read the context by plain helper calls (evaluated on the workers, per
row) instead of rlskit's usual ``(SELECT helper())`` InitPlan; a policy that still holds a
subquery (a membership ``EXISTS``) is refused when the model is compiled.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .errors import ModelError
from .tables import table_identity

__all__ = ["Distributed", "declare_distribution"]


@dataclass(frozen=True)
class Distributed:
    """A Citus table of the model: hash-distributed by `column`, or a reference table
    (`column` None) on every node."""

    schema: str
    name: str
    column: str | None
    colocate_with: str | None = None  # "schema.table"; None: Citus' default group

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"


def declare_distribution(table: Any, schema: str | None, default_schema: str,
                         column: str | None, colocate_with: Any,
                         taken: dict[tuple[str, str], Distributed]) -> Distributed:
    """Check a `model.distribute` / `model.reference_table` declaration."""
    name, table_schema, columns, _ = table_identity(table, schema)
    qualified_schema = table_schema or default_schema
    if (qualified_schema, name) in taken:
        raise ModelError(f"table {name!r} is distributed twice")
    if column is not None:
        if not isinstance(column, str) or not column:
            raise ModelError(f"distribute({name!r}): by= must name a column")
        if columns is not None and column not in columns:
            raise ModelError(f"distribute({name!r}): {column!r} is not a column of the table")
    partner = None
    if colocate_with is not None:
        other, other_schema, _, _ = table_identity(colocate_with, None)
        key = (other_schema or default_schema, other)
        if key not in taken or taken[key].column is None:
            raise ModelError(f"distribute({name!r}): colocate_with {other!r} must be a table "
                             "distributed earlier in the model")
        partner = f"{key[0]}.{key[1]}"
    return Distributed(qualified_schema, name, column, partner)
