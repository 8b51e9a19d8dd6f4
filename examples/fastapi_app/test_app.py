"""The FastAPI example against real PostgreSQL, through FastAPI's test client."""

from __future__ import annotations

import time
from collections.abc import Iterator

import jwt
import pytest
from app import create_app
from fastapi.testclient import TestClient

from rlskit.examples.install import ExampleData, install
from rlskit.examples.saas import build_model
from rlskit.jwt import Verifier
from rlskit.testing import ScratchDatabase

SECRET = "example-secret-" * 4
AUDIENCE, ISSUER = "flows-api", "https://auth.example"


def token(tenant: object, user: object, role: str = "member", **extra: object) -> str:
    claims = {"tenant_id": str(tenant), "sub": str(user), "role": role, "aud": AUDIENCE,
              "iss": ISSUER, "exp": int(time.time()) + 300, **extra}
    return jwt.encode(claims, SECRET, algorithm="HS256")


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


@pytest.fixture
def api(rlskit_db: ScratchDatabase) -> Iterator[tuple[TestClient, ExampleData]]:
    model = build_model(role_prefix=rlskit_db.role_prefix)
    data = install(rlskit_db.url, model, rlskit_db.role_prefix + "owner")
    url = rlskit_db.cluster.url(rlskit_db.name, user=model.role_name("app_authenticator"))
    verifier = Verifier(secret=SECRET, audience=AUDIENCE, issuer=ISSUER)
    with TestClient(create_app(url, verifier, model)) as client:
        yield client, data


def test_each_token_sees_its_own_tenant(api: tuple[TestClient, ExampleData]) -> None:
    client, data = api
    for tenant in (data.a, data.b, data.a):  # switching tenant is a new token
        response = client.get("/flows", headers=bearer(token(tenant.id, tenant.member)))
        assert response.status_code == 200
        assert {f["id"] for f in response.json()} == {str(f) for f in tenant.flows}


def test_writes_stay_in_the_callers_tenant(api: tuple[TestClient, ExampleData]) -> None:
    client, data = api
    a, b = bearer(token(data.a.id, data.a.member)), bearer(token(data.b.id, data.b.member))
    created = client.post("/flows", json={"name": "quarterly report"}, headers=a)
    assert created.status_code == 201
    assert created.json()["id"] in {f["id"] for f in client.get("/flows", headers=a).json()}
    assert created.json()["id"] not in {f["id"] for f in client.get("/flows", headers=b).json()}


def test_roles_decide_what_a_caller_may_do(api: tuple[TestClient, ExampleData]) -> None:
    client, data = api
    viewer = bearer(token(data.a.id, data.a.reader, role="viewer"))
    denied = client.post("/flows", json={"name": "nope"}, headers=viewer)
    assert denied.status_code == 403
    assert "permission denied for table flow" in denied.json()["detail"]
    member = bearer(token(data.a.id, data.a.member))
    assert client.delete(f"/memberships/{data.a.reader}", headers=member).status_code == 404
    admin = bearer(token(data.a.id, data.a.admin, role="admin"))
    assert client.delete(f"/memberships/{data.a.reader}", headers=admin).status_code == 204
    assert client.delete(f"/memberships/{data.b.reader}", headers=admin).status_code == 404
    emails = {m["email"] for m in client.get("/directory", headers=member).json()}
    assert "a-member@example.com" in emails and "b-member@example.com" not in emails


@pytest.mark.parametrize(("headers", "status", "message"), [
    ({}, 401, "declares no anonymous role"),
    (bearer("garbage"), 401, "token is malformed"),
    (bearer(jwt.encode({"exp": 1, "tenant_id": "x"}, SECRET)), 401, "token has expired"),
    (bearer(jwt.encode({"exp": 2**33}, "not-the-secret-" * 4)), 401, "signature is invalid"),
    ({**bearer("{member}"), "X-Role": "tenant_admin"}, 403,
     "role 'tenant_admin' is not granted"),
])
def test_bad_requests_are_refused_with_the_reason(api: tuple[TestClient, ExampleData],
                                                  headers: dict, status: int,
                                                  message: str) -> None:
    client, data = api
    if headers.get("Authorization") == "Bearer {member}":
        headers = {**headers, **bearer(token(data.a.id, data.a.member))}
    response = client.get("/flows", headers=headers)
    assert response.status_code == status
    assert message in response.json()["detail"]
