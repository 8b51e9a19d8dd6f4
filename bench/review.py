"""`rlskit review` (the database against the model) when one policy of a large model changes.

Installs the generation benchmark's model (4 roles, 3 rules per table) for N tables on a
throwaway server, opens one table's UPDATE policy to the whole tenant in the model, and
times the review as the CLI runs it (diff, then the access matrix of the relations the
diff touches), three rounds, against verifying the whole matrix once (minutes at 1,000
tables). Checks that the review finds exactly the widened cells.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from pathlib import Path

import psycopg

from rlskit.config import Config
from rlskit.migrations.review import review
from rlskit.model import Model
from rlskit.testing import open_cluster
from rlskit.verify import verify_database

from .diff import _install
from .generation import build_model

_ROLES = ("app_authenticator", "runner", "tenant_admin", "member", "read_only")


def _widened(tables: int) -> Model:
    """The model with table_00000's `own_rows` UPDATE policy opened to the tenant."""
    model = build_model(tables)
    policy = next(p for p in model.tables[("public", "table_00000")].policies
                  if p.name == "own_rows")
    policy.using = dataclasses.replace(policy.using, sql="true")
    return model


def run(quick: bool = False) -> dict:
    sizes = (20, 100) if quick else (100, 1000)
    rounds = 1 if quick else 3
    rows, found = [], []
    with open_cluster() as cluster:
        for size in sizes:
            with cluster.database() as db:
                with db.connect() as conn:
                    _install(conn, size, f"review_bench_owner_{size}")
                    conn.commit()
                model = _widened(size)
                settings = Config(Path.cwd(), None, db.url, "migrations")  # no revisions
                times: dict[str, list[float]] = {"review": [], "whole matrix": []}
                for round_ in range(rounds):
                    start = time.perf_counter()
                    outcome = review(settings, model, db.url)
                    times["review"].append(time.perf_counter() - start)
                    found.append([str(c) for c in outcome.changes])
                    if round_ == 0:  # minutes at 1,000 tables: once
                        start = time.perf_counter()
                        with psycopg.connect(db.url) as conn:
                            cells = len(verify_database(conn, model).cells)
                        times["whole matrix"].append(time.perf_counter() - start)
                with db.connect() as conn:
                    conn.execute("DROP OWNED BY " + ", ".join(_ROLES[1:]))
                    conn.commit()
            for variant, samples in times.items():
                rows.append({"variant": variant, "tables": size, "cells": cells,
                             "min_s": min(samples), "median_s": statistics.median(samples),
                             "max_s": max(samples)})
        with psycopg.connect(cluster.admin_url, autocommit=True) as conn:
            for role in (*_ROLES, *(f"review_bench_owner_{size}" for size in sizes)):
                conn.execute(f"DROP ROLE IF EXISTS {role}")
    median = {(r["variant"], r["tables"]): r["median_s"] for r in rows}
    largest = sizes[-1]
    # the seeded rows belong to no caller: own rows were none
    expected = [f"{role}: UPDATE on public.table_00000: no rows → own tenant (widening)"
                for role in ("member", "tenant_admin")]
    return {
        "benchmark": "review",
        "rows": rows,
        "ratios": {"whole_matrix_over_review_largest": median[("whole matrix", largest)]
                   / median[("review", largest)]},
        "checks": {"review_finds_exactly_the_widened_cell": all(f == expected
                                                                 for f in found)},
    }
