"""Red team: SQL sent inside a sealed request cannot change its tenant, its user or its role.

Every attack runs inside a real request transaction (``rlskit.psycopg.transaction``, the
example's ``read_only`` or ``member`` in tenant A, through the authenticator) and must get
no rows of tenant B and write nothing anywhere; where it makes sense, the request's own
tenant works again once the attacker's change is undone.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from contextlib import nullcontext

import psycopg
import pytest
from conftest import Example, owner_login
from psycopg import errors, sql

from rlskit.context import RequestContext, for_role
from rlskit.errors import UnsafeConnectionError
from rlskit.keystore import key_status, list_keys, retire, rotate
from rlskit.psycopg import transaction
from rlskit.runtime import check_connection
from rlskit.seal import SEAL_SETTING, ContextKey, current_key, use_key


def url(example: Example, role: str = "app_authenticator") -> str:
    return example.db.cluster.url(example.db.name, user=example.role(role))


def context(example: Example, role: str = "read_only") -> RequestContext:
    return for_role(example.model, role, tenant_id=example.data.a.id,
                    user_id=example.data.a.reader)


def visible(example: Example, conn: psycopg.Connection) -> dict[str, int]:
    """Flows and memberships visible now, by tenant ('A', 'B')."""
    a, b = example.data.a.id, example.data.b.id
    out: dict[str, int] = {}
    for table in ("flow", "membership"):
        try:
            with conn.transaction():  # a savepoint: a refusal leaves the request usable
                rows = conn.execute(sql.SQL("SELECT tenant_id FROM {}").format(
                    sql.Identifier(table))).fetchall()
        except errors.InsufficientPrivilege:
            rows = []
        for (tenant,) in rows:
            key = "A" if tenant == a else "B" if tenant == b else "other"
            out[f"{table} {key}"] = out.get(f"{table} {key}", 0) + 1
    return out


def writes(example: Example, conn: psycopg.Connection) -> list[str]:
    """Every write the attacker attempts in either tenant that the database lets through."""
    done = []
    attempts = {
        "insert B": ("INSERT INTO flow (tenant_id, name) VALUES (%s, 'x')", [example.data.b.id]),
        "insert A": ("INSERT INTO flow (tenant_id, name) VALUES (%s, 'x')", [example.data.a.id]),
        "update": ("UPDATE flow SET name = 'pwned'", []),
        "delete": ("DELETE FROM membership", []),
    }
    for what, (statement, params) in attempts.items():
        try:
            with conn.transaction():
                if conn.execute(statement, params).rowcount:
                    done.append(what)
        except (errors.InsufficientPrivilege, errors.CheckViolation):
            pass
    return done


def attack(example: Example, steps: Callable[[psycopg.Connection], None], *,
           role: str = "read_only", prepare_threshold: int | None = 5, ignored: bool = False,
           restore: Callable[[psycopg.Connection], None] | None = None) -> None:
    """Inside a sealed request: run the attacker's `steps`, then nothing of B is visible and
    no write succeeds anywhere. Either nothing at all is visible, or (`ignored`: the attack
    changed what the seal does not rely on) exactly what the request saw before; `restore`
    undoes the attack, after which tenant A works again."""
    with psycopg.connect(url(example), prepare_threshold=prepare_threshold) as conn, \
            transaction(conn, context(example, role)):
        before = visible(example, conn)
        assert before["flow A"] == len(example.data.a.flows)  # the request works
        steps(conn)
        seen = visible(example, conn)
        assert not any(k.endswith(" B") or k.endswith(" other") for k in seen), seen
        assert seen == (before if ignored else {}), seen
        assert writes(example, conn) == []
        if restore is not None:
            restore(conn)
            assert visible(example, conn) == before
        raise psycopg.Rollback()


def set_setting(name: str, value: object) -> Callable[[psycopg.Connection], None]:
    def step(conn: psycopg.Connection) -> None:
        conn.execute("SELECT set_config(%s, %s, true)", [name, str(value)])
    return step


@pytest.mark.parametrize("prepare_threshold", [5, None])
def test_a_forged_tenant_changes_nothing(example, prepare_threshold):
    """The helpers read the signed body of the seal, not the setting."""
    attack(example, set_setting("app.tenant_id", example.data.b.id), ignored=True,
           prepare_threshold=prepare_threshold)


def test_a_forged_user_or_any_other_claim_changes_nothing(example):
    attack(example, set_setting("app.user_id", example.data.b.admin), ignored=True)
    attack(example, set_setting("app.department", "Finance"), ignored=True)

    def everything(conn: psycopg.Connection) -> None:
        conn.execute("SELECT set_config('app.tenant_id', %s, true), set_config('app.user_id', "
                     "%s, true)", [str(example.data.b.id), str(example.data.b.admin)])
    attack(example, everything, ignored=True)


def test_switching_role_inside_the_request_gets_nothing(example):
    admin = example.role("tenant_admin")

    def by_set_config(conn: psycopg.Connection) -> None:
        conn.execute("SELECT set_config('role', %s, true)", [admin])

    def by_set_role(conn: psycopg.Connection) -> None:
        conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(admin)))

    def reset_then_set(conn: psycopg.Connection) -> None:
        conn.execute("RESET ROLE")
        conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(example.role("member"))))

    def with_forged_tenant_too(conn: psycopg.Connection) -> None:  # the exact attack
        conn.execute("SELECT set_config('role', %s, true), set_config('app.tenant_id', %s, "
                     "true)", [admin, str(example.data.b.id)])

    back = example.role("read_only")
    for steps in (by_set_config, by_set_role, reset_then_set):
        attack(example, steps, restore=lambda conn: conn.execute(
            sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(back))))
    attack(example, with_forged_tenant_too)


def seal_with(seal: Callable[[ContextKey, RequestContext], str]
              ) -> Callable[[Example], Callable[[psycopg.Connection], None]]:
    """An attack that replaces the request's seal with `seal(key, ctx)`."""
    def for_example(example: Example) -> Callable[[psycopg.Connection], None]:
        def step(conn: psycopg.Connection) -> None:
            conn.execute("SELECT set_config(%s, %s, true)",
                         [SEAL_SETTING, seal(current_key(), context(example))])
        return step
    return for_example


