"""Verify bearer tokens with PyJWT before their claims become a request context.

A `Verifier` holds exactly one key source — an HMAC secret, a PEM public key, or a JWKS
document (inline or fetched from a URL, cached, re-read at most every `jwks_min_refresh`
seconds when an unknown key id shows up) — and accepts only the algorithms of that key's
family, so ``alg: none`` and HMAC-signed tokens checked against an RSA key (algorithm
confusion) are refused before any signature is computed. The audience and the issuer are
checked unless the configuration turns each check off explicitly; an HMAC secret has at
least 32 bytes; a JWKS comes over https (http only from this machine). Every refusal is a
`TokenError` naming what was wrong, never the configuration.
"""

from __future__ import annotations

import ipaddress
import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from jwt.api_jwk import PyJWK, PyJWKSet

from .errors import ConfigError, TokenError

__all__ = ["HMAC_ALGORITHMS", "MIN_SECRET_BYTES", "Verifier"]

MIN_SECRET_BYTES = 32

HMAC_ALGORITHMS = ("HS256", "HS384", "HS512")
RSA_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")
EC_ALGORITHMS = {"P-256": "ES256", "P-384": "ES384", "P-521": "ES512", "secp256k1": "ES256K"}
EDDSA_ALGORITHMS = ("EdDSA",)
_PEM_CURVES = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521",
               "secp256k1": "secp256k1"}


def _pem_key(pem: str | bytes) -> tuple[Any, tuple[str, ...]]:
    """A PEM public key and the algorithms its family signs with."""
    data = pem.encode() if isinstance(pem, str) else pem
    if b"PRIVATE KEY" in data:
        raise ConfigError("give the verifier the public key, not the private key")
    try:
        key = load_pem_public_key(data)
    except ValueError as exc:
        raise ConfigError(f"public_key is not a PEM public key: {exc}") from None
    if isinstance(key, rsa.RSAPublicKey):
        return key, RSA_ALGORITHMS
    if isinstance(key, ec.EllipticCurvePublicKey):
        curve = _PEM_CURVES.get(key.curve.name)
        if curve is None:
            raise ConfigError(f"EC curve {key.curve.name} is not supported for JWTs")
        return key, (EC_ALGORITHMS[curve],)
    if isinstance(key, (ed25519.Ed25519PublicKey, ed448.Ed448PublicKey)):
        return key, EDDSA_ALGORITHMS
    raise ConfigError(f"unsupported public key type {type(key).__name__}")


def _jwk_algorithms(jwk: Mapping[str, Any]) -> tuple[str, ...]:
    """The algorithms a JWK may verify: its ``alg`` if it names one, else its family's."""
    if jwk.get("alg"):
        return (jwk["alg"],)
    kty = jwk.get("kty")
    if kty == "RSA":
        return RSA_ALGORITHMS
    if kty == "EC" and jwk.get("crv") in EC_ALGORITHMS:
        return (EC_ALGORITHMS[jwk["crv"]],)
    if kty == "OKP":
        return EDDSA_ALGORITHMS
    if kty == "oct":
        return HMAC_ALGORITHMS
    return ()


class _KeySet:
    """JWKS keys by key id, from a document or a URL (cached for `ttl` seconds)."""

    def __init__(self, document: Mapping[str, Any] | None, url: str | None, ttl: float,
                 min_refresh: float, timeout: float) -> None:
        if url is not None:
            _check_jwks_url(url)
        self.url, self.ttl, self.min_refresh, self.timeout = url, ttl, min_refresh, timeout
        self.keys: dict[str | None, tuple[PyJWK, tuple[str, ...]]] = {}
        self.fetched_at = float("-inf")
        self.loaded_at = float("-inf")  # the last successful read
        self.lock = threading.Lock()
        if document is not None:
            self._load(document, "jwks")

    def _load(self, document: Mapping[str, Any], source: str) -> None:
        if not isinstance(document, Mapping) or not isinstance(document.get("keys"), list):
            raise ConfigError(f"{source} is not a JWKS document (an object with 'keys')")
        try:
            keyset = PyJWKSet.from_dict(dict(document))
        except jwt.PyJWTError as exc:
            raise ConfigError(f"{source} holds no usable key: {exc}") from None
        raw = {k.get("kid"): k for k in document["keys"] if isinstance(k, Mapping)}
        self.keys = {key.key_id: (key, _jwk_algorithms(raw.get(key.key_id, {})))
                     for key in keyset.keys}

    def _fetch(self) -> None:
        assert self.url is not None
        self.fetched_at = time.monotonic()
        try:
            with urllib.request.urlopen(self.url, timeout=self.timeout) as response:
                document = json.load(response)
            self._load(document, "the JWKS")
        except (OSError, ValueError, ConfigError) as exc:
            if self.fetched_at - self.loaded_at > 2 * self.ttl:
                self.keys = {}  # keys this stale are no longer trusted
            if not self.keys:
                why = f"HTTP {exc.code}" if isinstance(exc, urllib.error.HTTPError) else \
                    type(exc).__name__
                raise TokenError(f"cannot read the JWKS ({why})") from None
            return  # keep the keys we have for now; the next refresh tries again
        self.loaded_at = self.fetched_at

    def get(self, kid: str | None) -> tuple[PyJWK, tuple[str, ...]]:
        with self.lock:
            now = time.monotonic()
            unknown = kid is not None and kid not in self.keys
            if self.url and (now - self.fetched_at > self.ttl
                             or unknown and now - self.fetched_at > self.min_refresh):
                self._fetch()  # expired, or a rotated key (not re-read for every bad kid)
            if kid is None:
                if len(self.keys) == 1:
                    return next(iter(self.keys.values()))
                raise TokenError(f"token has no key id ('kid') and the JWKS holds "
                                 f"{len(self.keys)} keys")
            if kid not in self.keys:
                raise TokenError(f"token key id {kid[:40]!r} is not in the JWKS")
            return self.keys[kid]


