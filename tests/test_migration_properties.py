"""The migration engine proven by random edits (issue 17).

A state machine edits a model at random — roles and inheritance, tables, grants (table-wide
and per column, widened and narrowed), policies (command, permissive or restrictive, USING
and WITH CHECK coming and going), a view's columns, context claims, role limits, a data
product — and after every edit: autogenerates a revision (with its reviewed `.sql` twin),
upgrades, finds the catalog equal to the model, downgrades to exactly the catalog before,
upgrades again to exactly the catalog after, and applies the `.sql` twin with psql to a
mirror database, which must end up the same. At the end the access matrix is verified.

A second property injects random drift by hand (dropped, altered and extra grants,
policies, views, memberships) into a migrated database: the repair `rlskit diff` prints,
applied, always leaves no drift.

Sizes: RLSKIT_PROPERTY_EXAMPLES (default 6 runs of up to 6 edits; a longer run on demand).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import os
import subprocess
from contextlib import ExitStack
from pathlib import Path

import psycopg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test
from psycopg import sql
from support.snapshots import snapshot

from rlskit import Claim, Model
from rlskit.config import load_config
from rlskit.diff import diff_database, drift_sql
from rlskit.errors import ModelError
from rlskit.migrations.commands import downgrade, revision, upgrade
from rlskit.migrations.scaffold import init
from rlskit.server import embedded_bin_dir
from rlskit.verify import verify_database

EXAMPLES = int(os.environ.get("RLSKIT_PROPERTY_EXAMPLES", "6"))
ROLES = ("r0", "r1", "r2", "r3")
TABLES = ("t1", "t2")
COLUMNS = ("a", "b", "owner_id")
PRIVILEGES = ("SELECT", "INSERT", "UPDATE")
COMMANDS = ("SELECT", "INSERT", "UPDATE", "DELETE", "ALL")
EXPRESSIONS = ("a > 5", "5 < a", "b <> 'hidden'", "owner_id = rlskit.user_id()",
               "a > 5 AND b <> 'hidden'", "true")
TABLES_SQL = """
CREATE TABLE tenant (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), name text);
CREATE TABLE t1 (id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
                 tenant_id uuid NOT NULL REFERENCES tenant, a int NOT NULL DEFAULT 0,
                 b text NOT NULL DEFAULT '', owner_id uuid);
CREATE TABLE t2 (LIKE t1 INCLUDING DEFAULTS, PRIMARY KEY (id),
                 FOREIGN KEY (tenant_id) REFERENCES tenant);
