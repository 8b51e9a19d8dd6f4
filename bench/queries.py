"""Query overhead: what row-level security costs per query, side by side with a
hand-written ``WHERE tenant_id = $1``.

Data (full size): 2,000,000 items over 1,000 tenants, 500,000 lines (a second tenant
table, joined to items) and a 50,000-row membership table. Variants, one database role
each, all on the same tables:

- ``baseline``: a BYPASSRLS role whose queries say ``WHERE tenant_id = $1`` by hand;
- ``rlskit``: the model's member role under rlskit's generated policies (a RESTRICTIVE
  ``tenant_id = (SELECT rlskit.tenant_id())`` plus permissive rules; the restrictive
  policy is scoped to this role so that it leaves the other variants alone), with a
  sealed context (the helper verifies the seal once per statement);
- ``rlskit_unsealed``: the same policies over unsealed helpers (``sealed=False``: the
  helper reads the setting and nothing else), so ``rlskit ÷ rlskit_unsealed`` is what the
  seal costs;
- ``naive``: ``tenant_id = current_setting('app.tenant_id')::uuid`` in a policy;
- ``naive_membership``: a correlated ``EXISTS (membership of the current user)``;
- ``rlskit_membership``: the same rule in rlskit's form (sealed), the user's tenants gathered once
  (``tenant_id = ANY (ARRAY(SELECT … (SELECT rlskit.user_id())))``) so the tenant index
  still applies.

Queries: a tenant-wide aggregate, a primary-key lookup, the latest 50 rows, a join of the
two tenant tables and a one-row UPDATE (rolled back). Variants take turns query by query
on their own connections, every one for the same tenant at the same moment. Checks are
plan shapes: rlskit's plans read the context once (an InitPlan) and use the indexes.
"""

from __future__ import annotations

import random
import statistics
import time

import psycopg
from psycopg import sql

from rlskit import Claim, Model, generate_sql
from rlskit.keystore import rotate
from rlskit.seal import ContextKey
from rlskit.testing import open_cluster

SCHEMA = """
CREATE TABLE tenant (id uuid PRIMARY KEY, n int UNIQUE NOT NULL);
INSERT INTO tenant SELECT gen_random_uuid(), g FROM generate_series(0, %(tenants)s - 1) g;
CREATE TABLE item (id bigint PRIMARY KEY, tenant_id uuid NOT NULL, created_at timestamptz
                   NOT NULL, amount int NOT NULL, note text NOT NULL);
INSERT INTO item SELECT g, t.id, now() - g * interval '1 second', g %% 100, md5(g::text)
FROM generate_series(1, %(items)s) g JOIN tenant t ON t.n = g %% %(tenants)s;
CREATE INDEX item_tenant_created ON item (tenant_id, created_at);
CREATE TABLE line (id bigint PRIMARY KEY, tenant_id uuid NOT NULL, item_id bigint NOT NULL,
                   qty int NOT NULL);
INSERT INTO line SELECT i.id / 4, i.tenant_id, i.id, i.id %% 7 FROM item i WHERE i.id %% 4 = 0;
CREATE INDEX line_tenant_item ON line (tenant_id, item_id);
CREATE TABLE membership (tenant_id uuid NOT NULL, user_id uuid NOT NULL,
                         PRIMARY KEY (user_id, tenant_id));
INSERT INTO membership SELECT t.id, gen_random_uuid() FROM tenant t,
       generate_series(1, %(members)s);
"""

