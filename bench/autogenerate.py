"""Alembic autogenerate against a database that already holds the model: rlskit's plugin
versus alembic_utils' ``PGPolicy`` entities for the same policies, in the same run.

Both runs must find nothing to do (a false diff would make the timing meaningless).
rlskit compares everything it manages (roles, grants, RLS, policies, views, helpers);
alembic_utils only the policies. alembic_utils' time grows with the square of the number of
policies (each entity is simulated against all of them): at 1,000 tables (3,000 policies) it
would take about an hour, so the full run compares the two up to 200 tables and times rlskit
alone at 1,000; ``--quick`` keeps it to seconds.
"""

from __future__ import annotations

import statistics
import time

import psycopg
from alembic.autogenerate import produce_migrations
from alembic.runtime.migration import MigrationContext
from alembic_utils.pg_policy import PGPolicy
from alembic_utils.replaceable_entity import register_entities
from sqlalchemy import MetaData, create_engine, pool

import rlskit.migrations  # noqa: F401 - registers the rlskit plugin
from rlskit import Claim, Model, generate_sql
from rlskit import objects as o
from rlskit.target import target_objects
from rlskit.testing import open_cluster
from rlskit.urls import sqlalchemy_url

ROLES = ("member", "app_authenticator")


def build_model(tables: int) -> Model:
    """Three policies a table: tenant isolation plus a member's SELECT and UPDATE rules."""
    model = Model()
    model.context(tenant_id=Claim("tenant_id", type="uuid"))
    member = model.role("member")
    model.authenticator("app_authenticator")
    for i in range(tables):
        model.tenant_table(f"table_{i:05d}", grants={member: "SELECT, UPDATE"})
    return model


def _install(conn: psycopg.Connection, tables: int) -> None:
    for i in range(tables):
        conn.execute(f"CREATE TABLE table_{i:05d} (id bigint PRIMARY KEY, tenant_id uuid)")
    conn.execute(generate_sql(build_model(tables), pg_version=conn.info.server_version // 10000))


def _policy_entities(model, pg_version: int) -> list[PGPolicy]:
    entities = []
    for p in target_objects(model, pg_version):
        if not isinstance(p, o.DbPolicy):
            continue
        definition = (f"AS {'PERMISSIVE' if p.permissive else 'RESTRICTIVE'} FOR {p.command} "
                      f"TO {', '.join(p.roles) or 'public'}")
        if p.using is not None:
            definition += f" USING ({p.using})"
        if p.with_check is not None:
            definition += f" WITH CHECK ({p.with_check})"
        entities.append(PGPolicy(schema=p.schema, signature=p.name,
                                 on_entity=f"{p.schema}.{p.table}", definition=definition))
    return entities


def _autogenerate(url: str, plugins: list[str], opts: dict) -> tuple[float, int]:
    engine = create_engine(sqlalchemy_url(url), poolclass=pool.NullPool)
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={
            "target_metadata": MetaData(), "autogenerate_plugins": plugins, **opts})
        start = time.perf_counter()
        ops = produce_migrations(context, MetaData()).upgrade_ops.ops
        return time.perf_counter() - start, len(ops)


def run(quick: bool = False) -> dict:
    sizes = (20, 50) if quick else (100, 200, 1000)
    rounds = 2 if quick else 3
    compared_up_to = 50 if quick else 200  # alembic_utils beyond this takes too long
    rows = []
    checks = {}
    with open_cluster() as cluster:
        for size in sizes:
            with cluster.database() as db:
                with db.connect() as conn:
                    _install(conn, size)
                    conn.commit()
                    policies = conn.execute("SELECT count(*) FROM pg_policy").fetchone()[0]
                model = build_model(size)
                ours = [_autogenerate(db.url, ["rlskit"], {"rlskit_model": model})
                        for _ in range(rounds)]
                checks[f"rlskit_no_false_diff_{size}"] = all(n == 0 for _, n in ours)
                median = statistics.median(t for t, _ in ours)
                row = {"tables": size, "policies": policies, "rlskit_median_s": median,
                       "alembic_utils_s": "not run", "alembic_utils_ops": "", "speedup": ""}
                if size <= compared_up_to:
                    register_entities(_policy_entities(model, db.version),
                                      entity_types=[PGPolicy])
                    theirs = _autogenerate(db.url, ["alembic.autogenerate.schemas"],
                                           {"include_schemas": False})
                    register_entities([], entity_types=[PGPolicy])
                    row |= {"alembic_utils_s": theirs[0], "alembic_utils_ops": theirs[1],
                            "speedup": theirs[0] / median}
                rows.append(row)
                with db.connect() as conn:
                    conn.execute("DROP OWNED BY member")
                    conn.commit()
        with psycopg.connect(cluster.admin_url, autocommit=True) as conn:
            for role in ROLES[::-1]:
                conn.execute(f"DROP ROLE IF EXISTS {role}")
    return {
        "benchmark": "autogenerate",
        "rows": rows,
        "ratios": {"alembic_utils_over_rlskit_largest": next(
            r["speedup"] for r in reversed(rows) if r["speedup"] != "")},
        "checks": checks,
    }