def rebuilt(seal: str, kid: str | None = None, expires: str | None = None,
            names: str | None = None, mac: str | None = None) -> str:
    parts = seal.split(":")
    return ":".join([kid or parts[0], expires or parts[1], names or parts[2], mac or parts[3]])


FORGED_SEALS = {
    "expired (replayed after its expiry)":
        lambda key, ctx: key.seal(ctx.role, ctx.settings, now=time.time() - key.ttl - 1),
    "signed for another role (member used by read_only)":
        lambda key, ctx: key.seal(f"{ctx.role[:-len('read_only')]}member", ctx.settings),
    "signed with a wrong key under the right id":
        lambda key, ctx: ContextKey.generate(key.kid).seal(ctx.role, ctx.settings),
    "truncated":
        lambda key, ctx: key.seal(ctx.role, ctx.settings)[:-1],
    "re-ordered":
        lambda key, ctx: ":".join(reversed(key.seal(ctx.role, ctx.settings).split(":"))),
    "expiry pushed into the future":
        lambda key, ctx: rebuilt(key.seal(ctx.role, ctx.settings), expires="9999999999"),
    "a setting dropped from the names it covers":
        lambda key, ctx: rebuilt(key.seal(ctx.role, ctx.settings),
                                 names="app.tenant_id,app.user_id"),
    "names that are not settings":
        lambda key, ctx: rebuilt(key.seal(ctx.role, ctx.settings), names="x,,'); --"),
    "empty": lambda key, ctx: "",
    "garbage": lambda key, ctx: "x:y:z:w",
}


