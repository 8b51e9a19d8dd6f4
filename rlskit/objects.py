"""The database objects rlskit manages, as plain values.

A model compiles to a list of these (see `target`); the DDL renderer turns each into SQL,
and the migration layer compares them with what a live catalog holds. Names are final
database names (role prefix applied); expressions are canonical SQL text.
"""

from __future__ import annotations

from dataclasses import dataclass

from .sqltext import Privilege

__all__ = [
    "DbObject",
    "HelperFunction",
    "Membership",
    "Policy",
    "Role",
    "RowSecurity",
    "Schema",
    "SchemaUsage",
    "TableGrant",
    "View",
]


@dataclass(frozen=True)
class Schema:
    name: str


@dataclass(frozen=True)
class HelperFunction:
    """``schema.name()`` returning the setting as `returns`; ``setting=None`` is the generic
    ``claim(name text)`` reader of ``prefix.<name>``."""

    schema: str
    name: str
    returns: str
    setting: str | None
    settings_prefix: str


@dataclass(frozen=True)
class Role:
    name: str
    login: bool
    inherit: bool


@dataclass(frozen=True)
class Membership:
    """``GRANT role TO member``: `inherit` passes rights on, `set` allows SET ROLE."""

    role: str
    member: str
    inherit: bool
    set: bool


@dataclass(frozen=True)
class SchemaUsage:
    schema: str
    roles: tuple[str, ...]


@dataclass(frozen=True)
class TableGrant:
    schema: str
    table: str
    role: str
    privileges: tuple[Privilege, ...]


@dataclass(frozen=True)
class RowSecurity:
    schema: str
    table: str
    force: bool


@dataclass(frozen=True)
class Policy:
    schema: str
    table: str
    name: str
    permissive: bool
    command: str
    roles: tuple[str, ...]  # empty means PUBLIC
    using: str | None
    with_check: str | None


@dataclass(frozen=True)
class View:
    schema: str
    name: str
    query: str
    columns: tuple[str, ...]
    options: tuple[tuple[str, str], ...]


DbObject = (
    Schema | HelperFunction | Role | Membership | SchemaUsage | TableGrant | RowSecurity
    | Policy | View
)
