"""Token verification: every algorithm family, key sources, and every way a token is bad."""

from __future__ import annotations

import http.server
import json
import threading
import time
import uuid
from collections.abc import Iterator

import pytest
from support.tokens import (
    AUDIENCE,
    ISSUER,
    SECRET,
    Keys,
    claims,
    hmac_with_public_key,
    make_keys,
    public_pem,
    sign,
    unsigned,
)

from rlskit import Claim, ConfigError, ContextError, Model, TokenError
from rlskit.context import from_claims, from_token
from rlskit.jwt import Verifier


@pytest.fixture(scope="module")
def keys() -> Keys:
    return make_keys()


def verifier(**options: object) -> Verifier:
    options.setdefault("secret", SECRET)
    return Verifier(audience=AUDIENCE, issuer=ISSUER, **options)


def test_each_algorithm_family_verifies(keys: Keys) -> None:
    payload = claims(sub="u1")
    for algorithm in ("HS256", "HS384", "HS512"):
        assert verifier().verify(sign(payload, SECRET, algorithm))["sub"] == "u1"
    for algorithm in ("RS256", "RS512", "PS256"):
        token = sign(payload, keys.rsa, algorithm)
        assert verifier(secret=None, public_key=public_pem(keys.rsa)).verify(token)["sub"] == "u1"
    assert verifier(secret=None, public_key=public_pem(keys.ec)).verify(
        sign(payload, keys.ec, "ES256"))["sub"] == "u1"
    assert verifier(secret=None, public_key=public_pem(keys.ed)).verify(
        sign(payload, keys.ed, "EdDSA"))["sub"] == "u1"


def test_leeway_accepts_a_token_just_expired() -> None:
    token = sign(claims(exp=int(time.time()) - 5))
    with pytest.raises(TokenError, match="token has expired"):
        verifier().verify(token)
    assert verifier(leeway=30).verify(token)["aud"] == AUDIENCE


@pytest.mark.parametrize(("case", "message"), [
    ("expired", "token has expired"),
    ("not yet valid", "token is not yet valid"),
    ("wrong audience", "token audience is wrong"),
    ("wrong issuer", "token issuer is wrong"),
    ("bad signature", "token signature is invalid"),
    ("alg none", "algorithm 'none' is not allowed"),
    ("HMAC/RSA confusion", "token algorithm 'HS256' does not fit the verification key"),
    ("unknown kid", "token key id 'rotated-away' is not in the JWKS"),
    ("no exp", "token has no 'exp' claim"),
    ("malformed", "token is malformed"),
])
def test_bad_tokens_are_refused_with_a_specific_error(keys: Keys, case: str,
                                                      message: str) -> None:
    now = int(time.time())
    rsa_verifier = verifier(secret=None, public_key=public_pem(keys.rsa))
    jwks_verifier = verifier(secret=None, jwks=keys.jwks(("k1", keys.rsa)))
    token, check = {
        "expired": (sign(claims(exp=now - 60)), verifier()),
        "not yet valid": (sign(claims(nbf=now + 600)), verifier()),
        "wrong audience": (sign(claims(aud="someone-else")), verifier()),
        "wrong issuer": (sign(claims(iss="https://evil.example")), verifier()),
        "bad signature": (sign(claims(), keys.rsa_other, "RS256"), rsa_verifier),
        "alg none": (unsigned(claims()), verifier()),
        "HMAC/RSA confusion": (hmac_with_public_key(claims(), public_pem(keys.rsa)),
                               rsa_verifier),
        "unknown kid": (sign(claims(), keys.rsa_other, "RS256", kid="rotated-away"),
                        jwks_verifier),
        "no exp": (sign({"aud": AUDIENCE, "iss": ISSUER}), verifier()),
        "malformed": ("not.a.token", verifier()),
    }[case]
    with pytest.raises(TokenError, match=message):
        check.verify(token)


def test_verifier_configuration_is_checked(keys: Keys) -> None:
    with pytest.raises(ConfigError, match="exactly one of"):
        Verifier()
    with pytest.raises(ConfigError, match="not a PEM or SSH key"):
        Verifier(secret=public_pem(keys.rsa))
    with pytest.raises(ConfigError, match="HS256 cannot be used with this key"):
        Verifier(public_key=public_pem(keys.rsa), algorithms=["HS256"])
    with pytest.raises(ConfigError, match="not a JWKS document"):
        Verifier(jwks={"kid": "x"})


@pytest.fixture
def jwks_server(keys: Keys) -> Iterator[dict]:
    """A local JWKS endpoint; `state["document"]` is served, `state["hits"]` counts reads."""
    state = {"document": keys.jwks(("k1", keys.rsa)), "hits": 0}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            state["hits"] += 1
            if state.get("refuse"):
                self.send_response(401)
                self.end_headers()
                self.wfile.write(b"secret-token-in-the-body")
                return
            body = json.dumps(state["document"]).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state["url"] = f"http://127.0.0.1:{server.server_address[1]}/jwks.json"
    try:
        yield state
    finally:
        server.shutdown()


def test_jwks_url_is_cached_and_reread_for_a_rotated_key(keys: Keys, jwks_server: dict
                                                          ) -> None:
    check = verifier(secret=None, jwks_url=jwks_server["url"], jwks_min_refresh=0)
    for _ in range(5):
        assert check.verify(sign(claims(sub="x"), keys.rsa, "RS256", kid="k1"))["sub"] == "x"
    assert jwks_server["hits"] == 1
    jwks_server["document"] = keys.jwks(("k1", keys.rsa), ("k2", keys.rsa_other))
    assert check.verify(sign(claims(sub="y"), keys.rsa_other, "RS256", kid="k2"))["sub"] == "y"
    assert jwks_server["hits"] == 2