@pytest.mark.parametrize("case", sorted(FORGED_SEALS))
def test_a_forged_or_replayed_seal_gets_nothing(example, case):
    attack(example, seal_with(FORGED_SEALS[case])(example))


def test_a_seal_of_a_retired_key_gets_nothing(example):
    old = current_key()
    with example.db.connect(autocommit=True) as admin:
        rotate(admin, "rlskit", ContextKey.generate("next"))
        assert retire(admin, "rlskit", old.kid)
        assert admin.execute("SELECT inner_pad, outer_pad FROM rlskit.context_key WHERE id = %s",
                             [old.kid]).fetchone() == (None, None)  # the secret is gone
    with psycopg.connect(url(example)) as conn, transaction(conn, context(example)):
        assert visible(example, conn) == {}  # sealed with the retired key: nothing


def test_calling_the_verifier_directly_gives_nothing_useful(example):
    with psycopg.connect(url(example)) as conn, transaction(conn, context(example)):
        ask = "SELECT rlskit.sealed_setting(%s, %s)"
        me, admin = example.role("read_only"), example.role("tenant_admin")
        tenant_a = str(example.data.a.id)
        assert conn.execute(ask, [me, "app.tenant_id"]).fetchone()[0] == tenant_a  # my own
        assert conn.execute(ask, [admin, "app.tenant_id"]).fetchone()[0] is None
        assert conn.execute(ask, [me, "role"]).fetchone()[0] == me  # only what the seal says
        assert conn.execute(ask, [me, "search_path"]).fetchone()[0] is None
        assert conn.execute(ask, [me, None]).fetchone()[0] is None
        conn.execute("SELECT set_config('app.tenant_id', %s, true)", [str(example.data.b.id)])
        assert conn.execute(ask, [me, "app.tenant_id"]).fetchone()[0] == tenant_a  # the seal's
        for crafted in ("'); SELECT 1; --", "app.tenant_id' OR '1'='1", "x" * 10_000):
            assert conn.execute(ask, [crafted, crafted]).fetchone()[0] is None
    with psycopg.connect(url(example)) as conn, \
            pytest.raises(errors.InsufficientPrivilege):  # not even callable outside a role
        conn.execute("SELECT rlskit.sealed_setting(current_user, 'app.tenant_id')")


@pytest.mark.parametrize("role", ["app_authenticator", "read_only", "member", "tenant_admin",
                                  "runner", "table owner"])
def test_no_application_role_reads_or_writes_the_keys(example, role):
    login = example.owner if role == "table owner" else example.role("app_authenticator")
    with (owner_login(example) if role == "table owner" else nullcontext()), \
            example.db.connect(user=login) as conn:
        if role not in ("app_authenticator", "table owner"):
            conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(example.role(role))))
        for statement in ("SELECT * FROM rlskit.context_key",
                          "SELECT inner_pad FROM rlskit.context_key",
                          "INSERT INTO rlskit.context_key (id) VALUES ('mine')",
                          "UPDATE rlskit.context_key SET retired_at = NULL",
                          "DELETE FROM rlskit.context_key"):
            with pytest.raises(errors.InsufficientPrivilege), conn.transaction():
                conn.execute(statement)
    with example.db.connect() as admin:  # and the key owner is nobody's role
        members = admin.execute(
            "SELECT count(*) FROM pg_auth_members a JOIN pg_roles r ON r.oid = a.roleid "
            "WHERE r.rolname = %s", [example.model.key_owner]).fetchone()[0]
        assert members == 0
        login, bypass, owns_keys = admin.execute(
            "SELECT r.rolcanlogin, r.rolbypassrls, pg_get_userbyid(c.relowner) = r.rolname "
            "FROM pg_roles r, pg_class c WHERE r.rolname = %s "
            "AND c.oid = 'rlskit.context_key'::regclass", [example.model.key_owner]).fetchone()
        assert (login, bypass, owns_keys) == (False, False, True)


