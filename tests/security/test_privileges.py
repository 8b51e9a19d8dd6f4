"""Privilege holes of the grants store and the authenticator, each attacked on a real
server: who may grant is PostgreSQL's rule or narrower, the authenticator cannot become a
role that administers others, the store's functions are not PUBLIC's."""

from __future__ import annotations

import psycopg
import pytest
from psycopg import errors, sql

from rlskit import access
from rlskit.access.grants import AccessError
from rlskit.context import for_role
from rlskit.errors import ModelError
from rlskit.examples.sales import build_model


def log_size(env) -> int:
    with env.db.connect() as conn:
        return conn.execute("SELECT count(*) FROM rlskit.access_log").fetchone()[0]


def test_the_authenticator_cannot_grant_through_the_store(dev):
    with dev.gateway() as conn, pytest.raises(AccessError, match="may not grant"):
        access.grant(conn, dev.model, "sales_analytics", "analyst",
                     access.grantee(dev.model, user="u-mallory"), "from inside a request")
    assert log_size(dev) == 0


def test_a_membership_without_inherit_cannot_grant_through_the_store(dev):
    eve = dev.person("eve")
    with dev.db.connect(autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE ROLE {} LOGIN NOINHERIT").format(sql.Identifier(eve)))
        options = " WITH INHERIT FALSE, SET FALSE" if dev.db.version >= 16 else ""
        admin.execute(sql.SQL("GRANT {} TO {}" + options).format(
            sql.Identifier(dev.role("owner")), sql.Identifier(eve)))
    with dev.db.connect(user=eve) as conn, pytest.raises(AccessError, match="may not grant"):
        access.grant(conn, dev.model, "sales_analytics", "analyst",
                     access.grantee(dev.model, user="u-eve"), "no inherited admin")
    assert log_size(dev) == 0
    if dev.db.version >= 16:  # and PostgreSQL's own GRANT agrees
        with dev.db.connect(user=eve, autocommit=True) as conn, \
                pytest.raises(psycopg.DatabaseError, match="grantor|permission denied"):
            conn.execute(sql.SQL("GRANT {} TO {}").format(
                sql.Identifier(dev.role("analyst")), sql.Identifier(eve)))
    assert dev.give("analyst", user="u-ann")  # bob, who inherits the owner role, still may


def test_the_authenticator_cannot_become_the_owner_and_grant_natively(dev):
    with dev.gateway() as conn:
        with pytest.raises(errors.InsufficientPrivilege):
            conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(dev.role("owner"))))
        conn.rollback()
        with pytest.raises(errors.InsufficientPrivilege):
            conn.execute(sql.SQL("GRANT {} TO {}").format(
                sql.Identifier(dev.role("analyst")), sql.Identifier(dev.person("dave"))))


def test_a_model_may_not_let_the_authenticator_switch_to_an_administering_role():
    model = build_model("x_")
    owner = model.products["sales_analytics"].owner
    model.authenticator("backdoor", roles=[owner])
    with pytest.raises(ModelError, match="may not switch to 'sales_analytics_owner'"):
        model.validate()


def test_the_store_is_not_public(dev):
    dev.give("analyst", user="u-ann", reason="secret project")
    with dev.db.connect() as admin:
        public = admin.execute(
            "SELECT p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
            "WHERE n.nspname = 'rlskit' AND p.prosecdef AND (p.proacl IS NULL OR EXISTS ("
            "SELECT FROM aclexplode(p.proacl) a WHERE a.grantee = 0 "
            "AND a.privilege_type = 'EXECUTE')) "
            "ORDER BY 1").fetchall()
        assert public == []  # no SECURITY DEFINER function is executable by PUBLIC
    with dev.db.connect(user=dev.person("dave")) as conn:  # a login with no model role
        for call in ("SELECT * FROM rlskit.access_grants()",
                     "SELECT * FROM rlskit.access_history()",
                     "SELECT rlskit.holds(current_user)"):
            with pytest.raises(errors.InsufficientPrivilege), conn.transaction():
                conn.execute(call)
    dev.grant("bob", "analyst", "carol")  # an analyst login: reads no grants, no reasons
    with dev.db.connect(user=dev.person("carol")) as conn:
        assert conn.execute("SELECT * FROM rlskit.access_grants()").fetchall() == []
        assert conn.execute("SELECT * FROM rlskit.access_history()").fetchall() == []
    with dev.db.connect(user=dev.person("bob")) as conn:  # the owner sees the product's
        reasons = [r[-1] for r in conn.execute("SELECT * FROM rlskit.access_grants()")]
        assert "secret project" in reasons


