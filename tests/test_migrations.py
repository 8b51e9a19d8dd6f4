"""Alembic migrations on a real server: autogenerate, exact downgrades, offline SQL, and a
failing migration that changes nothing."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from alembic.autogenerate import produce_migrations
from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from psycopg import sql
from sqlalchemy import create_engine, pool
from support.snapshots import snapshot

from rlskit.config import load_config
from rlskit.diff import diff_database
from rlskit.examples.saas import build_model, metadata
from rlskit.migrations import ops as rls_ops
from rlskit.migrations.commands import alembic_config, downgrade, revision, upgrade
from rlskit.migrations.scaffold import init
from rlskit.objects import DbPolicy
from rlskit.server import embedded_bin_dir
from rlskit.target import target_objects
from rlskit.testing import ScratchDatabase
from rlskit.urls import sqlalchemy_url

REPO = Path(__file__).resolve().parents[1]
SETTINGS = load_config(REPO)
SCRIPTS = ScriptDirectory.from_config(alembic_config(SETTINGS))
HEAD = SCRIPTS.get_current_head()
FIRST = SCRIPTS.get_base()


def autogenerate(url: str, model) -> list:
    """The ops autogenerate proposes for `model` (and the example's tables) at `url`."""
    engine = create_engine(sqlalchemy_url(url), poolclass=pool.NullPool)
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={
            "target_metadata": metadata, "rlskit_model": model,
            "autogenerate_plugins": ["alembic.autogenerate.*", "rlskit"]})
        return produce_migrations(context, metadata).upgrade_ops.ops


def apply(url: str, model, operations: list) -> None:
    """Run ops the way a revision would, in one transaction."""
    engine = create_engine(sqlalchemy_url(url), poolclass=pool.NullPool)
    with engine.begin() as conn:
        context = MigrationContext.configure(conn, opts={"rlskit_role_prefix": model.role_prefix})
        for op in operations:
            Operations(context).invoke(op)


def names(operations: list) -> list[str]:
    return [getattr(op, "name", type(op).__name__) for op in operations]


def bin_tool(name: str) -> str:
    folder = os.environ.get("RLSKIT_TEST_PG_BIN")
    return str(Path(folder) / name) if folder else str(embedded_bin_dir() / name)


@pytest.fixture
def model(rlskit_db: ScratchDatabase):
    return build_model(role_prefix=rlskit_db.role_prefix)


@pytest.fixture
def migrated(rlskit_db: ScratchDatabase, model) -> ScratchDatabase:
    """The scratch database upgraded to head with the repository's migrations."""
    upgrade(SETTINGS, "head", rlskit_db.url, None, model=model)
    return rlskit_db


def test_the_repository_has_four_revisions_sealing_the_context_then_owning_the_tables():
    fourth = SCRIPTS.get_revision(HEAD)
    owning = Path(fourth.path).read_text()
    for op in ("op.create_role('owner', login=False, inherit=True)",
               "op.set_owner('flow', schema='public', owner='owner')",
               "op.reset_owner('flow', schema='public', owner='owner')"):
        assert op in owning
    third = SCRIPTS.get_revision(fourth.down_revision)
    second = SCRIPTS.get_revision(third.down_revision)
    assert second.down_revision == FIRST
    source = Path(second.path).read_text()
    for op in ("op.alter_policy(", "op.drop_policy(", "op.create_policy(", "op.create_role(",
               "op.drop_view(", "op.create_view("):
        assert op in source
    sealing = Path(third.path).read_text()
    for op in ("op.create_context_seal('rlskit', owner='rlskit_keys')",
               "sealed=True",
               "op.grant('EXECUTE', function='sealed_setting', to='member'",
               "op.drop_context_seal("):
        assert op in sealing
    for script in (FIRST, second.revision, third.revision, HEAD):
        twin = Path(SCRIPTS.get_revision(script).path).with_suffix(".sql")
        assert twin.read_text().splitlines()[2].startswith("-- Summary: +")