def test_the_key_never_reaches_a_revision_or_the_generated_sql(example):
    from rlskit import generate_sql

    script = generate_sql(example.model)
    key = current_key()
    assert key.text().split(":")[1] not in script
    assert key.pads()[0].hex() not in script
    assert "INSERT INTO rlskit.context_key" not in script


def test_start_up_refuses_a_key_the_database_does_not_accept(example):
    good = current_key()
    with psycopg.connect(url(example)) as conn:
        check_connection(conn, example.model)
        for key, why in ((ContextKey.generate("nobody-knows"), "is not known to the database"),
                         (ContextKey.generate(good.kid), "does not match")):
            use_key(key)
            try:
                with pytest.raises(UnsafeConnectionError, match=why):
                    check_connection(conn, example.model)
            finally:
                use_key(good)
        assert key_status(conn, "rlskit", good) == "ok"


def test_start_up_refuses_a_clock_that_would_expire_every_seal(example, monkeypatch):
    with psycopg.connect(url(example)) as conn:
        monkeypatch.setattr(time, "time", lambda: 10_000.0)  # the app's clock, years behind
        with pytest.raises(UnsafeConnectionError, match="clock is .* behind the database"):
            check_connection(conn, example.model)


def test_keys_rotate_without_downtime(example):
    """Transactions run without pause while a new key is added, the application moves to
    it and the old key is retired: none fails until retirement, every one sealed with the
    old key after it."""
    old, new = current_key(), ContextKey.generate("rotated")
    results: list[tuple[str, str, int]] = []  # (phase, signing key, flows of A seen)
    phase = ["before"]
    stop = threading.Event()
    ctx = context(example)

    def run(conn: psycopg.Connection, key: ContextKey, label: str) -> None:
        started = phase[0]
        with transaction(conn, ctx, key=key):
            (n,) = conn.execute("SELECT count(*) FROM flow").fetchone()
        if phase[0] == started:  # a transaction that straddles a step proves nothing
            results.append((f"{started}{label}", key.kid, n))

    def traffic() -> None:
        with psycopg.connect(url(example)) as conn:
            while not stop.is_set():
                run(conn, new if phase[0] in ("moved", "retired") else old, "")
                run(conn, old, " (old key)")  # a laggard still signing with the old key

    worker = threading.Thread(target=traffic)
    worker.start()
    try:
        with example.db.connect(autocommit=True) as admin:
            for step, change in (("rotated", lambda: rotate(admin, "rlskit", new)),
                                 ("moved", lambda: None),
                                 ("retired", lambda: retire(admin, "rlskit", old.kid))):
                time.sleep(0.3)
                change()
                phase[0] = step
            time.sleep(0.3)
    finally:
        stop.set()
        worker.join()
    a_flows = len(example.data.a.flows)
    assert {"before", "rotated", "moved", "retired", "retired (old key)"} <= \
        {label for label, _, _ in results}
    for label, kid, n in results:
        assert n == (0 if label == "retired (old key)" else a_flows), (label, kid, n)
    with example.db.connect() as admin:
        assert [(k.kid, k.retired_at is not None) for k in list_keys(admin, "rlskit")] == \
            [(old.kid, True), (new.kid, False)]


def test_an_attack_through_pgbouncer_gets_nothing_either(example):
    from test_pgbouncer import bouncer

    with bouncer(example, pool_size=1) as bounced, \
            psycopg.connect(bounced, prepare_threshold=None) as conn, \
            transaction(conn, context(example)):
        assert visible(example, conn)["flow A"] == len(example.data.a.flows)
        conn.execute("SELECT set_config('role', %s, true), set_config('app.tenant_id', %s, "
                     "true)", [example.role("tenant_admin"), str(example.data.b.id)])
        assert visible(example, conn) == {}
        assert writes(example, conn) == []
        raise psycopg.Rollback()


