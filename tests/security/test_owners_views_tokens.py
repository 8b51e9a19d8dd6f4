"""Owners, PostgreSQL 14 views and tokens (issue 15, items 3, 5 and 12), attacked on a real
server where there is one: a superuser-owned table is reported and verify sees its owner
read every tenant; a view that would run with its owner's rights on 14 is refused; tokens
without an audience or issuer check, short secrets, plain-http key sets and oversized
claims are refused without echoing configuration or the claim."""

from __future__ import annotations

import time

import jwt
import pytest
from conftest import Example
from psycopg import sql

from rlskit import ModelError, generate_sql
from rlskit.checks import check_database
from rlskit.context import from_claims
from rlskit.errors import ConfigError, ContextError, TokenError
from rlskit.examples.saas import build_model
from rlskit.jwt import Verifier
from rlskit.verify import verify_database


def test_the_tables_belong_to_a_role_force_binds(example: Example) -> None:
    with example.db.connect() as conn:
        login, bypass, superuser = conn.execute(
            "SELECT rolcanlogin, rolbypassrls, rolsuper FROM pg_roles WHERE rolname = %s",
            [example.model.owner_name]).fetchone()
        assert (login, bypass, superuser) == (False, False, False)
        owners = {o for (o,) in conn.execute(
            "SELECT DISTINCT pg_get_userbyid(relowner) FROM pg_class "
            "WHERE relname IN ('tenant', 'users', 'membership', 'flow') AND relkind = 'r'")}
        assert owners == {example.model.owner_name}
        assert verify_database(conn, example.model).ok
        # what the issue found: a superuser owner that FORCE does not bind
        conn.execute(sql.SQL("ALTER TABLE {} OWNER TO CURRENT_USER").format(
            sql.Identifier("flow")))
        assert [f.object for f in check_database(conn, example.model)
                if f.rule == "RLS026"] == ["public.flow"]
        conn.rollback()


def test_postgresql_14_never_gets_a_view_that_shows_every_tenant() -> None:
    with pytest.raises(ModelError, match="PostgreSQL 14 has no security_invoker"):
        generate_sql(build_model(), pg_version=14)


SECRET = "s" * 40


def test_a_verifier_checks_audience_and_issuer_unless_told_not_to() -> None:
    with pytest.raises(ConfigError, match="must check the token's audience"):
        Verifier(secret=SECRET, issuer="https://auth.example")
    with pytest.raises(ConfigError, match="must check the token's issuer"):
        Verifier(secret=SECRET, audience="api")
    loose = Verifier(secret=SECRET, audience=False, issuer=False)  # explicit, on purpose
    assert loose.verify(jwt.encode({"exp": int(time.time()) + 60}, SECRET))
    strict = Verifier(secret=SECRET, audience="api", issuer="https://auth.example")
    with pytest.raises(TokenError, match="^token has no '(aud|iss)' claim$"):
        strict.verify(jwt.encode({"exp": int(time.time()) + 60}, SECRET))
    with pytest.raises(TokenError) as wrong:
        strict.verify(jwt.encode({"exp": int(time.time()) + 60, "aud": "other",
                                  "iss": "https://auth.example"}, SECRET))
    assert str(wrong.value) == "token audience is wrong"  # no expected value in the error


def test_short_secrets_and_plain_http_key_sets_are_refused() -> None:
    with pytest.raises(ConfigError, match="at least 32 bytes, this one has 12"):
        Verifier(secret="short-secret", audience="a", issuer="i")
    for url in ("http://auth.example/jwks.json", "ftp://auth.example/jwks.json", "jwks.json"):
        with pytest.raises(ConfigError, match="must be an https URL"):
            Verifier(jwks_url=url, audience="a", issuer="i")
    Verifier(jwks_url="http://127.0.0.1:9/jwks.json", audience="a", issuer="i")  # loopback


def test_an_oversized_claim_is_not_echoed() -> None:
    model = build_model()
    huge = "x" * 1_000_000
    with pytest.raises(ContextError) as refused:
        from_claims(model, {"tenant_id": "00000000-0000-0000-0000-000000000001",
                            "sub": "00000000-0000-0000-0000-000000000002",
                            "role": huge})
    assert len(str(refused.value)) < 300
    with pytest.raises(ContextError) as refused:
        from_claims(model, {"tenant_id": huge, "sub": "x", "role": "member"})
    assert len(str(refused.value)) < 300
