"""Citus: a tenant's primary-key lookup and latest-50 page on a coordinator and two
workers, through rlskit's runtime (sealed context, SET LOCAL propagated) against the same
query hand-written with ``WHERE tenant_id = $1`` by the tables' owner, one transaction
each, interleaved. Two runtime forms: the query as the application would write it without
rlskit's filter (Citus fans it out to every shard; the policy filters on the workers), and
the same query naming the tenant (Citus routes it to one shard). Task counts from EXPLAIN.
"""

from __future__ import annotations

import statistics
import uuid
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from rlskit import Claim, Model
from rlskit.context import RequestContext, for_role
from rlskit.keystore import rotate
from rlskit.psycopg import transaction
from rlskit.server import private_workdir
from rlskit.testing.citus import citus_cluster, citus_unavailable, install_model

from .timing import interleaved

TABLES = """
CREATE TABLE tenant (id uuid PRIMARY KEY, n int NOT NULL);
CREATE TABLE item (tenant_id uuid NOT NULL REFERENCES tenant (id), id bigint NOT NULL,
                   created_at timestamptz NOT NULL, amount int NOT NULL,
                   PRIMARY KEY (tenant_id, id));
CREATE INDEX item_tenant_created ON item (tenant_id, created_at);
"""
QUERIES = {  # name -> (fanned out, routed: names the tenant, hand-written); %(t)s, %(id)s
    "primary_key": ("SELECT id, amount FROM item WHERE id = %(id)s",
                    "SELECT id, amount FROM item WHERE id = %(id)s AND tenant_id = %(t)s",
                    "SELECT id, amount FROM item WHERE id = %(id)s AND tenant_id = %(t)s"),
    "latest_50": ("SELECT id FROM item ORDER BY created_at DESC LIMIT 50",
                  "SELECT id FROM item WHERE tenant_id = %(t)s "
                  "ORDER BY created_at DESC LIMIT 50",
                  "SELECT id FROM item WHERE tenant_id = %(t)s "
                  "ORDER BY created_at DESC LIMIT 50"),
}


def _model() -> Model:
    model = Model(role_prefix="bench_")
    model.context(tenant_id=Claim("tenant_id", type="uuid"))
    member = model.role("member")
    model.authenticator("app")
    model.owner("owner")
    model.tenant_table("tenant", tenant_column="id", grants={member: "SELECT"})
    model.tenant_table("item", grants={member: "SELECT"})
    model.reference_table("tenant")
    model.distribute("item", by="tenant_id")
    return model


def _task_count(conn: psycopg.Connection, query: str, params: dict[str, Any]) -> int:
    plan = conn.execute("EXPLAIN (FORMAT JSON) " + query, params).fetchone()[0][0]["Plan"]
    while "Distributed Query" not in plan:
        plan = plan["Plans"][0]
    return int(plan["Distributed Query"]["Job"]["Task Count"])


def run(quick: bool = False) -> dict:
    reason = citus_unavailable()
    if reason:
        return {"benchmark": "citus", "rows": [{"skipped": reason}], "ratios": {},
                "checks": {}}
    tenants, per_tenant = (20, 200) if quick else (200, 2000)
    batch, rounds = (100, 3) if quick else (500, 7)
    root = private_workdir()
    with citus_cluster(Path(root)) as cluster:
        model = _model()
        with cluster.connect(autocommit=True) as conn:
            conn.execute(TABLES)
            install_model(conn, model)
            key = rotate(conn, model.helpers_schema)
            ids = [uuid.uuid4() for _ in range(tenants)]
            conn.execute("INSERT INTO tenant SELECT t, n FROM unnest(%s::uuid[]) "
                         "WITH ORDINALITY AS u(t, n)", [ids])
            conn.execute("INSERT INTO item SELECT t.id, g, now() - g * interval '1 minute', g "
                         "FROM tenant t, generate_series(1, %s) g", [per_tenant])
            conn.execute("ANALYZE")
        contexts: dict[int, tuple[RequestContext, dict[str, Any]]] = {
            i: (for_role(model, "member", tenant_id=t),
                {"t": t, "id": (i * 7919) % per_tenant + 1}) for i, t in enumerate(ids, 1)}
        rates: dict[str, list[float]] = {}
        tasks: dict[str, int] = {}
        app = psycopg.connect(cluster.url(model.role_name("app")))
        owner = psycopg.connect(cluster.url())
        owner.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(model.owner_name or "")))
        owner.commit()
        try:
            for name, (fanned, routed, hand) in QUERIES.items():
                def through(query: str) -> Any:
                    def call(i: int) -> None:
                        ctx, params = contexts[i]
                        with transaction(app, ctx, key):
                            app.execute(query, params).fetchall()
                    return call

                def by_hand(i: int, hand: str = hand) -> None:
                    _, params = contexts[i]
                    with owner.transaction():
                        owner.execute(hand, params).fetchall()

                variants = {f"{name}_hand_written": by_hand,
                            f"{name}_rlskit_fanned_out": through(fanned),
                            f"{name}_rlskit_routed": through(routed)}
                interleaved(variants, batch, rounds, rates, items=tenants)
                ctx, params = contexts[1]
                with transaction(app, ctx, key):
                    tasks[f"{name}_rlskit_fanned_out"] = _task_count(app, fanned, params)
                    tasks[f"{name}_rlskit_routed"] = _task_count(app, routed, params)
                with owner.transaction():
                    tasks[f"{name}_hand_written"] = _task_count(owner, hand, params)
        finally:
            app.close()
            owner.close()
    rows = [{"variant": name, "tasks": tasks[name], "min_tx_s": min(v),
             "median_tx_s": statistics.median(v), "max_tx_s": max(v)}
            for name, v in rates.items()]

    def ratio(variant: str, baseline: str) -> float:
        """Time ÷ the baseline's: the median of per-round ratios of their rates."""
        return statistics.median(b / v for v, b in zip(rates[variant], rates[baseline],
                                                         strict=True))

    ratios = {f"{kind}_over_hand_written_{name}": ratio(f"{name}_rlskit_{kind}",
                                                         f"{name}_hand_written")
              for name in QUERIES for kind in ("fanned_out", "routed")}
    checks = {f"{name}_routed_runs_on_one_shard": tasks[f"{name}_rlskit_routed"] == 1
              for name in QUERIES}
    return {"benchmark": "citus", "rows": rows, "ratios": ratios, "checks": checks,
            "size": {"tenants": tenants, "rows_per_tenant": per_tenant}}
