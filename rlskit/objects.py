"""The database objects rlskit manages, as plain values.

A model compiles to a list of these (see `target`); the DDL renderer turns each into SQL,
and the migration layer compares them with what a live catalog holds (`catalog`). Names
are final database names (role prefix applied); expressions are canonical SQL text. Two
objects with the same `key` are the same database object, perhaps in different states.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

from .sqltext import Privilege

__all__ = [
    "AccessStore",
    "ContextSeal",
    "DbObject",
    "FunctionGrant",
    "HelperFunction",
    "Membership",
    "DbPolicy",
    "DbRole",
    "RowSecurity",
    "Schema",
    "SchemaUsage",
    "TableGrant",
    "TableOwner",
    "DbView",
    "Distribution",
    "rename_roles",
]


MARKER = "managed by rlskit"  # comment on the policies and views rlskit owns


@dataclass(frozen=True)
class Schema:
    name: str

    @property
    def key(self) -> tuple:
        return ("schema", self.name)


@dataclass(frozen=True)
class HelperFunction:
    """``schema.name(arguments)`` returning the setting as `returns`; ``setting=None`` is the
    generic ``claim(name text)`` reader of ``prefix.<name>``."""

    schema: str
    name: str
    returns: str
    setting: str | None
    settings_prefix: str
    # As the server prints it (pg_get_functiondef): filled in by the catalog reader and the
    # normaliser, compared by the diff; not part of the identity.
    definition: str | None = field(default=None, compare=False)
    arguments: str = ""  # as pg_get_function_identity_arguments prints them
    sealed: bool = False  # read through the seal's verifier (`ContextSeal`)

    @property
    def key(self) -> tuple:
        return ("function", self.schema, self.name)


@dataclass(frozen=True)
class ContextSeal:
    """What verifies sealed request contexts (see `rlskit.keystore`): the key table and
    the verifier in the helpers schema, owned by the NOLOGIN role `owner` (who may run them
    is `FunctionGrant`s)."""

    schema: str
    owner: str
    # The verifier's body as the server keeps it (prosrc): filled in by the catalog
    # reader, compared by the diff; not part of the identity.
    definition: str | None = field(default=None, compare=False)
    # On Citus the key table is on every node, kept in step by rlskit (see keystore)
    citus: bool = False

    @property
    def key(self) -> tuple:
        return ("context seal", self.schema)


@dataclass(frozen=True)
class AccessStore:
    """The grants store of data products (tables and functions, see `rlskit.access.store`)
    in the helpers schema, reading the request context under `settings_prefix`."""

    schema: str
    settings_prefix: str
    sealed: bool = False  # reads the sealed context (see `ContextSeal`)
    # The store's functions that exist, sorted (the model's side: all of them); one that
    # went missing makes the store differ, so that it is replaced, not only re-granted.
    functions: tuple[str, ...] = field(default=(), compare=False)

    @property
    def key(self) -> tuple:
        return ("access store", self.schema)


@dataclass(frozen=True)
class DbRole:
    name: str
    login: bool
    inherit: bool
    bypassrls: bool = False
    settings: tuple[tuple[str, str], ...] = ()  # ALTER ROLE ... SET, sorted
    connection_limit: int = -1  # -1: none

    @property
    def key(self) -> tuple:
        return ("role", self.name)


@dataclass(frozen=True)
class Membership:
    """``GRANT role TO member``: `inherit` passes rights on, `set` allows SET ROLE, `admin`
    lets the member grant `role` to others."""

    role: str
    member: str
    inherit: bool
    set: bool
    admin: bool = False

    @property
    def key(self) -> tuple:
        return ("membership", self.role, self.member)


@dataclass(frozen=True)
class SchemaUsage:
    schema: str
    role: str

    @property
    def key(self) -> tuple:
        return ("usage", self.schema, self.role)


@dataclass(frozen=True)
class FunctionGrant:
    """``GRANT EXECUTE ON FUNCTION schema.function TO role`` (a function of rlskit's own,
    whose name is unique in its schema)."""

    schema: str
    function: str
    role: str

    @property
    def key(self) -> tuple:
        return ("execute", self.schema, self.function, self.role)


@dataclass(frozen=True)
class TableGrant:
    schema: str
    table: str
    role: str
    privileges: tuple[Privilege, ...]

    @property
    def key(self) -> tuple:
        return ("grant", self.schema, self.table, self.role)


@dataclass(frozen=True)
class TableOwner:
    """``ALTER TABLE schema.table OWNER TO owner``: who owns a protected table."""

    schema: str
    table: str
    owner: str

    @property
    def key(self) -> tuple:
        return ("owner", self.schema, self.table)


@dataclass(frozen=True)
class RowSecurity:
    schema: str
    table: str
    force: bool

    @property
    def key(self) -> tuple:
        return ("rls", self.schema, self.table)


@dataclass(frozen=True)
class Distribution:
    """A Citus table: hash-distributed by `column`, or a reference table (`column` None).
    Co-location is how it is created, not compared: Citus' default groups tables whose
    columns have the same type."""

    schema: str
    table: str
    column: str | None
    colocate_with: str | None = field(default=None, compare=False)

    @property
    def key(self) -> tuple:
        return ("distribution", self.schema, self.table)


@dataclass(frozen=True)
class DbPolicy:
    schema: str
    table: str
    name: str
    permissive: bool
    command: str
    roles: tuple[str, ...]  # empty means PUBLIC
    using: str | None
    with_check: str | None

    @property
    def key(self) -> tuple:
        return ("policy", self.schema, self.table, self.name)


@dataclass(frozen=True)
class DbView:
    schema: str
    name: str
    query: str
    columns: tuple[str, ...]
    options: tuple[tuple[str, str], ...]

    @property
    def key(self) -> tuple:
        return ("view", self.schema, self.name)


DbObject = (
    Schema | ContextSeal | HelperFunction | AccessStore | DbRole | Membership | SchemaUsage
    | FunctionGrant | TableGrant | TableOwner | Distribution | RowSecurity | DbPolicy | DbView
)


def rename_roles(obj: DbObject, rename: Callable[[str], str]) -> DbObject:
    """`obj` with every role name it holds passed through `rename` (e.g. a prefix)."""
    if isinstance(obj, DbRole):
        return replace(obj, name=rename(obj.name))
    if isinstance(obj, Membership):
        return replace(obj, role=rename(obj.role), member=rename(obj.member))
    if isinstance(obj, (SchemaUsage, FunctionGrant, TableGrant)):
        return replace(obj, role=rename(obj.role))
    if isinstance(obj, (ContextSeal, TableOwner)):
        return replace(obj, owner=rename(obj.owner))
    if isinstance(obj, DbPolicy):
        roles = obj.roles if obj.roles is None else tuple(map(rename, obj.roles))
        return replace(obj, roles=roles)  # None: an ALTER POLICY that keeps the roles
    return obj
