"""The model on a real Citus cluster (a coordinator and two workers, Citus built from the
vendored source): tables sharded by tenant and reference tables, through the same
generator, Alembic ops and diff; policies in the form Citus accepts; and tenants isolated
on the workers."""

from __future__ import annotations

import os
import random
import shutil
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
import pytest
from psycopg import sql
from psycopg_pool import ConnectionPool

from rlskit import Claim, Model, generate_sql
from rlskit.checks import check_database
from rlskit.context import for_role
from rlskit.diff import diff_database, drift_sql
from rlskit.errors import ModelError
from rlskit.keystore import rotate
from rlskit.psycopg import pool_options, transaction
from rlskit.runtime import check_connection
from rlskit.seal import ContextKey
from rlskit.server import private_workdir
from rlskit.sqltext import parse_privileges
from rlskit.testing.citus import (
    CitusCluster,
    citus_cluster,
    citus_unavailable,
    install_model,
)
from rlskit.verify import verify_database

TABLES = """
CREATE TABLE tenant (id uuid PRIMARY KEY, name text NOT NULL);
CREATE TABLE project (tenant_id uuid NOT NULL REFERENCES tenant (id),
                      id uuid NOT NULL DEFAULT gen_random_uuid(), name text NOT NULL,
                      PRIMARY KEY (tenant_id, id));
"""


@pytest.fixture(scope="session")
def citus() -> Iterator[CitusCluster]:
    if os.environ.get("RLSKIT_TEST_PG_BIN"):
        pytest.skip("the Citus cluster is built on the embedded PostgreSQL 18, which the "
                    "first pass tests; this pass tests another server")
    reason = citus_unavailable()
    if reason:
        pytest.skip(reason)
    root = private_workdir()
    try:
        with citus_cluster(root) as cluster:
            yield cluster
    finally:
        shutil.rmtree(root, ignore_errors=True)


def build_model(prefix: str) -> Model:
    model = Model(role_prefix=prefix)
    model.context(tenant_id=Claim("tenant_id", type="uuid"))
    member = model.role("member")
    model.authenticator("app")
    model.owner("owner")  # not the migrating superuser: FORCE binds the owner
    model.tenant_table("tenant", tenant_column="id", grants={member: "SELECT"})
    model.tenant_table("project", grants={member: "SELECT, INSERT, UPDATE"})
    model.reference_table("tenant")
    model.distribute("project", by="tenant_id")
    return model


@dataclass
class Installed:
    citus: CitusCluster
    model: Model
    key: ContextKey
    a: uuid.UUID
    b: uuid.UUID

    def __iter__(self) -> Iterator:  # citus, model = installed
        return iter((self.citus, self.model))


