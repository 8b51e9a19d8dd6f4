"""The README's figure: each variant's query time over the hand-written baseline, per query
(log scale), from ``bench/results/queries.json``."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402


def plot_queries(result: dict, path: Path) -> None:
    ratio = {(r["query"], r["variant"]): r["over_baseline"] for r in result["rows"]}
    first = result["rows"][0]["query"]  # the single-tenant queries share their variants
    variants = [v for q, v in ratio if q == first and v != "baseline"]
    queries = [q for q in dict.fromkeys(q for q, _ in ratio)
               if all((q, v) in ratio for v in variants)]
    width = 0.8 / len(variants)
    fig, ax = plt.subplots(figsize=(9, 4.5), dpi=110)
    for i, variant in enumerate(variants):
        xs = [q + (i - (len(variants) - 1) / 2) * width for q in range(len(queries))]
        ax.bar(xs, [ratio[(q, variant)] for q in queries], width, label=variant)
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.axhline(1.05, color="grey", linewidth=0.8, linestyle="--", label="target 1.05×")
    ax.set_yscale("log")
    ax.set_xticks(range(len(queries)), queries)
    ax.set_ylabel("time ÷ hand-written WHERE tenant_id = $1")
    size = result.get("size", {})
    ax.set_title(f"Row-level security overhead ({size.get('items', '?'):,} rows, "
                 f"{size.get('tenants', '?'):,} tenants; median of rounds)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
