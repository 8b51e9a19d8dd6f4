"""The demo: install the SaaS example in a database and probe its isolation for real.

For every role and readable table, it counts the rows visible under tenant A's context,
how many of those belong to tenant B, and how many are visible with no context at all;
then it tries to write a tenant B row from tenant A's context. Isolation holds when no
B row is ever seen or written and no context sees nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from psycopg import errors, sql

from ..context import for_role
from ..model import Model
from ..scratch import drop_database
from ..seal import ContextKey, session_settings
from .install import ExampleData, install

__all__ = ["Probe", "run_demo"]

ROLES = ("read_only", "member", "tenant_admin", "runner")
TABLES = {  # table -> SQL giving a key per visible row
    "tenant": "SELECT id FROM tenant",
    "membership": "SELECT tenant_id FROM membership",
    "flow": "SELECT tenant_id FROM flow",
    "member_directory": "SELECT id FROM member_directory",
}


def _foreign(table: str, data: ExampleData) -> set:
    """Keys that belong to tenant B alone: seeing one from tenant A's context is a leak."""
    if table == "member_directory":
        return {data.b.admin, data.b.member, data.b.reader}
    return {data.b.id}


@dataclass(frozen=True)
class Probe:
    role: str
    table: str
    visible: int | None  # None: the role has no SELECT privilege
    leaked: int
    no_context: int
    cross_tenant_write: str  # "refused" (by RLS), "denied" (no grant), "n/a" or "LEAK"

    @property
    def ok(self) -> bool:
        return self.leaked == 0 and self.no_context == 0 and self.cross_tenant_write != "LEAK"


def _begin(conn: psycopg.Connection, model: Model, role: str, tenant: object, user: object,
           key: ContextKey) -> None:
    """The request context as the runtime sends it: role, settings and seal."""
    ctx = for_role(model, role, **({} if tenant is None else {"tenant_id": tenant,
                                                               "user_id": user}))
    if tenant is None:  # no context at all: just the role
        conn.execute("SELECT set_config('role', %s, true)", [ctx.role])
        return
    settings = session_settings(ctx, key)
    conn.execute(sql.SQL("SELECT set_config('role', %s, true), {}").format(
        sql.SQL(", ").join([sql.SQL("set_config(%s, %s, true)")] * len(settings))),
        [ctx.role, *(v for pair in settings for v in pair)])


def _count(conn: psycopg.Connection, query: str, foreign: set) -> tuple[int, int] | None:
    """(rows visible, of which foreign), or None without the privilege to look."""
    try:
        with conn.transaction():
            rows = conn.execute(query).fetchall()
    except errors.InsufficientPrivilege:
        return None
    return len(rows), sum(1 for (key,) in rows if key in foreign)


def _write_probe(conn: psycopg.Connection, data: ExampleData) -> str:
    try:
        with conn.transaction():
            conn.execute("INSERT INTO flow (tenant_id, name) VALUES (%s, 'probe')", [data.b.id])
    except errors.InsufficientPrivilege as exc:
        return "refused" if "row-level security" in str(exc) else "denied"
    return "LEAK"


def probe(url: str, model: Model, data: ExampleData, key: ContextKey) -> list[Probe]:
    """Probe every role x table as the authenticator, rolling back all writes."""
    out = []
    auth = model.role_name("app_authenticator")
    for role in ROLES:
        for table, query in TABLES.items():
            with psycopg.connect(url, user=auth) as conn:
                _begin(conn, model, role, data.a.id, data.a.member, key)
                seen = _count(conn, query, _foreign(table, data))
                write = _write_probe(conn, data) if table == "flow" else "n/a"
                conn.rollback()
                _begin(conn, model, role, None, None, key)
                blind = _count(conn, query, set())
                conn.rollback()
            out.append(Probe(role, table, None if seen is None else seen[0],
                             0 if seen is None else seen[1],
                             0 if blind is None else blind[0], write))
    return out


def run_demo(admin_url: str, database: str, model: Model) -> list[Probe]:
    """(Re)create `database`, install the example with `model`, and probe it.

    The model must have a role prefix: the demo's roles are dropped and recreated by it.
    """
    drop_database(admin_url, database, model.role_prefix)
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
    url = psycopg.conninfo.make_conninfo(admin_url, dbname=database)
    key = ContextKey.generate("demo")  # the application's key, for this run only
    data = install(url, model, model.role_prefix + "owner", key)
    return probe(url, model, data, key)
