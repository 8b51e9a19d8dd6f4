"""Signing keys and token builders for the runtime tests (real keys, real signatures)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

SECRET = "a-shared-secret-long-enough-for-hs512-" + "x" * 32  # 70 bytes
AUDIENCE = "rlskit-tests"
ISSUER = "https://issuer.example"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def public_pem(private: Any) -> bytes:
    return private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


@dataclass(frozen=True)
class Keys:
    rsa: rsa.RSAPrivateKey
    rsa_other: rsa.RSAPrivateKey
    ec: ec.EllipticCurvePrivateKey
    ed: ed25519.Ed25519PrivateKey

    def jwks(self, *pairs: tuple[str, Any]) -> dict[str, Any]:
        """A JWKS document holding the public halves of `pairs` (kid, private key)."""
        keys = []
        for kid, private in pairs:
            jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(private.public_key())
                             if isinstance(private, rsa.RSAPrivateKey) else
                             jwt.algorithms.ECAlgorithm.to_jwk(private.public_key()))
            keys.append({**jwk, "kid": kid, "use": "sig"})
        return {"keys": keys}


def make_keys() -> Keys:
    return Keys(
        rsa.generate_private_key(public_exponent=65537, key_size=2048),
        rsa.generate_private_key(public_exponent=65537, key_size=2048),
        ec.generate_private_key(ec.SECP256R1()),
        ed25519.Ed25519PrivateKey.generate(),
    )


def claims(**extra: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"iat": now, "exp": now + 300, "aud": AUDIENCE, "iss": ISSUER, **extra}


def sign(payload: dict[str, Any], key: Any = SECRET, algorithm: str = "HS256",
         kid: str | None = None) -> str:
    headers = {"kid": kid} if kid else None
    return jwt.encode(payload, key, algorithm=algorithm, headers=headers)


def unsigned(payload: dict[str, Any]) -> str:
    """An ``alg: none`` token, as an attacker writes it."""
    header = b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    return f"{header}.{b64(json.dumps(payload).encode())}."


def hmac_with_public_key(payload: dict[str, Any], pem: bytes) -> str:
    """The algorithm-confusion forgery: HS256 keyed with the server's RSA public key."""
    header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(json.dumps(payload).encode())
    signature = hmac.new(pem, f"{header}.{body}".encode(), hashlib.sha256).digest()
    return f"{header}.{body}.{b64(signature)}"