VARIANT_POLICIES = """
CREATE ROLE {baseline} BYPASSRLS;
CREATE ROLE {naive}; CREATE ROLE {naive_membership}; CREATE ROLE {rlskit_membership};
CREATE ROLE {rlskit_unsealed};
GRANT SELECT, UPDATE ON item, line TO {baseline}, {naive}, {naive_membership},
      {rlskit_membership};
GRANT SELECT, UPDATE ON item, line TO {rlskit_unsealed};
GRANT USAGE ON SCHEMA rlskit_plain TO {rlskit_unsealed};
CREATE POLICY unsealed_isolation ON item AS RESTRICTIVE TO {rlskit_unsealed}
    USING (tenant_id = (SELECT rlskit_plain.tenant_id()))
    WITH CHECK (tenant_id = (SELECT rlskit_plain.tenant_id()));
CREATE POLICY unsealed_isolation ON line AS RESTRICTIVE TO {rlskit_unsealed}
    USING (tenant_id = (SELECT rlskit_plain.tenant_id()))
    WITH CHECK (tenant_id = (SELECT rlskit_plain.tenant_id()));
CREATE POLICY unsealed_rules ON item TO {rlskit_unsealed} USING (true) WITH CHECK (true);
CREATE POLICY unsealed_rules ON line TO {rlskit_unsealed} USING (true) WITH CHECK (true);
GRANT SELECT ON membership TO {naive_membership}, {rlskit_membership};
GRANT USAGE ON SCHEMA rlskit TO {rlskit_membership};
GRANT EXECUTE ON FUNCTION rlskit.sealed_setting TO {rlskit_membership};
CREATE POLICY naive ON item TO {naive}
    USING (tenant_id = current_setting('app.tenant_id', true)::uuid);
CREATE POLICY naive ON line TO {naive}
    USING (tenant_id = current_setting('app.tenant_id', true)::uuid);
CREATE POLICY naive_membership ON item TO {naive_membership}
    USING (EXISTS (SELECT 1 FROM membership m WHERE m.tenant_id = item.tenant_id
                   AND m.user_id = current_setting('app.user_id', true)::uuid));
CREATE POLICY naive_membership ON line TO {naive_membership}
    USING (EXISTS (SELECT 1 FROM membership m WHERE m.tenant_id = line.tenant_id
                   AND m.user_id = current_setting('app.user_id', true)::uuid));
CREATE POLICY rlskit_membership ON item TO {rlskit_membership}
    USING (tenant_id = ANY (ARRAY(SELECT m.tenant_id FROM membership m
                                  WHERE m.user_id = (SELECT rlskit.user_id()))));
CREATE POLICY rlskit_membership ON line TO {rlskit_membership}
    USING (tenant_id = ANY (ARRAY(SELECT m.tenant_id FROM membership m
                                  WHERE m.user_id = (SELECT rlskit.user_id()))));
"""

# query -> (with RLS, hand-written baseline); %(t)s is the tenant, %(id)s an item of it
QUERIES = {
    "aggregate": ("SELECT count(*), sum(amount) FROM item",
                  "SELECT count(*), sum(amount) FROM item WHERE tenant_id = %(t)s"),
    "primary_key": ("SELECT id, amount, note FROM item WHERE id = %(id)s",
                    "SELECT id, amount, note FROM item WHERE id = %(id)s AND tenant_id = %(t)s"),
    "latest_50": ("SELECT id, created_at FROM item ORDER BY created_at DESC LIMIT 50",
                  "SELECT id, created_at FROM item WHERE tenant_id = %(t)s "
                  "ORDER BY created_at DESC LIMIT 50"),
    "join": ("SELECT count(*), sum(l.qty) FROM item i JOIN line l ON l.item_id = i.id",
             "SELECT count(*), sum(l.qty) FROM item i JOIN line l ON l.item_id = i.id "
             "WHERE i.tenant_id = %(t)s AND l.tenant_id = %(t)s"),
    "update_one": ("UPDATE item SET amount = amount + 1 WHERE id = %(id)s",
                   "UPDATE item SET amount = amount + 1 WHERE id = %(id)s AND tenant_id = %(t)s"),
}
VARIANTS = ("baseline", "rlskit", "rlskit_unsealed", "naive", "naive_membership",
            "rlskit_membership")
SEALED = ("rlskit", "rlskit_membership")  # the variants that read rlskit's sealed helpers
KEY = ContextKey.generate("bench")