def drop_everything(citus: CitusCluster, tables: str, prefix: str) -> None:
    """Drop `tables` (a list of names), the helpers schema and the roles named `prefix`…"""
    with citus.connect(autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {tables} CASCADE")
        conn.execute("DROP SCHEMA IF EXISTS rlskit CASCADE")
        for (role,) in conn.execute("SELECT rolname FROM pg_roles WHERE rolname LIKE %s",
                                    [prefix + "%"]).fetchall():
            conn.execute(sql.SQL("DROP OWNED BY {0}; DROP ROLE {0}").format(
                sql.Identifier(role)))


@pytest.fixture
def installed(citus: CitusCluster, rlskit_context_key: ContextKey) -> Iterator[Installed]:
    """The model on the cluster, tenants a and b with 20 projects each; the test
    session's context key in the key table."""
    prefix = f"c{uuid.uuid4().hex[:8]}_"
    model = build_model(prefix)
    a, b = uuid.uuid4(), uuid.uuid4()
    with citus.connect(autocommit=True) as conn:
        conn.execute(TABLES)
        install_model(conn, model)
        key = rotate(conn, model.helpers_schema, rlskit_context_key)
        conn.execute("INSERT INTO tenant VALUES (%s, 'a'), (%s, 'b')", [a, b])
        conn.execute("INSERT INTO project (tenant_id, name) SELECT t, 'p' || g "
                     "FROM unnest(%s::uuid[]) t, generate_series(1, 20) g", [[a, b]])
    try:
        yield Installed(citus, model, key, a, b)
    finally:
        drop_everything(citus, "project, tenant", prefix)


def test_tables_are_distributed_by_tenant_and_the_diff_is_clean(installed):
    citus, model = installed
    with citus.connect() as conn:
        placed = conn.execute(
            "SELECT logicalrelid::text, partmethod, repmodel, "
            "column_to_column_name(logicalrelid, partkey) FROM pg_dist_partition "
            "ORDER BY 1").fetchall()
        assert placed == [("project", "h", "s", "tenant_id"), ("tenant", "n", "t", None)]
        logins = conn.execute("SELECT rolname, rolcanlogin FROM pg_roles WHERE rolname = "
                              "ANY(%s) ORDER BY 1", [[model.role_name("member")]]).fetchall()
        assert logins == [(model.role_name("member"), True)]  # Citus logs in as the role
        assert diff_database(conn, model) == []
        policies = conn.execute("SELECT polname, polpermissive, pg_get_expr(polqual, polrelid) "
                                "FROM pg_policy WHERE polrelid = 'project'::regclass "
                                "ORDER BY 1").fetchall()
    # the tenant isolation written into each rule (Citus would copy a restrictive policy to
    # the shards as permissive), the context read without a subquery (Citus refuses them)
    assert policies == [("member_insert", True, None),
                        ("member_select", True, "(tenant_id = rlskit.tenant_id())"),
                        ("member_update", True, "(tenant_id = rlskit.tenant_id())")]


def test_a_changed_distribution_is_drift_with_its_sql(installed):
    citus, model = installed
    del model.distributions[("public", "project")]
    with citus.connect() as conn:
        changes = diff_database(conn, model)
    assert ("drop", ("distribution", "public", "project")) in [(c.action, c.obj.key)
                                                             for c in changes]
    assert ("SELECT undistribute_table(logicalrelid\n"
            "                        , cascade_via_foreign_keys => TRUE)\n"
            "FROM pg_dist_partition\n"
            "WHERE logicalrelid = CAST('public.project' AS regclass)") in drift_sql(changes, 18)


def test_each_tenant_sees_its_own_rows_through_the_coordinator(installed):
    """rlskit's runtime as the authenticator: the sealed context reaches the workers (SET
    LOCAL, propagated), the group role logs in to them, the seal verifies there."""
    citus, model = installed
    url = citus.url(model.role_name("app"))
    seen = {}
    with psycopg.connect(url) as conn:
        check_connection(conn, model)  # the process's key (the test session's) is known
        for tenant in (installed.a, installed.b):
            ctx = for_role(model, "member", tenant_id=tenant)
            with transaction(conn, ctx, installed.key):
                seen[tenant] = conn.execute(
                    "SELECT tenant_id, count(*) FROM project GROUP BY 1").fetchall()
        with conn.transaction(), pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT count(*) FROM project")  # no context: the authenticator
    assert seen == {installed.a: [(installed.a, 20)], installed.b: [(installed.b, 20)]}


def test_sql_inside_the_request_changes_nothing_on_the_workers(installed):
    """A tenant set inside the request (propagated to the workers too) is not read: the
    helpers read the sealed body. A forged seal makes every helper NULL: no row passes."""
    citus, model = installed
    ctx = for_role(model, "member", tenant_id=installed.a)
    seen = []
    with psycopg.connect(citus.url(model.role_name("app"))) as conn:
        for name, value in (("app.tenant_id", str(installed.b)),
                            ("rlskit.seal", "k:9999999999:" + "0" * 64 + ':{"role":"x"}')):
            with transaction(conn, ctx, installed.key):
                conn.execute(sql.SQL("SET LOCAL {} = {}").format(
                    sql.Identifier(*name.split(".")), sql.Literal(value)))
                seen.append(conn.execute("SELECT tenant_id, count(*) FROM project GROUP BY 1"
                                         ).fetchall())
    assert seen == [[(installed.a, 20)], []]


def test_a_policy_with_a_subquery_on_a_distributed_table_is_refused_by_the_model():
    model = build_model("x_")
    model.tables[("public", "project")].policy(
        "mine", command="SELECT", to="member",
        using="EXISTS (SELECT 1 FROM tenant t WHERE t.id = project.tenant_id)")
    with pytest.raises(ModelError, match="policy 'mine': it has a subquery, which Citus "
                                         "refuses"):
        generate_sql(model)


def test_distribution_declarations_are_checked():
    model = build_model("x_")
    with pytest.raises(ModelError, match="distributed twice"):
        model.distribute("project", by="tenant_id")
    with pytest.raises(ModelError, match="colocate_with 'nothing' must be a table"):
        model.distribute("task", by="tenant_id", colocate_with="nothing")
    with pytest.raises(ModelError, match="colocate_with 'tenant' must be a table"):
        model.distribute("task", by="tenant_id", colocate_with="tenant")  # a reference table


def test_the_generated_sql_distributes_after_the_owner_and_before_the_policies():
    text = generate_sql(build_model("x_"))
    assert text.index("create_reference_table('public.tenant')") < text.index(
        "create_distributed_table('public.project', 'tenant_id')") < text.index(
        "CREATE POLICY member_select")




def test_the_lint_finds_shards_whose_policies_differ_from_their_table(installed):
    """Bad: a table distributed by hand with a restrictive policy (Citus copies it to the
    shards as permissive). Good: the model's tables, whose policies Citus copies intact."""
    citus, model = installed
    with citus.connect(autocommit=True) as conn:
        conn.execute("CREATE TABLE note (tenant_id uuid NOT NULL, body text)")
        conn.execute("ALTER TABLE note ENABLE ROW LEVEL SECURITY")
        conn.execute("CREATE POLICY mine ON note AS RESTRICTIVE "
                     "USING (tenant_id = rlskit.tenant_id())")
        conn.execute("CREATE POLICY everyone ON note USING (true)")
        conn.execute("SELECT create_distributed_table('note', 'tenant_id')")
        try:
            found = [(f.rule, f.object) for f in check_database(conn, model)
                     if f.rule == "RLS027"]
        finally:
            conn.execute("DROP TABLE note")
    assert found == [("RLS027", "note")]  # and not project or tenant


HAMMER_TRANSACTIONS, HAMMER_THREADS = 10_000, 8


def test_a_pool_hammer_through_the_coordinator_never_crosses_tenants(installed):
    """Eight threads share three pooled coordinator connections for 10,000 transactions,
    each in a random tenant's context (every one must see exactly its tenant's rows, read
    from the workers), each followed by a probe with no context (must see nothing)."""
    citus, model = installed
    expected = {installed.a: 20, installed.b: 20}
    with citus.connect(autocommit=True) as conn:
        for count in (7, 13):
            tenant = uuid.uuid4()
            conn.execute("INSERT INTO tenant VALUES (%s, 'x')", [tenant])
            conn.execute("INSERT INTO project (tenant_id, name) SELECT %s, 'p' || g "
                         "FROM generate_series(1, %s) g", [tenant, count])
            expected[tenant] = count
    tenants = list(expected)
    member = sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(model.role_name("member")))
    wrong: list[str] = []
    done = [0]
    lock = threading.Lock()

    def work(seed: int, pool: ConnectionPool) -> None:
        rng = random.Random(seed)
        for _ in range(HAMMER_TRANSACTIONS // HAMMER_THREADS):
            tenant = rng.choice(tenants)
            ctx = for_role(model, "member", tenant_id=tenant)
            with pool.connection() as conn, transaction(conn, ctx) as tx:
                seen = dict(tx.execute("SELECT tenant_id, count(*) FROM project "
                                       "GROUP BY 1").fetchall())
            with pool.connection() as conn, conn.transaction():
                conn.execute(member)
                leaked = conn.execute("SELECT count(*) FROM project").fetchone()[0]
            with lock:
                done[0] += 1
                if seen != {tenant: expected[tenant]} or leaked:
                    wrong.append(f"{tenant}: saw {seen}, {leaked} without a context")

    with ConnectionPool(citus.url(model.role_name("app")), min_size=3, max_size=3,
                        open=True, **pool_options(model)) as pool:
        threads = [threading.Thread(target=work, args=(i, pool))
                   for i in range(HAMMER_THREADS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert done[0] == HAMMER_TRANSACTIONS and wrong == []


def task_count(conn: psycopg.Connection, query: str, params: list) -> int:
    plan = conn.execute("EXPLAIN (FORMAT JSON) " + query, params).fetchone()[0][0]["Plan"]
    while "Distributed Query" not in plan:  # below an aggregate on the coordinator
        plan = plan["Plans"][0]
    return plan["Distributed Query"]["Job"]["Task Count"]


def test_a_tenant_query_runs_on_one_shard_only_when_it_names_the_tenant(installed):
    """The policy filters on the workers, after Citus has planned the query: without the
    tenant in its WHERE a query fans out to every shard (correct, and slower); naming the
    tenant routes it to one shard. The policy still decides what is seen either way."""
    citus, model = installed
    ctx = for_role(model, "member", tenant_id=installed.a)
    query = "SELECT count(*) FROM project"
    with psycopg.connect(citus.url(model.role_name("app"))) as conn, \
            transaction(conn, ctx, installed.key):
        fanned = task_count(conn, query, [])
        routed = task_count(conn, query + " WHERE tenant_id = %s", [installed.a])
        other = conn.execute(query + " WHERE tenant_id = %s", [installed.b]).fetchone()
    assert (fanned, routed, other) == (8, 1, (0,))  # citus.shard_count = 8



def test_verify_proves_the_matrix_through_the_coordinator(installed):
    citus, model = installed
    with citus.connect() as conn:
        before = conn.execute("SELECT (SELECT count(*) FROM tenant), "
                              "(SELECT count(*) FROM project)").fetchone()
        matrix = verify_database(conn, model)
        again = verify_database(conn, model)  # nothing of the first run left in the way
        after = conn.execute("SELECT (SELECT count(*) FROM tenant), "
                             "(SELECT count(*) FROM project)").fetchone()
        live_keys = conn.execute("SELECT count(*) FROM rlskit.context_key "
                                 "WHERE retired_at IS NULL").fetchone()
    assert [(c.actor, c.relation, c.command) for c in matrix.violations] == []
    assert matrix.ok and len(matrix.cells) == 24  # member, app, owner × 2 tables × 4
    assert again.cells == matrix.cells
    promised = {(c.actor, c.relation, c.command): str(c.promise) for c in matrix.cells}
    assert promised[("member", "public.project", "SELECT")] == "own tenant"
    assert promised[("member", "public.project", "INSERT")] == "own tenant"
    assert promised[("member", "public.project", "DELETE")] == "denied"
    assert promised[("member", "public.tenant", "SELECT")] == "own tenant"
    assert after == before  # the seed rows, committed on Citus, are gone again
    assert live_keys == (1,)  # the run's own key is retired; the session's stays


def test_the_example_migrates_onto_the_cluster_through_alembic(citus, tmp_path):
    """The example's Citus model, from `rlskit init` to `rlskit verify`, on the cluster:
    a revision that creates and distributes the tables, a clean diff, a proven matrix."""
    from test_cli import rlskit

    prefix = f"x{uuid.uuid4().hex[:6]}_"
    (tmp_path / "pyproject.toml").write_text('[tool.rlskit]\nmodel = "app_rls:model"\n')
    (tmp_path / "app_rls.py").write_text(
        "from rlskit.examples.saas import build_model\n"
        f"model = build_model(role_prefix={prefix!r}, citus=True)\n")
    url = citus.url()
    try:
        for step in (("init", "--metadata", "rlskit.examples.saas:citus_metadata"),
                     ("revision", "-m", "the example on Citus", "-d", url),
                     ("migrate", "-d", url), ("diff", "-d", url), ("verify", "-d", url)):
            result = rlskit(*step, cwd=tmp_path)
            assert result.returncode == 0, (step, result.stdout, result.stderr)
        with citus.connect() as conn:
            placed = conn.execute(
                "SELECT logicalrelid::text, partmethod, "
                "column_to_column_name(logicalrelid, partkey) FROM pg_dist_partition "
                "ORDER BY 1").fetchall()
            rows = conn.execute("SELECT (SELECT count(*) FROM membership), "
                                "(SELECT count(*) FROM users)").fetchone()
        assert placed == [("flow", "h", "tenant_id"), ("membership", "h", "tenant_id"),
                          ("tenant", "n", None), ("users", "n", None)]
        assert "96 of 96 cells proven, 2 of 2 side channels closed" in result.stderr
        assert rows == (0, 0)  # verify's seed rows, committed on Citus, are gone
        result = rlskit("downgrade", "base", "-d", url, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        with citus.connect() as conn:  # back to nothing, tables and all
            assert conn.execute("SELECT count(*) FROM pg_dist_partition").fetchone() == (0,)
            assert conn.execute("SELECT to_regclass('flow'), to_regclass('rlskit.context_key')"
                                ).fetchone() == (None, None)
    finally:
        drop_everything(citus, "flow, membership, users, tenant, alembic_version", prefix)


def test_the_lint_finds_helpers_the_workers_lack_and_roles_that_cannot_log_in(installed):
    """Good: the model as migrated. Bad: a helper created without DDL propagation (RLS041)
    and a group role made NOLOGIN again (RLS042)."""
    citus, model = installed
    member = model.role_name("member")

    def found(conn: psycopg.Connection) -> list[tuple[str, str]]:
        return [(f.rule, f.object) for f in check_database(conn, model)
                if f.rule in ("RLS041", "RLS042")]

    with citus.connect(autocommit=True) as conn:
        assert found(conn) == []
        conn.execute("SET citus.enable_ddl_propagation TO off")
        conn.execute("CREATE FUNCTION rlskit.stray() RETURNS int LANGUAGE sql AS 'SELECT 1'")
        conn.execute("RESET citus.enable_ddl_propagation")
        conn.execute(sql.SQL("ALTER ROLE {} NOLOGIN").format(sql.Identifier(member)))
        try:
            bad = found(conn)
        finally:
            conn.execute(sql.SQL("ALTER ROLE {} LOGIN").format(sql.Identifier(member)))
            conn.execute("DROP FUNCTION rlskit.stray()")
    assert bad == [("RLS041", "rlskit.stray()"), ("RLS042", member)]


def test_review_of_the_database_against_a_changed_model_on_the_cluster(installed, tmp_path):
    """`rlskit review` (database → model) through the coordinator: the diff's relations
    probed with verify's Citus transactions, the widened cell exactly."""
    from rlskit.config import Config
    from rlskit.migrations.review import review

    citus, model = installed
    project = model.tables[("public", "project")]
    member = model.roles["member"]
    project.grants[member] = project.grants[member] + parse_privileges("DELETE")
    outcome = review(Config(tmp_path, None, citus.url(), "migrations"), model, citus.url())
    assert [str(c) for c in outcome.changes] == [
        "member: DELETE on public.project: denied → own tenant (widening)"]
