"""JWT claims as the model declares them: where a claim sits in a token and its SQL type.

A `Claim` reads one value out of a verified token (nested paths for namespaced claims
objects), checks and converts it to its declared type, and renders it as the text a session
setting holds. Pure values: nothing here touches a database or verifies a signature.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .errors import ModelError

__all__ = ["CLAIM_TYPES", "Claim", "ClaimValueError", "claim_path", "lookup"]

CLAIM_TYPES = {
    "text": "text",
    "uuid": "uuid",
    "integer": "integer",
    "int": "integer",
    "bigint": "bigint",
    "boolean": "boolean",
    "bool": "boolean",
    "text[]": "text[]",  # a list of strings, e.g. the caller's groups
}
_INTEGER_RANGE = {"integer": 2**31, "bigint": 2**63}
_DIGITS = re.compile(r"^-?[0-9]+$")
_MISSING = object()


class ClaimValueError(ValueError):
    """A claim's value does not have the declared type; the message says what it should be."""


def claim_path(path: object, what: str = "claim") -> tuple[str, ...]:
    """A claim name or a tuple of keys, as a tuple of non-empty strings."""
    keys = (path,) if isinstance(path, str) else path
    if not isinstance(keys, tuple) or not keys or not all(isinstance(k, str) and k
                                                          for k in keys):
        raise ModelError(f"{what} path must be a non-empty string or tuple of strings, "
                         f"got {path!r}")
    return keys


def lookup(claims: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    """The value at `path` in a claims object, or None when any key on the way is missing."""
    value: Any = claims
    for key in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key, _MISSING)
        if value is _MISSING:
            return None
    return value


@dataclass(frozen=True)
class Claim:
    """A JWT claim read into a session setting and exposed by a helper function.

    `path` is a claim name, or a tuple of keys for nested claims (e.g. a namespaced claims
    object); `type` is the SQL type the helper returns.
    """

    path: str | tuple[str, ...]
    type: str = "text"
    required: bool = True

    def __post_init__(self) -> None:
        if self.type not in CLAIM_TYPES:
            raise ModelError(
                f"claim {self.path!r} has unknown type {self.type!r}; "
                f"use one of {', '.join(sorted(set(CLAIM_TYPES.values())))}"
            )
        claim_path(self.path)

    @property
    def sql_type(self) -> str:
        return CLAIM_TYPES[self.type]

    @property
    def keys(self) -> tuple[str, ...]:
        return claim_path(self.path)

    @property
    def label(self) -> str:
        """The path as people write it: ``a.b`` for nested claims."""
        return ".".join(self.keys)

    def coerce(self, value: Any) -> Any:
        """`value` as a Python value of the claim's type (UUID, int, bool, str, or a tuple
        of str for ``text[]``)."""
        kind = self.sql_type
        if kind == "text[]":
            if not isinstance(value, (list, tuple)):
                raise ClaimValueError(f"must be a list of strings, got {_show(value)}")
            return tuple(_text(item) for item in value)
        if kind == "uuid":
            if isinstance(value, uuid.UUID):
                return value
            if isinstance(value, str):
                try:
                    return uuid.UUID(value)
                except ValueError:
                    pass
            raise ClaimValueError(f"must be a UUID, got {_show(value)}")
        if kind in _INTEGER_RANGE:
            number = value
            if isinstance(value, str) and _DIGITS.match(value):
                number = int(value)
            if isinstance(number, bool) or not isinstance(number, int):
                raise ClaimValueError(f"must be an integer, got {_show(value)}")
            if not -_INTEGER_RANGE[kind] <= number < _INTEGER_RANGE[kind]:
                raise ClaimValueError(f"is out of range for {kind}: {number}")
            return number
        if kind == "boolean":
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in ("true", "false"):
                return value.lower() == "true"
            raise ClaimValueError(f"must be a boolean, got {_show(value)}")
        return _text(value)

    def setting_text(self, value: Any) -> str:
        """A coerced value as the text of its session setting (an array literal for
        ``text[]``)."""
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, tuple):
            quoted = ('"' + item.replace("\\", "\\\\").replace('"', '\\"') + '"'
                      for item in value)
            return "{" + ",".join(quoted) + "}"
        return str(value)


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise ClaimValueError(f"must be a string, got {_show(value)}")
    if "\x00" in value:
        raise ClaimValueError("must not contain a NUL character")
    return value


def _show(value: Any) -> str:
    text = repr(value)
    kind = type(value).__name__
    return f"{kind} {text[:60]}{'…' if len(text) > 60 else ''}"
