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
  still applies;
- the peers, reading PostgREST's ``request.jwt.claims`` JSON through Supabase's own
  ``auth.jwt()`` and ``auth.uid()``: ``postgrest_wrapped`` (``tenant_id = (SELECT
  (auth.jwt() ->> 'tenant_id')::uuid)``, the form Supabase's performance guide recommends),
  ``postgrest_unwrapped`` (the same without the ``SELECT``) and ``supabase_membership``
  (``tenant_id IN (SELECT … WHERE user_id = (SELECT auth.uid()))``, Supabase's documented
  membership policy).

Queries: a tenant-wide aggregate, a primary-key lookup, the latest 50 rows, a join of the
two tenant tables and a one-row UPDATE (rolled back). Variants take turns query by query
on their own connections, every one for the same tenant at the same moment.

Multi-tenant pages: the latest 50 rows of a user in three tenants, by each membership
policy sorting all the user's rows, by `rlskit.paging` (one ordered scan per tenant under
rlskit's policy), and hand-written (``= ANY ($1)``, a LATERAL over the tenants, a UNION ALL
of per-tenant pages), all over the single-tenant page hand-written for one of them.

Checks are plan shapes: rlskit's plans read the context once (an InitPlan) and use the
indexes; `rlskit explain` hints at the sorted multi-tenant page and not at the paged one.
"""

from __future__ import annotations

import json
import random
import statistics
import time
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg import sql

from rlskit import Claim, Model, generate_sql
from rlskit.explain import plan_hints
from rlskit.keystore import rotate
from rlskit.paging import across_tenants_sql
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
CREATE TABLE multi_user (n int PRIMARY KEY, user_id uuid NOT NULL);
INSERT INTO multi_user SELECT t.n, gen_random_uuid() FROM tenant t;
INSERT INTO membership SELECT t.id, u.user_id FROM multi_user u
       JOIN tenant t ON t.n IN (u.n, (u.n + 1) %% %(tenants)s, (u.n + 2) %% %(tenants)s);
CREATE SCHEMA auth;
CREATE FUNCTION auth.jwt() RETURNS jsonb LANGUAGE sql STABLE AS $$
  SELECT coalesce(nullif(current_setting('request.jwt.claim', true), ''),
                  nullif(current_setting('request.jwt.claims', true), ''))::jsonb $$;
CREATE FUNCTION auth.uid() RETURNS uuid LANGUAGE sql STABLE AS $$
  SELECT coalesce(nullif(current_setting('request.jwt.claim.sub', true), ''),
                  (nullif(current_setting('request.jwt.claims', true), '')::jsonb
                   ->> 'sub'))::uuid $$;
"""

VARIANT_POLICIES = """
CREATE ROLE {baseline} BYPASSRLS;
CREATE ROLE {naive}; CREATE ROLE {naive_membership}; CREATE ROLE {rlskit_membership};
CREATE ROLE {rlskit_unsealed};
CREATE ROLE {postgrest_wrapped}; CREATE ROLE {postgrest_unwrapped};
CREATE ROLE {supabase_membership};
GRANT SELECT, UPDATE ON item, line TO {baseline}, {naive}, {naive_membership},
      {rlskit_membership}, {postgrest_wrapped}, {postgrest_unwrapped}, {supabase_membership};
GRANT USAGE ON SCHEMA auth TO {postgrest_wrapped}, {postgrest_unwrapped},
      {supabase_membership};
GRANT SELECT ON membership TO {supabase_membership};
CREATE POLICY postgrest_wrapped ON item TO {postgrest_wrapped}
    USING (tenant_id = (SELECT (auth.jwt() ->> 'tenant_id')::uuid));
CREATE POLICY postgrest_wrapped ON line TO {postgrest_wrapped}
    USING (tenant_id = (SELECT (auth.jwt() ->> 'tenant_id')::uuid));
CREATE POLICY postgrest_unwrapped ON item TO {postgrest_unwrapped}
    USING (tenant_id = (auth.jwt() ->> 'tenant_id')::uuid);
CREATE POLICY postgrest_unwrapped ON line TO {postgrest_unwrapped}
    USING (tenant_id = (auth.jwt() ->> 'tenant_id')::uuid);
CREATE POLICY supabase_membership ON item TO {supabase_membership}
    USING (tenant_id IN (SELECT m.tenant_id FROM membership m
                         WHERE m.user_id = (SELECT auth.uid())));
CREATE POLICY supabase_membership ON line TO {supabase_membership}
    USING (tenant_id IN (SELECT m.tenant_id FROM membership m
                         WHERE m.user_id = (SELECT auth.uid())));
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
            "rlskit_membership", "postgrest_wrapped", "postgrest_unwrapped",
            "supabase_membership")
SEALED = ("rlskit", "rlskit_membership")
Query = str | sql.Composable  # the variants that read rlskit's sealed helpers
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
    """(tenant id, a member of it and of no other tenant, its number) for every tenant."""
    return conn.execute("SELECT DISTINCT ON (t.n) t.id::text, m.user_id::text, t.n "
                        "FROM tenant t JOIN membership m ON m.tenant_id = t.id "
                        "WHERE m.user_id NOT IN (SELECT user_id FROM multi_user) "
                        "ORDER BY t.n").fetchall()


def _multi_members(conn: psycopg.Connection) -> list[tuple[str, str, list[str]]]:
    """(one of its tenants, a user of three tenants, the three) for every such user."""
    return [(tenants[0], user, tenants) for user, tenants in conn.execute(
        "SELECT u.user_id::text, array_agg(m.tenant_id::text ORDER BY m.tenant_id) "
        "FROM multi_user u JOIN membership m ON m.user_id = u.user_id "
        "GROUP BY u.user_id ORDER BY u.user_id").fetchall()]


def _context(conn: psycopg.Connection, role: str, tenant: str, user: str,
             sealed: bool = False) -> None:
    """The request context as each runtime sends it: rlskit's settings (sealed for the
    sealed variants) and PostgREST's ``request.jwt.claims``."""
    settings = (("app.tenant_id", tenant), ("app.user_id", user))
    seal = KEY.seal(role, settings) if sealed else ""
    claims = json.dumps({"tenant_id": tenant, "sub": user, "role": "authenticated"})
    conn.execute("SELECT set_config('role', %s, true), set_config('app.tenant_id', %s, true),"
                 " set_config('app.user_id', %s, true), set_config('rlskit.seal', %s, true),"
                 " set_config('request.jwt.claims', %s, true)",
                 [role, tenant, user, seal, claims])