CREATE TABLE t3 (id int PRIMARY KEY GENERATED ALWAYS AS IDENTITY, a int NOT NULL DEFAULT 0);
CREATE INDEX ON t1 (tenant_id); CREATE INDEX ON t2 (tenant_id);
"""


@dataclasses.dataclass
class PolicySpec:
    command: str
    role: str
    using: str | None
    with_check: str | None
    permissive: bool


@dataclasses.dataclass
class Spec:
    """A model as plain data, edited by the state machine and built into a `Model`."""

    roles: dict[str, tuple[str, ...]] = dataclasses.field(
        default_factory=lambda: {"r0": (), "r1": ("r0",)})
    tables: dict[str, dict[str, set[tuple[str, str | None]]]] = dataclasses.field(
        default_factory=lambda: {"t1": {"r0": {("SELECT", None)}}})
    policies: dict[tuple[str, str], PolicySpec] = dataclasses.field(default_factory=dict)
    view_columns: tuple[str, ...] | None = None
    claims: bool = False  # the optional department claim
    limits: dict[str, str] = dataclasses.field(default_factory=dict)
    product: bool = False
    product_filter: bool = False

    def build(self, prefix: str) -> Model:
        model = Model(schema="public", settings_prefix="app", role_prefix=prefix)
        claims = {"tenant_id": Claim("tenant_id", type="uuid"),
                  "user_id": Claim("sub", type="uuid", required=False)}
        if self.claims:
            claims["department"] = Claim("department", required=False)
        model.context(**claims)
        roles = {}
        for name in ROLES:
            if name in self.roles:
                roles[name] = model.role(name, inherits=[roles[p] for p in self.roles[name]],
                                         limits={"statement_timeout": self.limits[name]}
                                         if name in self.limits else None)
        model.authenticator("login")
        model.tenant_table("tenant", tenant_column="id",
                           grants={roles[r]: "SELECT" for r in list(roles)[:1]})
        for table, grants in self.tables.items():
            declared = model.tenant_table(table, grants={
                roles[r]: privileges(atoms) for r, atoms in grants.items() if atoms})
            for (on, name), policy in self.policies.items():
                if on == table:
                    declared.policy(name, command=policy.command, to=roles[policy.role],
                                    using=policy.using, with_check=policy.with_check,
                                    permissive=policy.permissive)
        if self.view_columns is not None and "t1" in self.tables:
            model.view("t1_directory", query=f"SELECT {', '.join(self.view_columns)} FROM t1",
                       grants={roles[r]: "SELECT" for r in self.tables["t1"]})
        if self.product:
            product = model.data_product("stock", tables=["t3"])
            if self.product_filter:
                product.row_filter(product.analyst, "t3", "a > 5")
        return model


def privileges(atoms: set[tuple[str, str | None]]) -> str:
    """``SELECT, UPDATE (a, b)`` from (privilege, column) pairs."""
    parts = []
    for name in PRIVILEGES:
        if (name, None) in atoms:
            parts.append(name)
        columns = [c for c in COLUMNS if (name, c) in atoms]
        if columns:
            parts.append(f"{name} ({', '.join(columns)})")
    return ", ".join(parts)


atoms = st.sets(st.tuples(st.sampled_from(PRIVILEGES), st.sampled_from((None, *COLUMNS))),
                min_size=1, max_size=4)


def state(conn, prefix: str) -> dict:
    """The snapshot without Alembic's own version table (which outlives a downgrade)."""
    found = snapshot(conn, prefix)
    found["relations"] = [r for r in found["relations"] or ()
                          if not r[0].startswith("alembic_version")]
    return found


def psql(url: str, script: str) -> None:
    folder = os.environ.get("RLSKIT_TEST_PG_BIN")
    tool = str(Path(folder) / "psql") if folder else str(embedded_bin_dir() / "psql")
    done = subprocess.run([tool, "-q", "-v", "ON_ERROR_STOP=1", "-d", url], input=script,
                          capture_output=True, text=True)
    assert done.returncode == 0, f"{done.stderr}\n{script}"


def create_tables(db, owner: str, create_owner: bool) -> None:
    with db.connect() as conn:
        if create_owner:
            conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(owner)))
        conn.execute(sql.SQL("GRANT CREATE ON SCHEMA public TO {}").format(
            sql.Identifier(owner)))
        conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(owner)))
        conn.execute(TABLES_SQL)
        conn.commit()