def test_a_person_never_gets_the_authenticators_session(dev):
    with pytest.raises(TypeError):
        access.connect("sales_analytics_analyst", token="t", model=dev.model)  # type: ignore
    with pytest.raises(psycopg.errors.InsufficientPrivilege), \
            dev.db.connect(user=dev.person("dave")) as conn:
        conn.execute(sql.SQL("SET ROLE {}").format(
            sql.Identifier(dev.model.role_name("analytics_gateway"))))


def test_the_psycopg_pool_leaves_nothing_of_a_request_for_the_next(example):
    """A request that creates a temporary table, LISTENs and switches role at session
    level: the next user of the pooled connection finds none of it, and the context
    statement still works (prepared again after DISCARD ALL without a failed exchange)."""
    from psycopg_pool import ConnectionPool

    from rlskit.psycopg import pool_options, transaction

    url = example.db.cluster.url(example.db.name, user=example.role("app_authenticator"))
    a = for_role(example.model, "member", tenant_id=example.data.a.id,
                 user_id=example.data.a.member)
    b = for_role(example.model, "member", tenant_id=example.data.b.id,
                 user_id=example.data.b.member)
    with ConnectionPool(url, min_size=1, max_size=1, open=True,
                        **pool_options(example.model)) as pool:
        count = "SELECT count(*) FROM flow"
        with pool.connection() as conn:
            with transaction(conn, a):
                conn.execute(count, prepare=True)
            (name,) = conn.execute("SELECT name FROM pg_prepared_statements WHERE statement "
                                   "= %s", [count]).fetchone()
            conn.execute(sql.SQL("DEALLOCATE {0}; PREPARE {0} AS SELECT 999::bigint").format(
                sql.Identifier(name)))  # hijack the statement the next request will run
            conn.execute("CREATE TEMP TABLE stash (secret text)")
            conn.execute("LISTEN tenant_a")
            conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(example.role("member"))))
            conn.commit()
            first = conn
        with pool.connection() as conn:
            assert conn is first
            assert conn.execute("SELECT to_regclass('pg_temp.stash')").fetchone() == (None,)
            assert conn.execute("SELECT pg_listening_channels()").fetchall() == []
            assert conn.execute("SELECT current_user").fetchone()[0] == \
                example.role("app_authenticator")
            conn.rollback()
            with transaction(conn, b):
                assert conn.execute(count, prepare=True).fetchone()[0] == \
                    len(example.data.b.flows)


def test_sqlalchemy_resets_a_connection_on_check_in(example):
    from sqlalchemy import create_engine, text

    from rlskit.context import as_context
    from rlskit.sqlalchemy import install
    from rlskit.urls import sqlalchemy_url

    url = example.db.cluster.url(example.db.name, user=example.role("app_authenticator"))
    engine = create_engine(sqlalchemy_url(url), pool_size=1, max_overflow=0)
    install(engine, example.model, require=False)
    ctx = for_role(example.model, "member", tenant_id=example.data.a.id)
    with as_context(ctx), engine.connect() as conn:
        conn.exec_driver_sql("CREATE TEMP TABLE stash (x int)")
        conn.commit()
        conn.exec_driver_sql(f"SET ROLE {example.role('tenant_admin')}")  # session level
        conn.commit()
        first = conn.connection.driver_connection
    with engine.connect() as conn:
        assert conn.connection.driver_connection is first
        assert conn.execute(text("SELECT current_user, to_regclass('pg_temp.stash')")
                            ).one() == (example.role("app_authenticator"), None)
    engine.dispose()