def test_the_same_attack_through_asyncio_and_sqlalchemy_gets_nothing(example):
    """Every runtime path seals: psycopg's asyncio connections and SQLAlchemy engines
    (sync and asyncio) refuse the issue's injected statement alike."""
    import asyncio

    from sqlalchemy import create_engine
    from sqlalchemy.ext.asyncio import create_async_engine

    from rlskit.context import as_context
    from rlskit.sqlalchemy import install
    from rlskit.urls import sqlalchemy_url

    inject = ("SELECT set_config('role', %(role)s, true), "
              "set_config('app.tenant_id', %(tenant)s, true)")
    values = {"role": example.role("tenant_admin"), "tenant": str(example.data.b.id)}
    ctx = context(example)
    b = example.data.b.id

    async def through_async_engine() -> list:
        engine = create_async_engine(sqlalchemy_url(url(example)))
        install(engine, example.model)
        with as_context(ctx):
            async with engine.connect() as conn:
                await conn.exec_driver_sql(inject, values)
                rows = (await conn.exec_driver_sql("SELECT tenant_id FROM flow")).all()
        await engine.dispose()
        return rows

    seen: list = []

    async def run_async() -> None:
        aconn = await psycopg.AsyncConnection.connect(url(example))
        async with aconn, transaction(aconn, ctx):
            await aconn.execute(inject, values)
            seen.extend(await (await aconn.execute("SELECT tenant_id FROM flow")).fetchall())
            raise psycopg.Rollback()  # quietly: nothing of the attack is kept
        seen.extend(await through_async_engine())

    asyncio.run(run_async())
    engine = create_engine(sqlalchemy_url(url(example)))
    install(engine, example.model)
    with as_context(ctx), engine.connect() as conn:
        conn.exec_driver_sql(inject, values)
        seen.extend(conn.exec_driver_sql("SELECT tenant_id FROM flow").all())
        conn.rollback()
    engine.dispose()
    assert [row for row in seen if row[0] == b] == [] and seen == []


def test_the_key_commands_rotate_list_and_retire(example, tmp_path):
    import json
    import os
    import stat
    import subprocess
    import sys

    def rlskit(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "rlskit", *args, "-d", example.db.url,
                               "--model", "rlskit.examples.saas:model"], cwd=tmp_path,
                              capture_output=True, text=True, timeout=120,
                              env={**os.environ, "RLSKIT_DATABASE_URL": ""})

    made = rlskit("key", "rotate", "--id", "k-file", "--out", str(tmp_path / "app.key"))
    assert made.returncode == 0, made.stderr
    assert stat.S_IMODE((tmp_path / "app.key").stat().st_mode) == 0o600
    from_file = ContextKey.parse((tmp_path / "app.key").read_text())
    assert from_file.kid == "k-file" and from_file.text() not in made.stdout + made.stderr
    printed = rlskit("key", "rotate", "--id", "k-printed")
    assert printed.returncode == 0 and printed.stdout.startswith("RLSKIT_CONTEXT_KEY=k-printed:")
    with example.db.connect() as conn:
        assert key_status(conn, "rlskit", from_file) == "ok"
        assert key_status(conn, "rlskit", ContextKey.parse(
            printed.stdout.strip().partition("=")[2])) == "ok"
    assert rlskit("key", "retire", "k-file").returncode == 0
    listed = json.loads(rlskit("key", "list", "--format", "json").stdout)
    assert [(k["id"], k["retired_at"] is not None) for k in listed][-2:] == \
        [("k-file", True), ("k-printed", False)]
    again = rlskit("key", "retire", "k-file")
    assert again.returncode == 2 and "no live context key 'k-file'" in again.stderr
    assert rlskit("key", "rotate", "--id", "k-printed").returncode == 2  # ids are unique