def _model(prefix: str, **options: str) -> Model:
    model = Model(role_prefix=prefix, **options)
    model.context(tenant_id=Claim("tenant_id", type="uuid"),
                  user_id=Claim("sub", type="uuid", required=False))
    return model


def _sealed_model(prefix: str) -> Model:
    model = _model(prefix)
    member = model.role("member")
    for table in ("item", "line"):
        model.tenant_table(table, grants={member: "SELECT, UPDATE"})
    return model


def _unsealed_helpers(prefix: str) -> Model:
    """Only helpers, unsealed, in a schema of their own (the variant's policies call them)."""
    model = _model(prefix + "plain_", helpers_schema="rlskit_plain")
    model.context(sealed=False)
    return model


def _prepare(conn: psycopg.Connection, size: dict[str, int], prefix: str) -> dict[str, str]:
    """Tables, data, rlskit's SQL and the other variants' roles and policies; returns the
    role of each variant."""
    conn.execute(SCHEMA % size)
    model = _sealed_model(prefix)
    version = conn.info.server_version // 10000
    conn.execute(generate_sql(model, pg_version=version))
    conn.execute(generate_sql(_unsealed_helpers(prefix), pg_version=version))
    rotate(conn, model.helpers_schema, KEY)
    roles = {v: prefix + v for v in VARIANTS} | {"rlskit": model.role_name("member")}
    for table in ("item", "line"):  # rlskit's isolation for rlskit's role only
        conn.execute(sql.SQL("ALTER POLICY tenant_isolation ON {} TO {}").format(
            sql.Identifier(table), sql.Identifier(roles["rlskit"])))
    conn.execute(sql.SQL(VARIANT_POLICIES).format(**{
        v: sql.Identifier(r) for v, r in roles.items() if v != "rlskit"}))
    conn.commit()
    return roles


def _members(conn: psycopg.Connection) -> list[tuple[str, str, int]]:
    """(tenant id, a member of it, its number) for every tenant."""
    return conn.execute("SELECT DISTINCT ON (t.n) t.id::text, m.user_id::text, t.n "
                        "FROM tenant t JOIN membership m ON m.tenant_id = t.id "
                        "ORDER BY t.n").fetchall()


def _context(conn: psycopg.Connection, role: str, tenant: str, user: str,
             sealed: bool = False) -> None:
    """The request context, sealed for the sealed variant, as the runtime sends it."""
    settings = (("app.tenant_id", tenant), ("app.user_id", user))
    seal = KEY.seal(role, settings) if sealed else ""
    conn.execute("SELECT set_config('role', %s, true), set_config('app.tenant_id', %s, true),"
                 " set_config('app.user_id', %s, true), set_config('rlskit.seal', %s, true)",
                 [role, tenant, user, seal])


def _plan_checks(conn: psycopg.Connection, role: str, tenant: str, user: str,
                 tenants: int) -> dict[str, bool]:
    """rlskit's plans: the context read once (InitPlan), no sequential scan of item or
    line."""
    checks = {}
    for name, (query, _) in QUERIES.items():
        with conn.transaction(force_rollback=True):
            _context(conn, role, tenant, user, sealed=True)
            plan = conn.execute("EXPLAIN (FORMAT JSON) " + query,
                                {"id": tenants + 1}).fetchone()[0][0]["Plan"]
        nodes, stack = [], [plan]
        while stack:
            node = stack.pop()
            nodes.append(node)
            stack.extend(node.get("Plans", ()))
        checks[f"{name}_initplan"] = any(
            str(n.get("Subplan Name", "")).startswith("InitPlan")
            or n.get("Parent Relationship") == "InitPlan" for n in nodes)
        checks[f"{name}_no_seq_scan"] = not any(
            n["Node Type"] == "Seq Scan" and n.get("Relation Name") in ("item", "line")
            for n in nodes)
    return checks


