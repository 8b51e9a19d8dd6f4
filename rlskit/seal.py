"""The sealed request context: what the application signs and the database verifies.

A context is sealed with a `ContextKey` the application and the database share: next to
the role and the settings, the runtime sets ``rlskit.seal`` to ``<key id>:<expiry>:<mac>:
<body>``, where the body is the role and every context setting's name and value as JSON,
and the MAC an HMAC-SHA256 over the key id, the expiry and the body. The helpers read their
values from a body whose MAC verifies and whose role is ``current_user`` (see
`rlskit.keystore`): SQL sent inside a request that changes a setting changes nothing, and
one that changes the role (or forges the seal) gets NULL from every helper, so every
policy fails closed.

The application's key comes from `use_key` or, by default, from the environment variable
``RLSKIT_CONTEXT_KEY`` (or the variable or file named by ``[tool.rlskit.context]``); it is
never taken from argv and never printed.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
import secrets
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import cached_property, lru_cache
from json.encoder import encode_basestring as _json  # a JSON string literal (C, when built)
from pathlib import Path
from typing import Any

from .context import RequestContext, context_settings
from .errors import ConfigError, ContextError
from .model import Model

__all__ = [
    "DEFAULT_KEY_ENV",
    "DEFAULT_TTL",
    "SEAL_SETTING",
    "ContextKey",
    "current_key",
    "payload",
    "seal_setting",
    "sealed_settings",
    "session_settings",
    "use_key",
]

SEAL_SETTING = "rlskit.seal"
DEFAULT_KEY_ENV = "RLSKIT_CONTEXT_KEY"
DEFAULT_TTL = 30  # seconds a seal stays valid: past a request transaction's expected life
KEY_ID = re.compile(r"^[A-Za-z0-9_-]{1,40}$")
KEY_CHECK = "rlskit key check"  # what the start-up check signs to prove the key matches
_MIN_SECRET = 32


def payload(role: str, settings: Iterable[tuple[str, str]]) -> str:
    """The signed body of a seal: the role and the settings as a compact JSON object (the
    database reads the values from this body, once its MAC verifies)."""
    fields = "".join(f",{_json(name)}:{_json(value)}" for name, value in settings)
    return f'{{"role":{_json(role)}{fields}}}'


@dataclass(frozen=True)
class ContextKey:
    """A sealing key: its id (known to the database's key table) and its secret.

    The text form, ``<id>:<secret in base64url>``, is what `rlskit key rotate` prints once
    and what ``RLSKIT_CONTEXT_KEY`` holds. The secret never appears in a repr."""

    kid: str
    secret: bytes = field(repr=False)
    ttl: int = DEFAULT_TTL

    def __post_init__(self) -> None:
        if not isinstance(self.kid, str) or not KEY_ID.match(self.kid):
            raise ConfigError("a context key id is 1-40 letters, digits, '_' or '-'")
        if not isinstance(self.secret, bytes) or len(self.secret) < _MIN_SECRET:
            raise ConfigError(f"a context key's secret must be at least {_MIN_SECRET} bytes")
        if not isinstance(self.ttl, int) or isinstance(self.ttl, bool) or not 1 <= self.ttl \
                <= 86400:
            raise ConfigError("a context key's ttl is a number of seconds from 1 to 86400")

    @classmethod
    def generate(cls, kid: str | None = None, ttl: int = DEFAULT_TTL) -> ContextKey:
        """A new random key (id: the UTC time, unless given)."""
        kid = kid or "k" + datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
        return cls(kid, secrets.token_bytes(_MIN_SECRET), ttl)

    @classmethod
    def parse(cls, text: str, ttl: int = DEFAULT_TTL) -> ContextKey:
        """A key from its text form ``<id>:<base64url secret>``."""
        kid, sep, encoded = text.strip().partition(":")
        try:
            secret = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
        except (binascii.Error, ValueError):
            secret = b""
        if not sep or not secret:
            raise ConfigError("a context key reads '<id>:<secret in base64url>' "
                              "(as `rlskit key rotate` prints it)")
        return cls(kid, secret, ttl)

    def text(self) -> str:
        """The text form, for the application's environment (keep it secret)."""
        return f"{self.kid}:{base64.urlsafe_b64encode(self.secret).decode().rstrip('=')}"

    def pads(self) -> tuple[bytes, bytes]:
        """HMAC-SHA256's inner and outer keys, as the key table stores them."""
        block = (hashlib.sha256(self.secret).digest() if len(self.secret) > 64
                 else self.secret).ljust(64, b"\0")
        return bytes(b ^ 0x36 for b in block), bytes(b ^ 0x5C for b in block)

    @cached_property
    def _keyed(self) -> tuple[Any, Any]:
        """SHA-256 states after the inner and the outer pad: HMAC without re-keying."""
        inner, outer = self.pads()
        return hashlib.sha256(inner), hashlib.sha256(outer)

    def mac(self, text: str) -> str:
        """HMAC-SHA256 of `text`, hex."""
        inner, outer = (state.copy() for state in self._keyed)
        inner.update(text.encode())
        outer.update(inner.digest())
        return outer.hexdigest()

    def seal(self, role: str, settings: Iterable[tuple[str, str]],
             now: float | None = None) -> str:
        """The seal of a context, ``<id>:<expiry>:<mac>:<body>``, valid for `ttl` seconds:
        the MAC covers ``<id>:<expiry>:<body>``."""
        return _seal(self, role, tuple(settings),
                     int(now if now is not None else time.time()) + self.ttl)

    def probe(self) -> str:
        """The MAC the start-up check compares with the database's key of this id."""
        return self.mac(KEY_CHECK)


@lru_cache(maxsize=256)
def _seal(key: ContextKey, role: str, settings: tuple[tuple[str, str], ...], expiry: int
          ) -> str:
    """`ContextKey.seal`, computed once per context and second (the expiry's resolution):
    a caller's transactions in the same second send the same seal."""
    signed = f"{key.kid}:{expiry}:"
    body = payload(role, settings)
    return f"{signed}{key.mac(signed + body)}:{body}"


_key: ContextKey | None = None


def use_key(key: ContextKey | str | None) -> None:
    """Make `key` (or its text form) the key every sealed context is signed with in this
    process; None forgets it (the environment is read again)."""
    global _key
    _key = ContextKey.parse(key) if isinstance(key, str) else key


def current_key() -> ContextKey:
    """The process's sealing key: `use_key`'s, else the environment's (see the module)."""
    global _key
    if _key is None:
        _key = _load_key()
    return _key


def _load_key() -> ContextKey:
    from .config import load_context_settings

    env, file, ttl = load_context_settings()
    text = os.environ.get(env)
    if text is None and file is not None:
        try:
            text = Path(file).read_text()
        except OSError as exc:
            raise ContextError(f"cannot read the context key file {file}: "
                               f"{exc.strerror}") from None
    if not text:
        raise ContextError(f"no context key to seal the request context with: set {env} to "
                           "the key `rlskit key rotate` printed (or name a key_file in "
                           "[tool.rlskit.context])")
    return ContextKey.parse(text, ttl)


def session_settings(ctx: RequestContext, key: ContextKey | None = None
                     ) -> tuple[tuple[str, str], ...]:
    """Every setting a transaction in `ctx` gets after its role: the context settings, the
    role's limits and, for a sealed context, the seal (signed with `key`, default
    `current_key()`)."""
    out = ctx.settings + ctx.limits
    if ctx.sealed:
        out += (seal_setting(ctx.role, ctx.settings, key),)
    return out


def sealed_settings(model: Model, role: str, values: Mapping[str, Any],
                    key: ContextKey | None = None) -> tuple[tuple[str, str], ...]:
    """The context settings of a transaction acting as database role `role` with context
    `values` (any role, unlike a `RequestContext`'s) and, for a sealed model, their seal."""
    settings = context_settings(model, values)
    return settings + ((seal_setting(role, settings, key),) if model.sealed else ())


def seal_setting(role: str, settings: tuple[tuple[str, str], ...],
                 key: ContextKey | None = None) -> tuple[str, str]:
    """``(rlskit.seal, <seal>)`` for a transaction in database role `role` with the context
    `settings` (every setting the model declares, in order), signed with `key`
    (default `current_key()`)."""
    return SEAL_SETTING, (key or current_key()).seal(role, settings)