def test_scaffold_autogenerate_upgrade_then_nothing_left(tmp_path, rlskit_db, model):
    init(tmp_path, metadata="rlskit.examples.saas:metadata")
    settings = load_config(tmp_path)
    first = revision(settings, "everything", rlskit_db.url, model=model)
    assert first is not None and first.path.is_file()
    policies = [o for o in target_objects(model, rlskit_db.version) if isinstance(o, DbPolicy)]
    assert "+4 tables" in first.summary and "+6 roles" in first.summary
    assert f"+{len(policies)} policies" in first.summary
    twin = first.sql_path.read_text()
    assert "-- Summary: " + first.summary in twin
    assert f"for PostgreSQL {rlskit_db.version}, for review" in twin
    assert "CREATE POLICY tenant_isolation ON public.flow" in twin
    assert "DROP POLICY tenant_isolation ON public.flow" in twin.split("==== downgrade")[1]

    upgrade(settings, "head", rlskit_db.url, None, model=model)
    assert revision(settings, "again", rlskit_db.url, model=model) is None
    assert sorted(p.suffix for p in (tmp_path / "migrations" / "versions").iterdir()) == [
        ".py", ".sql"]
    with rlskit_db.connect() as conn:
        assert diff_database(conn, model) == []


def test_upgrade_downgrade_upgrade_round_trips_the_catalog(rlskit_db, model):
    with rlskit_db.connect(autocommit=True) as conn:
        empty = snapshot(conn, rlskit_db.role_prefix)
        upgrade(SETTINGS, FIRST, rlskit_db.url, None, model=model)
        first = snapshot(conn, rlskit_db.role_prefix)
        upgrade(SETTINGS, "head", rlskit_db.url, None, model=model)
        head = snapshot(conn, rlskit_db.role_prefix)
        assert autogenerate(rlskit_db.url, model) == []
        assert first != head
        downgrade(SETTINGS, FIRST, rlskit_db.url, None, model=model)
        assert snapshot(conn, rlskit_db.role_prefix) == first
        upgrade(SETTINGS, "head", rlskit_db.url, None, model=model)
        assert snapshot(conn, rlskit_db.role_prefix) == head
        downgrade(SETTINGS, "base", rlskit_db.url, None, model=model)
        after = snapshot(conn, rlskit_db.role_prefix)
        assert after["roles"] is None and after["policies"] == empty["policies"]
        assert [r[0] for r in after["relations"]] == ["alembic_version", "alembic_version_pkc"]


def test_no_false_diff_after_pg_dump_and_restore(migrated, model):
    dump = subprocess.run([bin_tool("pg_dump"), "--schema-only", "--dbname", migrated.url],
                          check=True, capture_output=True, text=True).stdout
    copy = migrated.name + "_copy"
    with psycopg.connect(migrated.cluster.url("postgres"), autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(copy)))
    try:
        url = migrated.cluster.url(copy)
        subprocess.run([bin_tool("psql"), "-q", "-v", "ON_ERROR_STOP=1", "-d", url],
                       input=dump, check=True, capture_output=True, text=True)
        assert autogenerate(url, model) == []
    finally:
        with psycopg.connect(migrated.cluster.url("postgres"), autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(
                sql.Identifier(copy)))


def test_reformatting_every_expression_autogenerates_nothing(migrated, model):
    for table in model.tables.values():
        for policy in table.policies:
            if policy.using:
                shouted = policy.using.sql.upper().replace(" = ", "  =  ")
                policy.using = dataclasses.replace(policy.using, sql=f"(\n  {shouted})")
    del model.views[("public", "member_directory")]
    model.view("member_directory", grants={"member": "SELECT"}, query=(
        "select U.ID, u.email, U.First_Name, u.last_name\n  from public.users AS u "
        "inner join public.membership AS m on (m.user_id = u.id)"))
    assert autogenerate(migrated.url, model) == []


def test_changing_only_using_is_one_alter_policy(migrated, model):
    membership = model.tables[("public", "membership")]
    policy = next(p for p in membership.policies if p.name == "leave_tenant")
    assert policy.using is not None
    policy.using = dataclasses.replace(
        policy.using, sql="user_id = rlskit.user_id() AND role <> 'owner'")
    proposed = autogenerate(migrated.url, model)
    assert names(proposed) == ["alter_policy"]
    assert proposed[0].clauses == ("using",)
    apply(migrated.url, model, proposed)
    assert autogenerate(migrated.url, model) == []
    apply(migrated.url, model, [proposed[0].reverse()])
    assert names(autogenerate(migrated.url, model)) == ["alter_policy"]


def test_changing_a_command_is_drop_and_create(migrated, model):
    users = model.tables[("public", "users")]
    next(p for p in users.policies if p.name == "fellow_members").command = "ALL"
    proposed = autogenerate(migrated.url, model)
    assert names(proposed) == ["drop_policy", "create_policy"]
    apply(migrated.url, model, proposed)
    assert autogenerate(migrated.url, model) == []