def test_start_up_refuses_createrole_and_the_lint_reports_it(example):
    from rlskit.checks import check_database
    from rlskit.errors import UnsafeConnectionError
    from rlskit.runtime import check_connection

    auth = example.role("app_authenticator")
    url = example.db.cluster.url(example.db.name, user=auth)
    with example.db.connect(autocommit=True) as admin:
        admin.execute(sql.SQL("ALTER ROLE {} CREATEROLE").format(sql.Identifier(auth)))
    try:
        with psycopg.connect(url) as conn, \
                pytest.raises(UnsafeConnectionError, match=f"ALTER ROLE {auth} NOCREATEROLE"):
            check_connection(conn, example.model)
        with example.db.connect() as conn:
            assert [f.object for f in check_database(conn, example.model)
                    if f.rule == "RLS020"] == [auth]
    finally:
        with example.db.connect(autocommit=True) as admin:
            admin.execute(sql.SQL("ALTER ROLE {} NOCREATEROLE").format(sql.Identifier(auth)))


def test_releases_without_the_rls_fixes_are_named():
    from rlskit.releases import upgrade_needed

    assert upgrade_needed(180006) is None and upgrade_needed(150018) is None
    assert "upgrade to 15.9 or later" in upgrade_needed(150008)
    assert "upgrade to 14.14 or later" in upgrade_needed(140013)
    assert "upgrade to 16.5" in upgrade_needed(160004)
    assert "upgrade to 17.1" in upgrade_needed(170000)
    assert "not supported" in upgrade_needed(130022)


def test_psql_gets_no_secret_on_its_command_line(tmp_path, dev, prod):
    """`rlskit connect` hands psql the connection through libpq's environment: the
    password never appears in argv (where `ps` shows it to every local user)."""
    import json
    import os
    import stat
    import sys

    from test_access import cli, project

    env = project(tmp_path, dev, prod)
    fake = tmp_path / "bin" / "psql"
    fake.parent.mkdir()
    fake.write_text(f"#!{sys.executable}\nimport json, os, sys\n"
                    "print(json.dumps({'argv': sys.argv, 'password': os.environ.get("
                    "'PGPASSWORD'), 'options': os.environ.get('PGOPTIONS')}))\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    env["PATH"] = f"{fake.parent}{os.pathsep}{env.get('PATH', '')}"
    dev.give("analyst", user=dev.person("alice"))
    url = psycopg.conninfo.make_conninfo(
        dev.db.cluster.url(dev.db.name, user=dev.person("alice")), password="s3cret-pw")
    ran = cli(tmp_path, env, "connect", "--role", "sales_analytics_analyst", "-d", url,
              "--env", "dev", "--", "-c", "SELECT 1")
    assert ran.returncode == 0, ran.stderr
    seen = json.loads(ran.stdout)
    assert not any("s3cret" in arg for arg in seen["argv"]) and seen["argv"][1:] == \
        ["-c", "SELECT 1"]
    assert seen["password"] == "s3cret-pw"
    assert seen["options"] == f"-c role={dev.role('analyst')}"


def test_a_control_character_cannot_smuggle_a_libpq_option():
    from rlskit.cli.access import _pgoptions
    from rlskit.errors import ConfigError

    assert _pgoptions("dev analyst") == "-c role=dev\\ analyst"
    for evil in ("a\t-c role=postgres", "a\n-c role=postgres", "a\x7f"):
        with pytest.raises(ConfigError, match="control character"):
            _pgoptions(evil)