def run(quick: bool = False) -> dict:
    size = ({"tenants": 50, "items": 50_000, "members": 50} if quick
            else {"tenants": 1000, "items": 2_000_000, "members": 50})
    rounds, reps, budget = (5, 40, 2.0) if quick else (5, 60, 10.0)
    rng = random.Random(11)
    with open_cluster() as cluster, \
            cluster.database() as db:
        with db.connect() as conn:
            roles = _prepare(conn, size, db.role_prefix)
        with db.connect(autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE")
            members = _members(conn)
        conns = {v: db.connect() for v in VARIANTS}
        try:
            tenant, user, _ = members[0]
            checks = _plan_checks(conns["rlskit"], roles["rlskit"], tenant, user,
                                  size["tenants"])
            times = _measure(conns, roles, members, size, rounds, reps, budget, rng)
        finally:
            for c in conns.values():
                c.close()
    rows, ratios = [], {}
    for query in QUERIES:
        for variant in VARIANTS:
            medians = times[(query, variant)]
            per_round = [m / b for m, b in zip(medians, times[(query, "baseline")],
                                               strict=True)]
            ratio = statistics.median(per_round)
            rows.append({"query": query, "variant": variant,
                         "min_ms": 1000 * min(medians),
                         "median_ms": 1000 * statistics.median(medians),
                         "max_ms": 1000 * max(medians), "over_baseline": ratio})
            if variant != "baseline":
                ratios[f"{variant}_over_baseline_{query}"] = ratio
    for query in QUERIES:  # what the seal costs: sealed ÷ unsealed, round by round
        ratios[f"sealed_over_unsealed_{query}"] = statistics.median(
            s / u for s, u in zip(times[(query, "rlskit")], times[(query, "rlskit_unsealed")],
                                  strict=True))
    targets = {f"rlskit_within_1.05_{q}": ratios[f"rlskit_over_baseline_{q}"] <= 1.05
               for q in QUERIES}  # reported; only gross regressions fail a run
    targets["sealed_within_1.10_of_unsealed_primary_key"] = \
        ratios["sealed_over_unsealed_primary_key"] <= 1.10
    return {"benchmark": "queries", "size": size, "rows": rows, "ratios": ratios,
            "checks": checks, "targets": targets}


def _measure(conns: dict[str, psycopg.Connection], roles: dict[str, str],
             members: list[tuple[str, str, int]], size: dict[str, int], rounds: int,
             reps: int, budget: float, rng: random.Random
             ) -> dict[tuple[str, str], list[float]]:
    """Per query and variant, the median time of each round. Within a round the variants
    take turns execution by execution, each for the same tenant; a round stops early once
    it has spent `budget` seconds (slow naive variants), so all variants get the same
    number of executions."""
    out: dict[tuple[str, str], list[float]] = {}
    for query, (rls_sql, baseline_sql) in QUERIES.items():
        for r in range(rounds):
            samples: dict[str, list[float]] = {v: [] for v in VARIANTS}
            order = VARIANTS[r % len(VARIANTS):] + VARIANTS[:r % len(VARIANTS)]
            spent = 0.0
            for _ in range(reps):
                tenant, user, n = rng.choice(members)
                params = {"t": tenant, "id": n + size["tenants"] * rng.randint(
                    1, size["items"] // size["tenants"] - 1)}
                for variant in order:
                    conn = conns[variant]
                    _context(conn, roles[variant], tenant, user, sealed=variant in SEALED)
                    text = baseline_sql if variant == "baseline" else rls_sql
                    start = time.perf_counter()
                    cursor = conn.execute(text, params)
                    if cursor.description is not None:
                        cursor.fetchall()
                    elapsed = time.perf_counter() - start
                    samples[variant].append(elapsed)
                    spent += elapsed
                    conn.rollback()
                if spent > budget:
                    break
            for variant, values in samples.items():
                out.setdefault((query, variant), []).append(statistics.median(values))
    return out