def test_removing_security_invoker_from_a_live_view_is_detected(migrated, model):
    if migrated.version < 15:
        pytest.skip("no security_invoker before PostgreSQL 15")
    with migrated.connect() as conn:
        conn.execute("ALTER VIEW member_directory RESET (security_invoker)")
    proposed = autogenerate(migrated.url, model)
    assert names(proposed) == ["replace_view"]
    assert dict(proposed[0].obj.options)["security_invoker"] == "true"
    apply(migrated.url, model, proposed)
    assert autogenerate(migrated.url, model) == []


def test_unmanaged_policy_role_grant_and_function_are_left_alone(migrated, model):
    other = migrated.role_prefix + "analyst"
    with migrated.connect() as conn:
        conn.execute(sql.SQL("CREATE ROLE {}").format(sql.Identifier(other)))
        conn.execute(sql.SQL("GRANT SELECT ON flow TO {}").format(sql.Identifier(other)))
        conn.execute(sql.SQL("CREATE POLICY analysts ON flow FOR SELECT TO {} USING (true)"
                             ).format(sql.Identifier(other)))
        conn.execute("CREATE FUNCTION rlskit.audit_note() RETURNS text LANGUAGE sql "
                     "RETURN 'mine'")
    assert autogenerate(migrated.url, model) == []


def test_offline_sql_applied_with_psql_matches_online_upgrade(rlskit_db, model, rlskit_cluster):
    script = upgrade(SETTINGS, "head", None, rlskit_db.version, sql=True, model=model)
    assert "CREATE POLICY" in script and "ALTER POLICY" in script
    subprocess.run([bin_tool("psql"), "-q", "-v", "ON_ERROR_STOP=1", "-d", rlskit_db.url],
                   input=script, check=True, capture_output=True, text=True)
    with rlskit_cluster.database() as online:
        online_model = build_model(role_prefix=online.role_prefix)
        upgrade(SETTINGS, "head", online.url, None, model=online_model)
        with rlskit_db.connect() as a, online.connect() as b:
            assert snapshot(a, rlskit_db.role_prefix) == snapshot(b, online.role_prefix)


def test_a_failing_migration_leaves_the_database_as_it_was(tmp_path, rlskit_db):
    project = tmp_path / "project"
    shutil.copytree(REPO / "migrations", project / "migrations",
                    ignore=shutil.ignore_patterns("__pycache__"))
    (project / "models.py").write_text(
        "from rlskit.examples.saas import build_model\n"
        f"model = build_model(role_prefix={rlskit_db.role_prefix!r})\n")
    (project / "pyproject.toml").write_text('[tool.rlskit]\nmodel = "models:model"\n')
    (project / "migrations" / "versions" / "ffff_broken.py").write_text(
        f'revision = "ffff"\ndown_revision = {HEAD!r}\nbranch_labels = depends_on = None\n'
        "from alembic import op\n\n"
        "def upgrade():\n"
        "    op.create_role('doomed')\n"
        "    op.create_policy('nope', table='no_such_table', using='true')\n\n"
        "def downgrade():\n    pass\n")
    with rlskit_db.connect(autocommit=True) as conn:
        before = snapshot(conn, rlskit_db.role_prefix)
        result = subprocess.run([sys.executable, "-m", "rlskit", "migrate", "--database",
                                 rlskit_db.url], cwd=project, capture_output=True, text=True,
                                timeout=300)
        assert result.returncode == 2, result.stderr
        assert result.stderr.count("\n") == 1
        assert "migration failed, nothing was changed" in result.stderr
        assert "no_such_table" in result.stderr
        assert snapshot(conn, rlskit_db.role_prefix) == before
        assert conn.execute("SELECT to_regclass('alembic_version')").fetchone()[0] is None


