"""Exceptions raised for bad input; the CLI maps every one of them to exit code 2."""

from __future__ import annotations


class RlskitError(Exception):
    """Base class: a user mistake, reported as one sentence without a traceback."""


class ModelError(RlskitError):
    """The model is malformed: names the table, the policy and the offending text."""

    def __init__(
        self,
        message: str,
        *,
        table: str | None = None,
        policy: str | None = None,
        text: str | None = None,
    ) -> None:
        self.table = table
        self.policy = policy
        self.text = text
        where = []
        if table is not None:
            where.append(f"table {table!r}")
        if policy is not None:
            where.append(f"policy {policy!r}")
        prefix = ", ".join(where)
        full = f"{prefix}: {message}" if prefix else message
        if text is not None:
            full += f" in {text!r}"
        super().__init__(full)


class ConfigError(RlskitError):
    """Configuration is missing or wrong (pyproject, model path, database URL)."""


class ContextError(RlskitError):
    """A request context cannot be built from the given claims."""


class TokenError(ContextError):
    """A bearer token is malformed, unsigned, forged, expired or not meant for us."""


class UnsafeConnectionError(ConfigError):
    """The application's database role could bypass row-level security."""