def test_unknown_kids_do_not_hammer_the_jwks_endpoint(keys: Keys, jwks_server: dict) -> None:
    check = verifier(secret=None, jwks_url=jwks_server["url"], jwks_min_refresh=60)
    check.verify(sign(claims(), keys.rsa, "RS256", kid="k1"))
    for i in range(5):
        with pytest.raises(TokenError, match="is not in the JWKS"):
            check.verify(sign(claims(), keys.rsa_other, "RS256", kid=f"random-{i}"))
    assert jwks_server["hits"] == 1


def test_cached_keys_expire_when_the_jwks_cannot_be_read_again(keys: Keys, jwks_server: dict
                                                                ) -> None:
    check = verifier(secret=None, jwks_url=jwks_server["url"], jwks_ttl=0.2,
                     jwks_min_refresh=0)
    token = sign(claims(), keys.rsa, "RS256", kid="k1")
    check.verify(token)
    jwks_server["refuse"] = True
    time.sleep(0.25)
    check.verify(token)  # a failed refresh keeps the keys for a while
    time.sleep(0.3)
    with pytest.raises(TokenError) as stale:
        check.verify(token)  # then they expire
    assert str(stale.value) == "cannot read the JWKS (HTTP 401)"  # no URL, no body


def test_unreachable_jwks_is_a_clear_error(keys: Keys) -> None:
    check = verifier(secret=None, jwks_url="http://127.0.0.1:9/jwks.json?token=s3cret",
                     timeout=1)
    with pytest.raises(TokenError, match=r"^cannot read the JWKS \(URLError\)$"):
        check.verify(sign(claims(), keys.rsa, "RS256", kid="k1"))  # no URL in the message


def hasura_model() -> Model:
    """Claims inside a namespaced object, as Hasura issues them."""
    ns = "https://hasura.io/jwt/claims"
    model = Model(role_prefix="h_")
    model.context(tenant_id=Claim((ns, "x-hasura-tenant-id"), type="uuid"),
                  user_id=Claim((ns, "x-hasura-user-id"), type="integer"),
                  beta=Claim((ns, "x-hasura-beta"), type="boolean", required=False))
    viewer = model.role("viewer")
    editor = model.role("editor", inherits=viewer)
    model.role("anon")
    model.callers(role_claim=(ns, "x-hasura-default-role"), groups_claim=(ns, "groups"),
                  anonymous="anon")
    model.assign(editor, role_claim="user")
    model.assign(viewer, attributes={"beta": True})
    model.validate()
    return model


def test_nested_claims_map_to_a_typed_immutable_context() -> None:
    model = hasura_model()
    tenant = uuid.uuid4()
    token = sign(claims(**{"https://hasura.io/jwt/claims": {
        "x-hasura-tenant-id": str(tenant), "x-hasura-user-id": "42",
        "x-hasura-default-role": "user", "x-hasura-beta": "true"}}))
    ctx = from_token(model, verifier(), token)
    assert (ctx.role, ctx.tenant_id, ctx.user_id, ctx.beta) == ("h_editor", tenant, 42, True)
    assert ctx.settings == (("app.tenant_id", str(tenant)), ("app.user_id", "42"),
                            ("app.beta", "true"))
    with pytest.raises(AttributeError):
        ctx.role = "h_admin"  # type: ignore[misc]
    with pytest.raises(TypeError):
        ctx.values["tenant_id"] = uuid.uuid4()  # type: ignore[index]
    assert from_token(model, verifier(), token, role="viewer").role == "h_viewer"
    assert from_token(model, verifier(), None).role == "h_anon"


@pytest.mark.parametrize(("hasura", "role", "message"), [
    ({"x-hasura-tenant-id": "not-a-uuid", "x-hasura-user-id": 1},
     None, "claim 'https://hasura.io/jwt/claims.x-hasura-tenant-id' must be a UUID"),
    ({"x-hasura-user-id": 1}, None, "token has no 'https://hasura.io/jwt/claims.x-hasura-"
                                    "tenant-id' claim"),
    ({"x-hasura-tenant-id": str(uuid.UUID(int=1)), "x-hasura-user-id": True},
     None, "must be an integer, got bool True"),
    ({"x-hasura-tenant-id": str(uuid.UUID(int=1)), "x-hasura-user-id": 1,
      "x-hasura-default-role": "user"}, "admin", "role 'admin' is not granted"),
    ({"x-hasura-tenant-id": str(uuid.UUID(int=1)), "x-hasura-user-id": 1,
      "x-hasura-default-role": "superuser"}, None, "the model gives this caller no role"),
    ({"x-hasura-tenant-id": str(uuid.UUID(int=1)), "x-hasura-user-id": 2**40},
     None, "out of range for integer"),
])
def test_claims_that_do_not_fit_the_model(hasura: dict, role: str | None,
                                          message: str) -> None:
    with pytest.raises(ContextError, match=message):
        from_claims(hasura_model(), {"https://hasura.io/jwt/claims": hasura}, role=role)


def test_no_token_without_an_anonymous_role_is_refused() -> None:
    model = Model()
    model.role("member")
    with pytest.raises(ContextError, match="declares no anonymous role"):
        from_token(model, verifier(), None)
