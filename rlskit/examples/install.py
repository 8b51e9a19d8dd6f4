"""Install the SaaS example into a database: tables (owned by a non-superuser), the model's
SQL, and two tenants' worth of data. Used by the demo and the tests."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

import psycopg

from ..generate import generate_sql
from ..keystore import rotate
from ..model import Model
from ..rows import one
from ..scratch import create_tables
from ..seal import ContextKey, current_key
from .saas import metadata

__all__ = ["ExampleData", "install", "seed"]


@dataclass(frozen=True)
class TenantData:
    id: uuid.UUID
    admin: uuid.UUID
    member: uuid.UUID
    reader: uuid.UUID
    flows: tuple[uuid.UUID, ...]


@dataclass(frozen=True)
class ExampleData:
    """Ids of the seeded rows: tenants ``a`` and ``b`` plus a user in both."""

    a: TenantData
    b: TenantData
    both: uuid.UUID
    extra_tenants: tuple[uuid.UUID, ...] = field(default=())


def seed(conn: psycopg.Connection, flows_per_tenant: int = 3, extra_tenants: int = 0,
         ) -> ExampleData:
    """Two tenants with an admin, a member, a read-only user and flows each; one user
    belongs to both. `extra_tenants` adds more tenants with flows (for realistic plans)."""

    def tenant(name: str, prefix: str) -> TenantData:
        tid = one(conn.execute("INSERT INTO tenant (name) VALUES (%s) RETURNING id",
                               [name]))[0]
        users = []
        for role in ("tenant_admin", "member", "read_only"):
            uid = one(conn.execute(
                "INSERT INTO users (email, first_name, last_name, password_hash) "
                "VALUES (%s, %s, %s, 'secret') RETURNING id",
                [f"{prefix}-{role}@example.com", prefix.upper(), role]))[0]
            conn.execute("INSERT INTO membership (tenant_id, user_id, role) VALUES (%s, %s, %s)",
                         [tid, uid, role])
            users.append(uid)
        flows = [one(conn.execute(
                     "INSERT INTO flow (tenant_id, name) VALUES (%s, %s) RETURNING id",
                     [tid, f"{prefix}-flow-{i}"]))[0]
                 for i in range(flows_per_tenant)]
        admin, member, reader = users
        return TenantData(tid, admin, member, reader, tuple(flows))

    a, b = tenant("Acme", "a"), tenant("Globex", "b")
    both = one(conn.execute(
        "INSERT INTO users (email, first_name, last_name) "
        "VALUES ('both@example.com', 'Bo', 'Th') RETURNING id"))[0]
    for t in (a, b):
        conn.execute("INSERT INTO membership (tenant_id, user_id) VALUES (%s, %s)", [t.id, both])
    extra = []
    for i in range(extra_tenants):
        tid = one(conn.execute("INSERT INTO tenant (name) VALUES (%s) RETURNING id",
                           [f"extra-{i}"]))[0]
        conn.execute(
            "INSERT INTO flow (tenant_id, name, created_at) SELECT %s, 'f' || g, "
            "now() - g * interval '1 minute' FROM generate_series(1, %s) g",
            [tid, flows_per_tenant])
        extra.append(tid)
    conn.execute("ANALYZE")
    return ExampleData(a, b, both, tuple(extra))


def install(url: str, model: Model, owner: str, key: ContextKey | None = None,
            **seed_options: int) -> ExampleData:
    """Tables, the model's SQL for the server's version, the context key of a sealed
    model (`key`, default the process's), and seed data, in one transaction."""
    with psycopg.connect(url) as conn:
        create_tables(conn, owner, metadata.sorted_tables)
        conn.execute(generate_sql(model, pg_version=conn.info.server_version // 10000))
        if model.sealed:
            rotate(conn, model.helpers_schema, key or current_key())
        return seed(conn, **seed_options)