class Migrations(RuleBasedStateMachine):
    """Random edits of a model, each one migrated and proven both ways."""

    cluster = None  # set by the test
    project: Path = Path()

    def __init__(self) -> None:
        super().__init__()
        self.stack = ExitStack()
        self.main = self.stack.enter_context(self.cluster.database())
        self.mirror = self.stack.enter_context(self.cluster.database())
        self.prefix = self.main.role_prefix
        create_tables(self.main, self.prefix + "tables", True)
        create_tables(self.mirror, self.prefix + "tables", False)
        for old in (self.project / "migrations" / "versions").iterdir():
            old.unlink()
        self.settings = load_config(self.project)
        self.spec = Spec()
        self.model: Model | None = None
        self.steps = 0
        self.migrate(self.spec)

    def teardown(self) -> None:
        try:
            if self.model is not None:
                with self.main.connect() as conn:
                    matrix = verify_database(conn, self.model)
                assert matrix.ok, matrix.violations
        finally:
            self.stack.close()  # the mirror first: the roles are dropped with the main one

    # -- the proof after every edit ---------------------------------------------------------

    def migrate(self, spec: Spec) -> None:
        try:
            model = spec.build(self.prefix)
            model.validate()
        except ModelError:
            return  # an edit the model refuses is no edit
        self.spec, self.model = spec, model
        with self.main.connect() as conn:
            before = state(conn, self.prefix)
        self.steps += 1
        made = revision(self.settings, f"step {self.steps}", self.main.url, model=model)
        if made is None:
            with self.main.connect() as conn:
                assert diff_database(conn, model) == []
            return
        upgrade(self.settings, "head", self.main.url, None, model=model)
        with self.main.connect() as conn:
            assert diff_database(conn, model) == [], made.path.read_text()
            after = state(conn, self.prefix)
        downgrade(self.settings, "-1", self.main.url, None, model=model)
        with self.main.connect() as conn:
            assert state(conn, self.prefix) == before, made.path.read_text()
        upgrade(self.settings, "head", self.main.url, None, model=model)
        with self.main.connect() as conn:
            assert state(conn, self.prefix) == after
        twin = made.sql_path.read_text()
        psql(self.mirror.url, twin.split("-- ==== upgrade ====\n")[1].split(
            "-- ==== downgrade ====")[0])
        with self.mirror.connect() as conn:
            assert state(conn, self.prefix) == after, twin

    def edited(self) -> Spec:
        return copy.deepcopy(self.spec)

    # -- the edits ----------------------------------------------------------------------------

    @rule(name=st.sampled_from(ROLES[1:]), parents=st.sets(st.sampled_from(ROLES), max_size=2))
    def add_or_reparent_role(self, name: str, parents: set[str]) -> None:
        spec = self.edited()
        spec.roles[name] = tuple(p for p in ROLES if p in parents and p in spec.roles
                                 and ROLES.index(p) < ROLES.index(name))
        self.migrate(spec)

    @rule(name=st.sampled_from(ROLES[1:]))
    def remove_role(self, name: str) -> None:
        spec = self.edited()
        spec.roles.pop(name, None)
        spec.roles = {r: tuple(p for p in ps if p != name) for r, ps in spec.roles.items()}
        spec.limits.pop(name, None)
        for grants in spec.tables.values():
            grants.pop(name, None)
        spec.policies = {k: p for k, p in spec.policies.items() if p.role != name}
        self.migrate(spec)

    @rule(table=st.sampled_from(TABLES))
    def toggle_table(self, table: str) -> None:
        spec = self.edited()
        if spec.tables.pop(table, None) is None:
            spec.tables[table] = {"r0": {("SELECT", None)}}
        else:
            spec.policies = {k: p for k, p in spec.policies.items() if k[0] != table}
        self.migrate(spec)

    @rule(table=st.sampled_from(TABLES), role=st.sampled_from(ROLES), granted=atoms)
    def set_grants(self, table: str, role: str, granted: set) -> None:
        spec = self.edited()
        if table in spec.tables and role in spec.roles:
            spec.tables[table][role] = set(granted)
        self.migrate(spec)

    @rule(table=st.sampled_from(TABLES), role=st.sampled_from(ROLES),
          change=st.tuples(st.sampled_from(PRIVILEGES), st.sampled_from((None, *COLUMNS))))
    def widen_or_narrow_one(self, table: str, role: str, change: tuple) -> None:
        spec = self.edited()
        if table in spec.tables and role in spec.roles:
            held = spec.tables[table].setdefault(role, set())
            held.symmetric_difference_update({change})
        self.migrate(spec)

    @rule(table=st.sampled_from(TABLES), name=st.sampled_from(("p1", "p2")),
          command=st.sampled_from(COMMANDS), role=st.sampled_from(ROLES),
          using=st.none() | st.sampled_from(EXPRESSIONS),
          with_check=st.none() | st.sampled_from(EXPRESSIONS), permissive=st.booleans())
    def set_policy(self, table: str, name: str, command: str, role: str, using: str | None,
                   with_check: str | None, permissive: bool) -> None:
        spec = self.edited()
        if command == "INSERT":
            using = None
        if command in ("SELECT", "DELETE"):
            with_check = None
        if table in spec.tables and role in spec.roles and (using or with_check):
            spec.policies[(table, name)] = PolicySpec(command, role, using, with_check,
                                                      permissive)
        self.migrate(spec)

    @rule(table=st.sampled_from(TABLES), name=st.sampled_from(("p1", "p2")))
    def drop_policy(self, table: str, name: str) -> None:
        spec = self.edited()
        spec.policies.pop((table, name), None)
        self.migrate(spec)

    @rule(columns=st.none() | st.lists(st.sampled_from(("id", "a", "b")), min_size=1,
                                       unique=True).map(tuple))
    def set_view(self, columns: tuple[str, ...] | None) -> None:
        spec = self.edited()
        spec.view_columns = columns
        self.migrate(spec)

    @rule(role=st.sampled_from(ROLES), timeout=st.none() | st.sampled_from(("5s", "30s")))
    def set_limit(self, role: str, timeout: str | None) -> None:
        spec = self.edited()
        if timeout is None:
            spec.limits.pop(role, None)
        elif role in spec.roles:
            spec.limits[role] = timeout
        self.migrate(spec)

    @rule()
    def toggle_claim(self) -> None:
        spec = self.edited()
        spec.claims = not spec.claims
        self.migrate(spec)

    @rule(product=st.booleans(), row_filter=st.booleans())
    def set_product(self, product: bool, row_filter: bool) -> None:
        spec = self.edited()
        spec.product, spec.product_filter = product, product and row_filter
        self.migrate(spec)

    @invariant()
    def no_drift(self) -> None:
        if self.model is not None:
            with self.main.connect() as conn:
                assert diff_database(conn, self.model) == []