# the multi-tenant page: label -> (variant whose role runs it, SQL); %(t)s is one of the
# user's tenants, %(ts)s all three, %(t1)s… each
PAGE = "SELECT id, created_at FROM item ORDER BY created_at DESC LIMIT 50"
MULTI = {
    "single_tenant_page": ("baseline", "SELECT id, created_at FROM item WHERE tenant_id = "
                                       "%(t)s ORDER BY created_at DESC LIMIT 50"),
    "hand_any": ("baseline", "SELECT id, created_at FROM item WHERE tenant_id = ANY "
                             "(%(ts)s::uuid[]) ORDER BY created_at DESC LIMIT 50"),
    "hand_lateral": ("baseline", across_tenants_sql(
        "item", ["id", "created_at"], sql.SQL("SELECT unnest(%(ts)s::uuid[])"),
        order_by=["created_at DESC"], limit=50)),
    "hand_union_all": ("baseline", " UNION ALL ".join(
        f"(SELECT id, created_at FROM item WHERE tenant_id = %(t{i})s "
        "ORDER BY created_at DESC LIMIT 50)" for i in range(3))
        + " ORDER BY created_at DESC LIMIT 50"),
    "rlskit_membership_sorted": ("rlskit_membership", PAGE),
    "rlskit_membership_paged": ("rlskit_membership", across_tenants_sql(
        "item", ["id", "created_at"], "SELECT m.tenant_id FROM membership m "
        "WHERE m.user_id = (SELECT rlskit.user_id())", order_by=["created_at DESC"],
        limit=50)),
    "supabase_membership_sorted": ("supabase_membership", PAGE),
    "naive_membership_sorted": ("naive_membership", PAGE),
}


def _plan(conn: psycopg.Connection, role: str, tenant: str, user: str, query: Query,
          params: dict[str, Any]) -> dict[str, Any]:
    with conn.transaction(force_rollback=True):
        _context(conn, role, tenant, user, sealed=True)
        return conn.execute(sql.SQL("EXPLAIN (FORMAT JSON) ") + _sql(query), params
                            ).fetchone()[0][0]["Plan"]


def _sql(query: Query) -> sql.Composable:
    return sql.SQL(query) if isinstance(query, str) else query


def _plan_checks(conn: psycopg.Connection, role: str, tenant: str, user: str,
                 tenants: int) -> dict[str, bool]:
    """rlskit's plans: the context read once (InitPlan), no sequential scan of item or
    line."""
    checks = {}
    for name, (query, _) in QUERIES.items():
        plan = _plan(conn, role, tenant, user, query, {"id": tenants + 1})
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