def _check_jwks_url(url: str) -> None:
    """https, or http to this machine only (a JWKS over plain http can be replaced)."""
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme == "https" and parsed.hostname:
        return
    if parsed.scheme == "http" and parsed.hostname:
        host = parsed.hostname
        try:
            if host == "localhost" or ipaddress.ip_address(host).is_loopback:
                return
        except ValueError:
            pass
    raise ConfigError("jwks_url must be an https URL (http only for localhost)")


def _claim_check(name: str, value: Any) -> Any:
    if value is None:
        raise ConfigError(f"the verifier must check the token's {name}: give {name}=... "
                          f"(or {name}=False to turn the check off explicitly)")
    if value is False:
        return None
    return value


class Verifier:
    """Checks a token's signature and registered claims; `verify` returns its claims.

    Give exactly one of `secret` (HS256/384/512, at least 32 bytes), `public_key` (a PEM:
    RS*/PS*, ES*, EdDSA by key type), `jwks` (a JWKS document) or `jwks_url` (https).
    `algorithms` narrows what the key family allows. `audience` and `issuer` are required
    and must match (``False`` turns a check off, explicitly); `leeway` (seconds) applies to
    ``exp``, ``nbf`` and ``iat``; `require` lists claims every token must carry.
    """

    def __init__(
        self,
        *,
        secret: str | bytes | None = None,
        public_key: str | bytes | None = None,
        jwks: Mapping[str, Any] | None = None,
        jwks_url: str | None = None,
        algorithms: Sequence[str] | None = None,
        audience: str | Sequence[str] | bool | None = None,
        issuer: str | bool | None = None,
        leeway: float = 0,
        require: Sequence[str] = ("exp",),
        jwks_ttl: float = 300,
        jwks_min_refresh: float = 30,
        timeout: float = 5,
    ) -> None:
        sources = [s for s in (secret, public_key, jwks, jwks_url) if s is not None]
        if len(sources) != 1:
            raise ConfigError("give the verifier exactly one of secret, public_key, jwks, "
                              "jwks_url")
        self._key: Any = None
        self._keyset: _KeySet | None = None
        if secret is not None:
            raw = secret.encode() if isinstance(secret, str) else secret
            if b"-----BEGIN" in raw or raw.startswith(b"ssh-"):
                raise ConfigError("secret must be a shared secret, not a PEM or SSH key "
                                  "(use public_key=)")
            if len(raw) < MIN_SECRET_BYTES:
                raise ConfigError(f"an HMAC secret must have at least {MIN_SECRET_BYTES} "
                                  f"bytes, this one has {len(raw)}")
            family: tuple[str, ...] = HMAC_ALGORITHMS
            self._key = raw
        elif public_key is not None:
            self._key, family = _pem_key(public_key)
        else:
            self._keyset = _KeySet(jwks, jwks_url, jwks_ttl, jwks_min_refresh, timeout)
            family = HMAC_ALGORITHMS + RSA_ALGORITHMS + tuple(EC_ALGORITHMS.values()) \
                + EDDSA_ALGORITHMS
        chosen = tuple(algorithms) if algorithms is not None else family
        unfit = [a for a in chosen if a not in family]
        if not chosen or unfit:
            raise ConfigError(f"algorithm(s) {', '.join(unfit) or 'none'} cannot be used "
                              f"with this key; use {', '.join(family)}")
        self.algorithms = chosen
        self.audience = _claim_check("audience", audience)
        self.issuer = _claim_check("issuer", issuer)
        self.leeway = leeway
        self.require = tuple(require)

    def verify(self, token: str) -> dict[str, Any]:
        """The claims of a valid token; `TokenError` saying why otherwise."""
        if not isinstance(token, str) or not token:
            raise TokenError("token must be a non-empty string")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise TokenError(f"token is malformed: {str(exc)[:80]}") from None
        alg = header.get("alg")
        if not isinstance(alg, str) or alg.lower() == "none":
            raise TokenError("token algorithm 'none' is not allowed: unsigned tokens are "
                             "refused")
        key, allowed = self._key_for(header)
        allowed = tuple(a for a in allowed if a in self.algorithms)
        if alg not in allowed:
            raise TokenError(f"token algorithm {alg[:20]!r} does not fit the verification key "
                             f"(allowed: {', '.join(allowed) or 'none'})")
        try:
            claims = jwt.decode(
                token, key, algorithms=[alg], audience=self.audience, issuer=self.issuer,
                leeway=self.leeway, options={"require": list(self.require)})
        except jwt.ExpiredSignatureError:
            raise TokenError("token has expired") from None
        except jwt.ImmatureSignatureError as exc:
            raise TokenError(f"token is not yet valid: {exc}") from None
        except jwt.InvalidAudienceError:
            raise TokenError("token audience is wrong") from None
        except jwt.InvalidIssuerError:
            raise TokenError("token issuer is wrong") from None
        except jwt.InvalidSignatureError:
            raise TokenError("token signature is invalid") from None
        except jwt.MissingRequiredClaimError as exc:
            raise TokenError(f"token has no {exc.claim!r} claim") from None
        except jwt.PyJWTError as exc:
            raise TokenError(f"token is invalid: {str(exc)[:80]}") from None
        return claims

    def _key_for(self, header: Mapping[str, Any]) -> tuple[Any, tuple[str, ...]]:
        if self._keyset is None:
            return self._key, self.algorithms
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise TokenError("token key id ('kid') must be a string")
        jwk, allowed = self._keyset.get(kid)
        return jwk.key, allowed
