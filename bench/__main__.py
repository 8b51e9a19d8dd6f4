"""Run the benchmarks: ``python -m bench [--quick]``.

Prints a table per benchmark and writes ``bench/results/<name>.json`` and
``bench/results/summary.md``. ``--quick`` runs small sizes and exits 1 only on a gross
regression of a ratio or a check (never on a wall-clock threshold alone).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from datetime import datetime, timezone
from pathlib import Path

from rich.console import Console
from rich.table import Table

from . import autogenerate, citus, context, diff, generation, queries, review
from .plot import plot_queries

RESULTS = Path(__file__).parent / "results"
BENCHMARKS = {"queries": queries.run, "context": context.run, "generation": generation.run,
              "diff": diff.run, "autogenerate": autogenerate.run, "review": review.run,
              "citus": citus.run}
GROSS = {"uncached_over_cached_1000_tables": (1.5, None),
         "per_table_cost_largest_over_smallest": (None, 3.0),
         "diff_per_table_cost_largest_over_smallest": (None, 3.0),
         # review probes the relations a change touches: 30x fewer cells at 100 tables
         "whole_matrix_over_review_largest": (3.0, None),
         "alembic_utils_over_rlskit_largest": (10.0, None),
         "psycopg_rlskit_over_plain": (0.5, None),
         "sealed_over_unsealed": (0.5, None),
         "sealed_over_unsealed_primary_key": (None, 2.0),
         # the paged multi-tenant page reads a page per tenant: 2x a single tenant's at
         # full size, where the sorted one is 15x and more
         "multi_rlskit_membership_paged_over_single_tenant_page": (None, 5.0),
         # Citus: a routed query through the runtime, 1.5-1.6x the hand-written one
         "routed_over_hand_written_primary_key": (None, 4.0),
         "routed_over_hand_written_latest_50": (None, 4.0)} | {
             # 2x: a sub-millisecond statement on a shared VM is noisy; losing the InitPlan
             # or the index shows up in the plan checks and as 10x and more
             f"rlskit_over_baseline_{q}": (None, 2.0) for q in queries.QUERIES}


def machine() -> str:
    return f"{platform.platform()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def table_for(result: dict) -> Table:
    table = Table(title=f"{result['benchmark']}  ({machine()})")
    for col in result["rows"][0]:
        table.add_column(col)
    for row in result["rows"]:
        table.add_row(*(f"{v:.4f}" if isinstance(v, float) else str(v) for v in row.values()))
    return table


def markdown(results: list[dict]) -> str:
    lines = [f"# Benchmark results\n\nWritten {datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC} "
             "from each benchmark's latest full run.\n"]
    for result in results:
        cols = list(result["rows"][0])
        lines += [f"## {result['benchmark']}\n", f"Machine: {result.get('machine', '?')}  \n"
                  f"Run: {result.get('run', '?')}\n", "| " + " | ".join(cols) + " |",
                  "|" + "---|" * len(cols)]
        lines += ["| " + " | ".join(f"{v:.4f}" if isinstance(v, float) else str(v)
                                    for v in row.values()) + " |" for row in result["rows"]]
        lines += ["", "Ratios (same run): " + ", ".join(
            f"{k} = {v:.2f}" for k, v in result["ratios"].items()),
            "", "Checks: " + ", ".join(f"{k}: {'pass' if v else 'FAIL'}"
                                       for k, v in result["checks"].items()), ""]
        if result.get("targets"):
            lines += ["Targets: " + ", ".join(f"{k}: {'met' if v else 'missed'}"
                                              for k, v in result["targets"].items()), ""]
    return "\n".join(lines)


def gross_regressions(result: dict) -> list[str]:
    problems = []
    for name, value in result["ratios"].items():
        low, high = GROSS.get(name, (None, None))
        if (low is not None and value < low) or (high is not None and value > high):
            problems.append(f"{result['benchmark']}: ratio {name} = {value:.2f}")
    problems += [f"{result['benchmark']}: check {name} failed"
                 for name, passed in result["checks"].items() if not passed]
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, for CI")
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help=f"benchmarks to run (default: all of {', '.join(BENCHMARKS)})")
    args = parser.parse_args()
    unknown = set(args.names) - set(BENCHMARKS)
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    console = Console()
    results, problems = [], []
    for name in args.names or list(BENCHMARKS):
        result = BENCHMARKS[name](quick=args.quick)
        results.append(result)
        console.print(table_for(result))
        console.print("ratios:", {k: round(v, 2) for k, v in result["ratios"].items()})
        console.print("checks:", result["checks"])
        if result.get("targets"):
            console.print("targets:", result["targets"])
        problems += gross_regressions(result)
        if not args.quick:
            RESULTS.mkdir(exist_ok=True)
            (RESULTS / f"{name}.json").write_text(json.dumps(
                result | {"machine": machine(),
                          "run": f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC}"},
                indent=2) + "\n")
    if not args.quick:  # the summary covers every benchmark's latest full run
        latest = [json.loads((RESULTS / f"{name}.json").read_text()) for name in BENCHMARKS
                  if (RESULTS / f"{name}.json").exists()]
        (RESULTS / "summary.md").write_text(markdown(latest))
        for result in latest:
            if result["benchmark"] == "queries":
                plot_queries(result, RESULTS / "queries.png")
    for problem in problems:
        console.print(f"[bold red]gross regression:[/] {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
