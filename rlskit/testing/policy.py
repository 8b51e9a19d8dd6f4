"""Policy tests in a few lines: a database with the model installed, acting as a user, and
assertions whose failure messages say who looked at what.

    def test_members_see_only_their_tenant(rlskit_policy_db):
        acme = rlskit_policy_db.insert("tenant", name="Acme")["id"]
        globex = rlskit_policy_db.insert("tenant", name="Globex")["id"]
        rlskit_policy_db.insert("flow", tenant_id=acme, name="onboarding")
        with rlskit_policy_db.as_user(role="member", tenant=acme) as conn:
            assert_visible(conn, "flow", tenant_id=acme)
            assert_invisible(conn, "flow", tenant_id=globex)
            assert_denied(conn, "DELETE FROM flow")

    test_access_matrix = access_matrix_tests("myapp.rls:model")  # one case per cell
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from weakref import WeakKeyDictionary

import psycopg
import pytest
from psycopg import errors, sql
from psycopg.rows import dict_row

from ..config import load_config, load_model
from ..context import for_role
from ..model import ROW_COMMANDS, Model
from ..psycopg import apply
from ..rows import one
from ..verify import Matrix, verify_scratch
from ..verify.promise import actors
from .databases import Cluster, ScratchDatabase

__all__ = ["PolicyDatabase", "access_matrix_tests", "assert_denied", "assert_invisible",
           "assert_visible"]


@dataclass(frozen=True)
class PolicyDatabase:
    """A test database holding the model's tables and SQL; `model` is the model with the
    test's role prefix (its roles are dropped with the database)."""

    db: ScratchDatabase
    model: Model
    owner: str

    def connect(self) -> psycopg.Connection:
        """A superuser connection (setting up data: RLS does not apply)."""
        return self.db.connect()

    def insert(self, table: str, **values: Any) -> dict[str, Any]:
        """Insert one row into `table` (``name`` or ``schema.name``) as the superuser (RLS
        does not apply) and commit; returns the row as stored, defaults (``id``) included."""
        columns = sql.SQL(", ").join(sql.Identifier(c) for c in values)
        statement = sql.SQL("INSERT INTO {} ({}) VALUES ({}) RETURNING *").format(
            sql.Identifier(*table.split(".")), columns,
            sql.SQL(", ").join(sql.Placeholder() * len(values)))
        if not values:
            statement = sql.SQL("INSERT INTO {} DEFAULT VALUES RETURNING *").format(
                sql.Identifier(*table.split(".")))
        with self.connect() as conn:
            cursor = conn.cursor(row_factory=dict_row)
            row = cursor.execute(statement, list(values.values())).fetchone()
            conn.commit()
        assert row is not None
        return row

    @contextmanager
    def as_user(self, *, role: str, tenant: Any = None, user: Any = None, commit: bool = False,
                **context: Any) -> Iterator[psycopg.Connection]:
        """A transaction as the model's authenticator switched to `role`, with `tenant` and
        `user` as ``tenant_id`` / ``user_id`` and any other context values; rolled back
        at the end unless ``commit=True``."""
        values = {k: v for k, v in (("tenant_id", tenant), ("user_id", user)) if v is not None}
        ctx = for_role(self.model, role, **values, **context)
        login = next(iter(self.model.authenticators), None)
        user_name = self.model.role_name(login) if login else None
        with self.db.connect(user=user_name) as conn:
            apply(conn, ctx)
            _contexts[conn] = ", ".join(f"{name} = {value}" for name, value in ctx.settings
                                        if value) or "no context"
            yield conn
            if commit:
                conn.commit()
            else:
                conn.rollback()


_contexts: WeakKeyDictionary[psycopg.Connection, str] = WeakKeyDictionary()


def _who(conn: psycopg.Connection) -> str:
    """``as <role> with app.tenant_id = …`` (the request context `as_user` applied)."""
    with conn.transaction():
        role = one(conn.execute("SELECT current_user"))[0]
    return f"as {role} with {_contexts.get(conn, 'no known context')}"