def test_cli_init_revision_migrate_downgrade(tmp_path, rlskit_db):
    env = {**os.environ, "RLSKIT_DATABASE_URL": rlskit_db.url}
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "app"\n')

    def rlskit(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "rlskit", *args], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=300)

    assert rlskit("init").returncode == 0
    assert {"env.py", "script.py.mako", "versions"} <= {
        p.name for p in (tmp_path / "migrations").iterdir()}
    text = (tmp_path / "pyproject.toml").read_text()
    assert '[tool.rlskit]\nmodel = "rls_model:model"' in text and "[tool.alembic]" in text
    again = rlskit("init")
    assert again.returncode == 2 and "already exists" in again.stderr

    # the stub model protects a table of the user's: create it, then migrate
    (tmp_path / "rls_model.py").write_text(
        (tmp_path / "rls_model.py").read_text().replace(
            'Model(schema="public", settings_prefix="app")',
            f'Model(schema="public", settings_prefix="app", '
            f'role_prefix={rlskit_db.role_prefix!r})').replace("# model.tenant_table",
                                                              "model.tenant_table"))
    with rlskit_db.connect() as conn:
        conn.execute("CREATE TABLE document (id int PRIMARY KEY, tenant_id uuid NOT NULL)")
    made = rlskit("revision", "-m", "protect documents")
    assert made.returncode == 0, made.stderr
    assert "+4 policies" in made.stderr  # tenant isolation, member select/insert/update
    assert rlskit("migrate").returncode == 0
    assert "no changes" in rlskit("revision", "-m", "nothing").stderr
    assert rlskit("downgrade", "-1").returncode == 0
    with rlskit_db.connect() as conn:
        assert conn.execute("SELECT relrowsecurity FROM pg_class WHERE relname = 'document'"
                            ).fetchone()[0] is False
    offline = rlskit("migrate", "--sql", "--pg-version", "15")
    assert offline.returncode == 0 and "CREATE POLICY tenant_isolation" in offline.stdout
    assert "WITH INHERIT" not in offline.stdout  # membership options exist from 16


def test_an_op_written_by_hand_without_its_old_state_cannot_be_reversed():
    dropped = rls_ops.DropPolicyOp(rls_ops._policy_identity("p", "flow", "public"))
    with pytest.raises(ValueError, match="cannot be reversed"):
        dropped.reverse()
    created = rls_ops.CreatePolicyOp(rls_ops._policy_identity("p", "flow", "public"))
    assert type(created.reverse()) is rls_ops.DropPolicyOp
    assert type(created.reverse().reverse()) is rls_ops.CreatePolicyOp



def test_the_same_migrations_in_two_environments(tmp_path, rlskit_cluster):
    """`rlskit migrate --env dev|prod`: one model, one revision, two databases of one cluster,
    each environment's roles under its own prefix."""
    with rlskit_cluster.database() as dev, rlskit_cluster.database() as prod:
        prefixes = {"dev": f"{dev.role_prefix}dev_", "prod": f"{dev.role_prefix}prod_"}
        env = {**os.environ, "RLSKIT_DEV_DATABASE_URL": dev.url,
               "RLSKIT_PROD_DATABASE_URL": prod.url}
        env.pop("RLSKIT_DATABASE_URL", None)
        (tmp_path / "pyproject.toml").write_text('[project]\nname = "app"\n')

        def rlskit(*args: str) -> subprocess.CompletedProcess:
            return subprocess.run([sys.executable, "-m", "rlskit", *args], cwd=tmp_path,
                                  env=env, capture_output=True, text=True, timeout=300)

        assert rlskit("init").returncode == 0
        with (tmp_path / "pyproject.toml").open("a") as f:
            for name, prefix in prefixes.items():
                f.write(f'\n[tool.rlskit.environments.{name}]\nrole_prefix = "{prefix}"\n')
        model_file = tmp_path / "rls_model.py"
        model_file.write_text(model_file.read_text().replace("# model.tenant_table",
                                                              "model.tenant_table"))
        for db in (dev, prod):
            with db.connect() as conn:
                conn.execute("CREATE TABLE document (id int PRIMARY KEY, tenant_id uuid)")
        made = rlskit("revision", "-m", "protect documents", "--database", dev.url)
        assert made.returncode == 0, made.stderr
        for name in ("dev", "prod"):
            done = rlskit("migrate", "--env", name)
            assert done.returncode == 0, done.stderr
            assert f"upgraded ({name}) from base (no revision) to " in done.stderr
            assert rlskit("diff", "--env", name).returncode == 0
        for db, name in ((dev, "dev"), (prod, "prod")):
            with db.connect() as conn:
                roles = conn.execute(
                    "SELECT DISTINCT unnest(polroles::regrole[])::text FROM pg_policy "
                    "WHERE polrelid = 'document'::regclass AND polroles <> '{0}'").fetchall()
            assert {r for (r,) in roles} == {f"{prefixes[name]}member"}
        unknown = rlskit("migrate", "--env", "staging")
        assert unknown.returncode == 2
        assert "unknown environment 'staging' (known: dev, prod)" in unknown.stderr
