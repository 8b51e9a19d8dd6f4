"""Model build + SQL generation time for growing models (4 roles, 3 rules per table).

Variants run interleaved, round by round, so machine noise hits them alike. Reports
min/median/max per size, the time per table (flat when cost is linear), and the speed-up
of the shape-cached renderer over prettifying every statement directly.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from unittest import mock

from rlskit import Claim, Model, generate_sql
from rlskit import render as render_module


def build_model(tables: int) -> Model:
    model = Model()
    model.context(tenant_id=Claim("tenant_id", type="uuid"), user_id=Claim("sub", type="uuid"))
    read_only = model.role("read_only")
    member = model.role("member", inherits=read_only)
    admin = model.role("tenant_admin", inherits=member)
    runner = model.role("runner")
    model.authenticator("app_authenticator")
    for i in range(tables):
        table = model.tenant_table(f"table_{i:05d}", grants={
            read_only: "SELECT", member: "SELECT, INSERT, UPDATE", admin: "ALL",
            runner: "SELECT, UPDATE"})
        table.policy("own_rows", command="UPDATE", to=member,
                     using="owner_id = rlskit.user_id()")
        table.policy("admin_delete", command="DELETE", to=admin, using="true")
        table.policy("runner_reads", command="SELECT", to=runner,
                     using="status <> 'archived'")
    return model


def build_and_generate(tables: int) -> str:
    return generate_sql(build_model(tables))


def _uncached(tables: int) -> str:
    with mock.patch.object(render_module, "render", render_module.render_uncached), \
            mock.patch("rlskit.generate.render", render_module.render_uncached), \
            mock.patch("rlskit.ddl.render", render_module.render_uncached):
        return build_and_generate(tables)


def _time(func: Callable[[int], str], tables: int) -> float:
    render_module._shapes.clear()  # every measurement starts cold
    start = time.perf_counter()
    func(tables)
    return time.perf_counter() - start


def run(quick: bool = False) -> dict:
    sizes = (100, 1000) if quick else (100, 1000, 5000)
    rounds = 3 if quick else 5
    samples: dict[tuple[str, int], list[float]] = {}
    for _ in range(rounds):
        for size in sizes:
            samples.setdefault(("cached", size), []).append(_time(build_and_generate, size))
        samples.setdefault(("uncached", 1000), []).append(_time(_uncached, 1000))
    rows = []
    for (variant, size), times in samples.items():
        rows.append({
            "variant": variant, "tables": size, "min_s": min(times),
            "median_s": statistics.median(times), "max_s": max(times),
            "median_ms_per_table": statistics.median(times) / size * 1000,
        })
    median = {(r["variant"], r["tables"]): r["median_s"] for r in rows}
    per_table = [median[("cached", s)] / s for s in sizes]
    return {
        "benchmark": "generation",
        "rows": rows,
        "ratios": {
            "uncached_over_cached_1000_tables": median[("uncached", 1000)]
            / median[("cached", 1000)],
            "per_table_cost_largest_over_smallest": per_table[-1] / per_table[0],
        },
        "checks": {},  # the times are in the rows; a wall-clock threshold is not a check
    }