def test_random_edits_migrate_both_ways_exactly(tmp_path, rlskit_cluster):
    init(tmp_path)
    Migrations.cluster, Migrations.project = rlskit_cluster, tmp_path
    run_state_machine_as_test(Migrations, settings=settings(
        max_examples=EXAMPLES, stateful_step_count=6, deadline=None,
        suppress_health_check=list(HealthCheck)))


# -- drift injected by hand: the printed repair always leaves none -------------------------

DRIFT = (
    "REVOKE SELECT ON public.flow FROM {read_only}",
    "GRANT SELECT (password_hash) ON public.users TO {read_only}",
    "REVOKE SELECT (email) ON public.users FROM {read_only}",
    "GRANT UPDATE (name) ON public.flow TO {member}",
    "GRANT DELETE ON public.flow TO {runner}",
    "REVOKE UPDATE (status) ON public.flow FROM {runner}",
    "DROP POLICY leave_tenant ON public.membership",
    "ALTER POLICY leave_tenant ON public.membership USING (true)",
    "ALTER POLICY leave_tenant ON public.membership TO {member}, {runner}",
    # a policy rlskit once managed (it carries the marker) that the model no longer has;
    # unmarked objects are someone else's and are left alone
    "CREATE POLICY extra ON public.flow FOR SELECT TO {runner} USING (true); "
    "COMMENT ON POLICY extra ON public.flow IS 'managed by rlskit'",
    "DROP VIEW public.member_directory",
    "CREATE OR REPLACE VIEW public.member_directory WITH (security_invoker = false) AS "
    "SELECT u.id, u.email, u.first_name, u.last_name FROM users u "
    "JOIN membership m ON m.user_id = u.id",
    "REVOKE {read_only} FROM {member}",
    "GRANT {runner} TO {member}",
    "REVOKE {member} FROM {app_authenticator}",
    "ALTER TABLE public.flow NO FORCE ROW LEVEL SECURITY",
    "ALTER ROLE {runner} BYPASSRLS",
)


def test_printed_repair_of_random_drift_leaves_no_drift(example):
    names = {n: example.role(n) for n in ("read_only", "member", "runner",
                                         "app_authenticator")}

    @settings(max_examples=max(40, EXAMPLES * 6), deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(st.lists(st.sampled_from(DRIFT), min_size=1, max_size=4, unique=True))
    def repaired(statements: list[str]) -> None:
        with example.db.connect() as conn:
            pristine = snapshot(conn, example.db.role_prefix)
            for statement in statements:
                with contextlib.suppress(psycopg.Error), conn.transaction():  # a conflicting
                    conn.execute(statement.format(  # pair (drop, then alter) is one drift
                        **{k: sql.Identifier(v).as_string(conn) for k, v in names.items()}))
            changes = diff_database(conn, example.model)
            assert changes, statements  # every injected drift is seen
            conn.execute(drift_sql(changes, conn.info.server_version // 10000))
            assert diff_database(conn, example.model) == [], drift_sql(
                changes, conn.info.server_version // 10000)
            assert snapshot(conn, example.db.role_prefix) == pristine
            conn.rollback()

    repaired()
