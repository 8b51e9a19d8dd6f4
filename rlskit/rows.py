"""Reading the one row a query always returns (a function call, a count, an INSERT …
RETURNING): psycopg types `fetchone()` as maybe None; and rows as the server's text."""

from __future__ import annotations

from typing import Any

import psycopg

__all__ = ["as_text", "one"]


def one(cursor: psycopg.Cursor[Any]) -> Any:
    """The row `cursor` returned; an error if there is none."""
    row = cursor.fetchone()
    if row is None:
        raise psycopg.DataError("the query returned no row")
    return row


def as_text(cursor: psycopg.Cursor[Any]) -> list[tuple[str | None, ...]]:
    """The rows `cursor` returned, each value as the server printed it (what a ``::text``
    cast gives, without one: Citus refuses the casts that are not immutable, such as a
    timestamp's, in a RETURNING clause)."""
    result = cursor.pgresult
    if result is None:
        return []
    encoding = cursor.connection.info.encoding
    return [tuple(None if (value := result.get_value(row, column)) is None
                  else bytes(value).decode(encoding) for column in range(result.nfields))
            for row in range(result.ntuples)]