def _multi_checks(conn: psycopg.Connection, role: str, tenant: str, user: str
                  ) -> dict[str, bool]:
    """`rlskit explain`'s hint: the sorted multi-tenant page gets it, the paged one not."""
    hints = {label: [h.id for h in plan_hints(_plan(conn, role, tenant, user, query, {}))]
             for label, (_, query) in MULTI.items() if label.startswith("rlskit_")}
    return {"multi_sorted_page_hinted":
            hints["rlskit_membership_sorted"] == ["sorts-many-tenants"],
            "multi_paged_page_not_hinted": hints["rlskit_membership_paged"] == []}


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
            multi = _multi_members(conn)
        conns = {v: db.connect() for v in VARIANTS}
        try:
            tenant, user, _ = members[0]
            checks = _plan_checks(conns["rlskit"], roles["rlskit"], tenant, user,
                                  size["tenants"])
            checks |= _multi_checks(conns["rlskit_membership"], roles["rlskit_membership"],
                                    *multi[0][:2])
            times = {}
            for query, (rls_sql, baseline_sql) in QUERIES.items():
                cases = {v: (v, baseline_sql if v == "baseline" else rls_sql)
                         for v in VARIANTS}
                for v, per_round in _measure(conns, roles, cases, _single(members, size, rng),
                                             rounds, reps, budget).items():
                    times[(query, v)] = per_round
            multi_times = _measure(conns, roles, MULTI, _multi(multi, rng), rounds, reps,
                                   budget)
        finally:
            for c in conns.values():
                c.close()
    rows, ratios = [], {}
    for query in QUERIES:
        for variant in VARIANTS:
            medians = times[(query, variant)]
            ratio = _ratio(medians, times[(query, "baseline")])
            rows.append({"query": query, "variant": variant,
                         "min_ms": 1000 * min(medians),
                         "median_ms": 1000 * statistics.median(medians),
                         "max_ms": 1000 * max(medians), "over_baseline": ratio})
            if variant != "baseline":
                ratios[f"{variant}_over_baseline_{query}"] = ratio
    for label, medians in multi_times.items():
        ratio = _ratio(medians, multi_times["single_tenant_page"])
        rows.append({"query": "latest_50_of_3_tenants", "variant": label,
                     "min_ms": 1000 * min(medians),
                     "median_ms": 1000 * statistics.median(medians),
                     "max_ms": 1000 * max(medians), "over_baseline": ratio})
        if label != "single_tenant_page":
            ratios[f"multi_{label}_over_single_tenant_page"] = ratio
    for query in QUERIES:  # what the seal costs: sealed ÷ unsealed, round by round
        ratios[f"sealed_over_unsealed_{query}"] = _ratio(times[(query, "rlskit")],
                                                         times[(query, "rlskit_unsealed")])
    targets = {f"rlskit_within_1.05_{q}": ratios[f"rlskit_over_baseline_{q}"] <= 1.05
               for q in QUERIES}  # reported; only gross regressions fail a run
    targets["sealed_within_1.10_of_unsealed_primary_key"] = \
        ratios["sealed_over_unsealed_primary_key"] <= 1.10
    return {"benchmark": "queries", "size": size, "rows": rows, "ratios": ratios,
            "checks": checks, "targets": targets}


def _ratio(times: list[float], baseline: list[float]) -> float:
    """The median over rounds of the ratio measured within each round."""
    return statistics.median(t / b for t, b in zip(times, baseline, strict=True))


Draw = Callable[[], tuple[str, str, dict[str, Any]]]


def _single(members: list[tuple[str, str, int]], size: dict[str, int],
            rng: random.Random) -> Draw:
    """A random tenant, one of its members and one of its items."""
    def draw() -> tuple[str, str, dict[str, Any]]:
        tenant, user, n = rng.choice(members)
        return tenant, user, {"t": tenant, "id": n + size["tenants"] * rng.randint(
            1, size["items"] // size["tenants"] - 1)}
    return draw


def _multi(multi: list[tuple[str, str, list[str]]], rng: random.Random) -> Draw:
    """A random user of three tenants, and its tenants as parameters."""
    def draw() -> tuple[str, str, dict[str, Any]]:
        tenant, user, tenants = rng.choice(multi)
        return tenant, user, {"t": tenant, "ts": tenants,
                              **{f"t{i}": t for i, t in enumerate(tenants)}}
    return draw


def _measure(conns: dict[str, psycopg.Connection], roles: dict[str, str],
             cases: dict[str, tuple[str, Query]], draw: Draw, rounds: int, reps: int,
             budget: float) -> dict[str, list[float]]:
    """Per case (a variant's role and its SQL), the median time of each round. Within a
    round the cases take turns execution by execution, each for the same caller; a round
    stops early once it has spent `budget` seconds (slow naive variants), so all cases
    get the same number of executions."""
    out: dict[str, list[float]] = {}
    labels = list(cases)
    for r in range(rounds):
        samples: dict[str, list[float]] = {label: [] for label in labels}
        order = labels[r % len(labels):] + labels[:r % len(labels)]
        spent = 0.0
        for _ in range(reps):
            tenant, user, params = draw()
            for label in order:
                variant, query = cases[label]
                conn = conns[variant]
                _context(conn, roles[variant], tenant, user, sealed=variant in SEALED)
                start = time.perf_counter()
                cursor = conn.execute(_sql(query), params)
                if cursor.description is not None:
                    cursor.fetchall()
                elapsed = time.perf_counter() - start
                samples[label].append(elapsed)
                spent += elapsed
                conn.rollback()
            if spent > budget:
                break
        for label, values in samples.items():
            out.setdefault(label, []).append(statistics.median(values))
    return out