def _matching(conn: psycopg.Connection, table: str, match: dict[str, Any]) -> int:
    where = sql.SQL(" AND ").join(sql.SQL("{} = %s").format(sql.Identifier(c))
                                  for c in match) if match else sql.SQL("true")
    query = sql.SQL("SELECT count(*) FROM {} WHERE {}").format(
        sql.Identifier(*table.split(".")), where)
    with conn.transaction():
        return one(conn.execute(query, list(match.values())))[0]


def _describe(table: str, match: dict[str, Any]) -> str:
    cond = " and ".join(f"{c} = {v!r}" for c, v in match.items())
    return f"rows of {table}" + (f" with {cond}" if cond else "")


def assert_visible(conn: psycopg.Connection, table: str, *, count: int | None = None,
                   **match: Any) -> None:
    """At least one (or exactly `count`) row of `table` matching the column values is
    visible on `conn`."""
    seen = _matching(conn, table, match)
    if (count is None and seen == 0) or (count is not None and seen != count):
        wanted = "some" if count is None else str(count)
        raise AssertionError(f"expected {wanted} {_describe(table, match)} to be visible "
                             f"{_who(conn)}, but {seen} are")


def assert_invisible(conn: psycopg.Connection, table: str, **match: Any) -> None:
    """No row of `table` matching the column values is visible on `conn`."""
    seen = _matching(conn, table, match)
    if seen:
        raise AssertionError(f"expected no {_describe(table, match)} to be visible "
                             f"{_who(conn)}, but {seen} are")


def assert_denied(conn: psycopg.Connection, statement: str | sql.SQL | sql.Composed,
                  params: Any = None) -> None:
    """`statement` fails for lack of a privilege or on a row-level security check (it is
    run in a savepoint, so the transaction goes on)."""
    try:
        with conn.transaction():
            cursor = conn.execute(statement, params)
    except errors.InsufficientPrivilege:
        return
    raise AssertionError(f"expected {statement!r} to be denied {_who(conn)}, but it "
                         f"succeeded ({cursor.rowcount} row(s))")


_matrices: dict[tuple[int, str], Matrix] = {}


def _cells(model: Model) -> list[tuple[str, str, str]]:
    relations: list[tuple[str, tuple[str, ...]]] = [
        (t.qualified, ROW_COMMANDS) for t in model.tables.values()]
    relations += [(f"{v.schema}.{v.name}", ("SELECT",)) for v in model.views.values()]
    return [(a.label, relation, command) for relation, commands in relations
            for command in commands for a in actors(model, "owner")]


def access_matrix_tests(model: Model | str) -> Callable[..., None]:
    """A test function with one case per cell of the model's access matrix (role ×
    relation × command) plus one for the side channels; the matrix is verified once, on a
    scratch database of the test server, and each case asserts its cell was proven."""
    if isinstance(model, str):
        config = load_config(model=model)
        model = load_model(config.model, config.root)
    cases = [*_cells(model), ("side channels", "", "")]

    @pytest.mark.parametrize("cell", cases, ids=[" ".join(filter(None, c)) for c in cases])
    def test_access_matrix(cell: tuple[str, str, str], rlskit_cluster: Cluster) -> None:
        key = (id(model), rlskit_cluster.admin_url)
        if key not in _matrices:
            _matrices[key] = verify_scratch(rlskit_cluster.admin_url, model)
        matrix = _matrices[key]
        if cell[0] == "side channels":
            leaks = [s for s in matrix.side_channels if not s.ok]
            assert not leaks, f"side channels reveal another tenant's values: {leaks}"
            return
        found = next(c for c in matrix.cells if (c.actor, c.relation, c.command) == cell)
        wrong = "; ".join(f"{o.context}: expected {o.expected}, got {o.actual}"
                          for o in found.observations if not o.ok)
        assert found.proven, f"{' '.join(cell)} promises '{found.promise}' but {wrong}"

    return test_access_matrix
