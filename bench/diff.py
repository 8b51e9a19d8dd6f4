"""`rlskit diff` against a live database that holds the model (no drift expected).

Builds the generation benchmark's model (4 roles, 3 rules per table) for N tables on a
throwaway server, applies its SQL, then times `diff_database` (catalog read, server-side
normalisation, comparison). Reports min/median/max and the cost per table across sizes.
"""

from __future__ import annotations

import statistics
import time

import psycopg

from rlskit import generate_sql
from rlskit.diff import diff_database
from rlskit.testing import open_cluster

from .generation import build_model


def _install(conn: psycopg.Connection, tables: int, owner: str | None = None) -> None:
    """N tables (owned by `owner`, a NOLOGIN role made here, else the current user) and
    the model's SQL."""
    if owner:
        conn.execute(f"CREATE ROLE {owner} NOLOGIN")
        conn.execute(f"GRANT CREATE ON SCHEMA public TO {owner}")
        conn.execute(f"SET ROLE {owner}")
    for i in range(tables):
        conn.execute(f"CREATE TABLE table_{i:05d} (id bigint PRIMARY KEY, tenant_id uuid, "
                     "owner_id uuid, status text)")
    conn.execute("RESET ROLE")
    conn.execute(generate_sql(build_model(tables), pg_version=conn.info.server_version // 10000))


def run(quick: bool = False) -> dict:
    sizes = (50, 200) if quick else (100, 1000)
    rounds = 2 if quick else 3
    rows, policies = [], {}
    with open_cluster() as cluster:
        for size in sizes:
            with cluster.database() as db, db.connect() as conn:
                _install(conn, size)
                conn.commit()
                policies[size] = conn.execute("SELECT count(*) FROM pg_policy").fetchone()[0]
                model = build_model(size)
                times = []
                for _ in range(rounds):
                    start = time.perf_counter()
                    changes = diff_database(conn, model)
                    times.append(time.perf_counter() - start)
                    assert changes == [], f"false drift: {changes[:3]}"
                conn.execute("DROP OWNED BY read_only, member, tenant_admin, runner")
                conn.commit()
            rows.append({"tables": size, "policies": policies[size], "min_s": min(times),
                         "median_s": statistics.median(times), "max_s": max(times)})
        with psycopg.connect(cluster.admin_url, autocommit=True) as conn:
            for role in ("app_authenticator", "runner", "tenant_admin", "member", "read_only"):
                conn.execute(f"DROP ROLE IF EXISTS {role}")
    per_table = [r["median_s"] / r["tables"] for r in rows]
    return {
        "benchmark": "diff",
        "rows": rows,
        "ratios": {"diff_per_table_cost_largest_over_smallest": per_table[-1] / per_table[0]},
        "checks": {"no_false_drift": True},
    }
