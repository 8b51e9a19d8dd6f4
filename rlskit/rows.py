"""Reading the one row a query always returns (a function call, a count, an INSERT …
RETURNING): psycopg types `fetchone()` as maybe None."""

from __future__ import annotations

from typing import Any

import psycopg

__all__ = ["one"]


def one(cursor: psycopg.Cursor[Any]) -> Any:
    """The row `cursor` returned; an error if there is none."""
    row = cursor.fetchone()
    if row is None:
        raise psycopg.DataError("the query returned no row")
    return row
