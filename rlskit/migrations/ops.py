"""Alembic operations for the objects rlskit manages: ``op.create_policy(...)`` and friends.

Each operation wraps one `objects` value (a group of them for helpers) and knows its SQL
(through `ddl`), its exact reverse for ``downgrade`` and how it reads as Python in a
revision (see `render`). Operations registered here become available as ``op.<name>``
as soon as this module is imported (``env.py`` does it through ``rlskit.migrations``).

An operation built by autogenerate remembers the full state it replaces or drops, so its
`reverse` restores exactly that; one written by hand with only a name cannot be reversed
and says so.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import sqlalchemy as sa
from alembic.operations import MigrateOperation, Operations
from psycopg import sql

from .. import objects as o
from ..ddl import alter_policy, create, drop, update
from ..errors import RlskitError
from ..generate import DEFAULT_PG_VERSION
from ..kinds import kind_of
from ..render import render
from ..sqltext import Privilege, parse_privileges

__all__ = ["RlsOp", "privileges_text"]

GENERIC_HELPER = "claim"  # the helper that reads any setting by name


class RlsOp(MigrateOperation):
    """A change to objects rlskit manages. Subclasses say which ``op.<name>`` they are,
    how they read (`sign` and `noun` for summaries) and what their SQL is."""

    name: ClassVar[str]
    sign: ClassVar[str]  # "+", "-" or "~" in revision summaries
    kinds: ClassVar[tuple[type, ...]]  # the catalog objects it changes (`rlskit.kinds`)
    noun: ClassVar[str]  # from the first kind: how summaries count it
    undo: ClassVar[type[RlsOp] | None] = None  # the op that reverses this one
    ddl: ClassVar[Any]  # create, update or drop (`rlskit.ddl`), by default from the sign

    def __init_subclass__(cls) -> None:
        super().__init_subclass__()
        if "kinds" in cls.__dict__:
            cls.noun = kind_of(cls.kinds[0]).noun
        sign = cls.__dict__.get("sign")
        if "ddl" not in cls.__dict__ and isinstance(sign, str):
            cls.ddl = staticmethod({"+": create, "~": update, "-": drop}[sign])

    def __init__(self, obj: Any, existing: Any = None) -> None:
        self.obj = obj
        self.existing = existing  # the state this op replaces or drops, when known

    def statements(self, pg_version: int) -> list[sql.Composable]:
        """The op's SQL: its DDL for each object it holds."""
        members = self.obj if isinstance(self.obj, tuple) else (self.obj,)
        return [stmt for member in members for stmt in self.ddl(member, pg_version)]

    def merged(self, other: RlsOp) -> RlsOp | None:
        """This op and `other` as one (consecutive helper ops), or None."""
        return None

    def with_role_prefix(self, prefix: str) -> RlsOp:
        """This op for the environment whose roles carry `prefix` (revisions name roles
        without it, so one history serves dev, staging and prod)."""
        if not prefix:
            return self
        clone = copy.copy(self)
        if isinstance(self.obj, o.DbObject):
            clone.obj = o.rename_roles(self.obj, lambda name: prefix + name)
        return clone

    def reverse(self) -> RlsOp:
        if self.undo is not None and self.sign == "+":
            return self.undo(self.obj, existing=self.obj)
        if self.existing is None:
            raise ValueError(f"op.{self.name}() cannot be reversed: the state it replaces "
                             "is unknown (autogenerate records it)")
        if self.undo is not None:
            return self.undo(self.existing, existing=self.existing)
        return type(self)(self.existing, existing=self.obj)

    def arguments(self) -> tuple[list[Any], dict[str, Any]]:
        """Positional and keyword arguments of the ``op.<name>(...)`` call."""
        raise NotImplementedError


def _split(qualified: str, schema: str | None) -> tuple[str, str]:
    if schema is not None:
        return schema, qualified
    head, _, tail = qualified.rpartition(".")
    return (head or "public"), tail


def privileges_text(privileges: Sequence[Privilege]) -> str:
    """``"SELECT, UPDATE (status)"``: privileges as the model writes them."""
    return ", ".join(f"{p.name} ({', '.join(p.columns)})" if p.columns else p.name
                     for p in privileges)


_BY_ROLE: dict[str, dict[type, type[RlsOp]]] = {"create": {}, "alter": {}, "drop": {}}


def _register(*roles: str, undoes: type[RlsOp] | None = None
              ) -> Callable[[type[RlsOp]], type[RlsOp]]:
    """Make an op ``op.<name>`` (as Alembic's ``Operations.register_operation`` does), say
    which changes of its kinds autogenerate makes with it (``"create"``, ``"alter"``,
    ``"drop"``), and, with `undoes`, declare it and that op each other's reverse."""
    def register(cls: type[RlsOp]) -> type[RlsOp]:
        Operations.register_operation(cls.name, "invoke")(cls)
        for role in roles:
            _BY_ROLE[role].update(dict.fromkeys(cls.kinds, cls))
        if undoes is not None:
            cls.undo, undoes.undo = undoes, cls
        return cls
    return register


def op_for(role: str, kind: type) -> type[RlsOp]:
    """The op autogenerate uses to ``create``, ``alter`` or ``drop`` an object of `kind`."""
    return _BY_ROLE[role][kind]


# -- schema and helpers ----------------------------------------------------------------------


class _SchemaOp(RlsOp):
    kinds = (o.Schema,)

    def arguments(self) -> tuple[list[Any], dict[str, Any]]:
        return [self.obj.name], {}

    @classmethod
    def invoke(cls, operations: Operations, name: str) -> None:
        """Create (``IF NOT EXISTS``) or drop the schema that holds rlskit's helpers."""
        operations.invoke(cls(o.Schema(name)))


@_register("create")
class CreateSchemaOp(_SchemaOp):
    name, sign = "create_schema", "+"


@_register("drop", undoes=CreateSchemaOp)
class DropSchemaOp(_SchemaOp):
    name, sign = "drop_schema", "-"


def helper_functions(schema: str, functions: dict[str, str], settings_prefix: str,
                     sealed: bool = False) -> tuple[o.HelperFunction, ...]:
    """The helpers ``schema.name()`` returning the setting ``prefix.name`` as the type
    given (`sealed`: through the seal's verifier); ``claim`` is the generic
    ``claim(name text)``."""
    return tuple(
        o.HelperFunction(schema, GENERIC_HELPER, "text", None, settings_prefix,
                         arguments="name text", sealed=sealed) if name == GENERIC_HELPER
        else o.HelperFunction(schema, name, returns, f"{settings_prefix}.{name}",
                              settings_prefix, sealed=sealed)
        for name, returns in functions.items())


class _HelpersOp(RlsOp):
    kinds = (o.HelperFunction,)

    def arguments(self) -> tuple[list[Any], dict[str, Any]]:
        first = self.obj[0]
        kwargs: dict[str, Any] = {"settings_prefix": first.settings_prefix}
        if first.sealed:
            kwargs["sealed"] = True
        return [first.schema, {f.name: f.returns for f in self.obj}], kwargs

    @classmethod
    def invoke(cls, operations: Operations, schema: str, functions: dict[str, str], *,
               settings_prefix: str, sealed: bool = False) -> None:
        """Helpers ``schema.name()`` returning setting ``settings_prefix.name`` as the type
        given (``"claim": "text"`` is the generic ``claim(name text)``); `sealed`: only
        while the context's seal verifies (see ``op.create_context_seal``)."""
        operations.invoke(cls(helper_functions(schema, functions, settings_prefix, sealed)))

    def merged(self, other: RlsOp) -> RlsOp | None:
        """Consecutive helper ops of one kind, schema and prefix are one op."""
        if type(other) is not type(self):
            return None
        mine, theirs = self.obj[0], other.obj[0]
        if (mine.schema, mine.settings_prefix, mine.sealed) != \
                (theirs.schema, theirs.settings_prefix, theirs.sealed):
            return None
        existing = None if other.existing is None else self.existing + other.existing
        return type(self)(self.obj + other.obj, existing=existing)


@_register("create")
class CreateHelpersOp(_HelpersOp):
    name, sign = "create_helpers", "+"


@_register("alter")
class ReplaceHelpersOp(_HelpersOp):
    name, sign = "replace_helpers", "~"


@_register("drop", undoes=CreateHelpersOp)
class DropHelpersOp(_HelpersOp):
    name, sign = "drop_helpers", "-"

    def arguments(self) -> tuple[list[Any], dict[str, Any]]:
        return [self.obj[0].schema, [f.name for f in self.obj]], {}

    @classmethod
    def invoke(cls, operations: Operations, schema: str,  # type: ignore[override]
               functions: list[str]) -> None:
        """Drop helper functions by name."""
        operations.invoke(cls(helper_functions(schema, dict.fromkeys(functions, "text"), "")))


class _AccessStoreOp(RlsOp):
    kinds = (o.AccessStore,)

    def arguments(self) -> tuple[list[Any], dict[str, Any]]:
        kwargs: dict[str, Any] = {"settings_prefix": self.obj.settings_prefix}
        if self.obj.sealed:
            kwargs["sealed"] = True
        return [self.obj.schema], kwargs

    @classmethod
    def invoke(cls, operations: Operations, schema: str, *, settings_prefix: str,
               sealed: bool = False) -> None:
        """The data products' grants store in `schema` (tables ``access_grant`` and
        ``access_log`` and the functions that read and write them); `sealed`: grants
        match only a request context whose seal verifies."""
        operations.invoke(cls(o.AccessStore(schema, settings_prefix, sealed)))


@_register("create")
class CreateAccessStoreOp(_AccessStoreOp):
    name, sign = "create_access_store", "+"


@_register("alter")
class ReplaceAccessStoreOp(_AccessStoreOp):
    """Replace the store's functions in place; its tables and grants stay."""

    name, sign = "replace_access_store", "~"


@_register("drop", undoes=CreateAccessStoreOp)
class DropAccessStoreOp(_AccessStoreOp):
    """Drop the store, and with it every grant recorded in it."""

    name, sign = "drop_access_store", "-"


class _ContextSealOp(RlsOp):
    kinds = (o.ContextSeal,)

    def arguments(self) -> tuple[list[Any], dict[str, Any]]:
        kwargs: dict[str, Any] = {"owner": self.obj.owner}
        if self.obj.citus:
            kwargs["citus"] = True
        return [self.obj.schema], kwargs

    @classmethod
    def invoke(cls, operations: Operations, schema: str, *, owner: str,
               citus: bool = False) -> None:
        """The sealed context's key table and verifier in `schema`, owned by the NOLOGIN
        role `owner` (created if missing). Keys are data: ``rlskit key rotate`` adds them,
        no revision holds one. `citus`: the verifier runs on the workers too."""
        operations.invoke(cls(o.ContextSeal(schema, owner, citus=citus)))


@_register("create")
class CreateContextSealOp(_ContextSealOp):
    name, sign = "create_context_seal", "+"


@_register("alter")
class ReplaceContextSealOp(_ContextSealOp):
    """Replace the verifier in place (its body, its owner); keys stay."""

    name, sign = "replace_context_seal", "~"


@_register("drop", undoes=CreateContextSealOp)
class DropContextSealOp(_ContextSealOp):
    """Drop the key table (and every key in it), the verifier and the key owner role."""

    name, sign = "drop_context_seal", "-"


# -- roles and memberships -------------------------------------------------------------------


class _RoleOp(RlsOp):
    kinds = (o.DbRole,)

    def arguments(self) -> tuple[list[Any], dict[str, Any]]:
        role = self.obj
        kwargs: dict[str, Any] = {"login": role.login, "inherit": role.inherit}
        if role.bypassrls:
            kwargs["bypassrls"] = True
        if role.settings:
            kwargs["settings"] = dict(role.settings)
        if role.connection_limit != -1:
            kwargs["connection_limit"] = role.connection_limit
        return [role.name], kwargs

    @classmethod
    def invoke(cls, operations: Operations, name: str, *, login: bool = False,
               inherit: bool = True, bypassrls: bool = False,
               settings: dict[str, str] | None = None, connection_limit: int = -1) -> None:
        """Create (if missing: roles are cluster-wide) or alter a role, with its settings
        (``ALTER ROLE … SET``) and connection limit."""
        operations.invoke(cls(o.DbRole(name, login=login, inherit=inherit, bypassrls=bypassrls,
                                     settings=tuple(sorted((settings or {}).items())),
                                     connection_limit=connection_limit)))


@_register("create")
class CreateRoleOp(_RoleOp):
    name, sign = "create_role", "+"


@_register("alter")
class AlterRoleOp(_RoleOp):
    name, sign = "alter_role", "~"


@_register("drop", undoes=CreateRoleOp)
class DropRoleOp(_RoleOp):
    name, sign = "drop_role", "-"

    def arguments(self) -> tuple[list[Any], dict[str, Any]]:
        return [self.obj.name], {}

    @classmethod
    def invoke(cls, operations: Operations, name: str) -> None:  # type: ignore[override]
        """Drop a role if it exists."""
        operations.invoke(cls(o.DbRole(name, login=False, inherit=True)))


@_register("create", "alter")
class GrantRoleOp(RlsOp):
    """``GRANT role TO member`` with its options; with `existing`, a change of options."""

    name, kinds = "grant_role", (o.Membership,)
    ddl = staticmethod(create)

    @property
    def sign(self) -> str:  # type: ignore[override]
        return "+" if self.existing is None or self.existing == self.obj else "~"

    def arguments(self) -> tuple[list[Any], dict[str, Any]]:
        m = self.obj
        kwargs = {"to": m.member, "inherit": m.inherit, "set": m.set}
        return [m.role], kwargs | ({"admin": True} if m.admin else {})

    @classmethod
    def invoke(cls, operations: Operations, role: str, *, to: str, inherit: bool = True,
               set: bool = False, admin: bool = False) -> None:
        """Grant membership of `role` to `to` (INHERIT and SET apply on PostgreSQL 16+;
        `admin` lets `to` grant `role` to others)."""
        operations.invoke(cls(o.Membership(role, to, inherit=inherit, set=set, admin=admin)))

    def reverse(self) -> RlsOp:
        if self.sign == "+":
            return RevokeRoleOp(self.obj, existing=self.obj)
        return GrantRoleOp(self.existing, existing=self.obj)


@_register("drop", undoes=GrantRoleOp)
class RevokeRoleOp(RlsOp):
    name, sign = "revoke_role", "-"
    kinds = (o.Membership,)

    def arguments(self) -> tuple[list[Any], dict[str, Any]]:
        return [self.obj.role], {"from_": self.obj.member}

    @classmethod
    def invoke(cls, operations: Operations, role: str, *, from_: str) -> None:
        """Revoke membership of `role` from `from_`."""
        operations.invoke(cls(o.Membership(role, from_, inherit=True, set=False)))


# -- privileges ------------------------------------------------------------------------------


def _privilege_object(privileges: str, table: str | None, role: str, schema: str | None,
                      function: str | None = None
                      ) -> o.TableGrant | o.SchemaUsage | o.FunctionGrant:
    if function is not None:
        if privileges.strip().upper() != "EXECUTE" or table is not None:
            raise RlskitError("a grant on function= is EXECUTE, without table=")
        schema, function = _split(function, schema)
        return o.FunctionGrant(schema, function, role)
    if table is None:
        if privileges.strip().upper() != "USAGE" or schema is None:
            raise RlskitError("a grant without table= is USAGE on schema=")
        return o.SchemaUsage(schema, role)
    schema, table = _split(table, schema)
    return o.TableGrant(schema, table, role, parse_privileges(privileges))


class _PrivilegeOp(RlsOp):
    kinds = (o.TableGrant, o.SchemaUsage, o.FunctionGrant)
    role_keyword: ClassVar[str]

    def arguments(self) -> tuple[list[Any], dict[str, Any]]:
        obj = self.obj
        if isinstance(obj, o.SchemaUsage):
            return ["USAGE"], {self.role_keyword: obj.role, "schema": obj.schema}
        if isinstance(obj, o.FunctionGrant):
            return ["EXECUTE"], {"function": obj.function, self.role_keyword: obj.role,
                                 "schema": obj.schema}
        return ([privileges_text(obj.privileges)],
                {"table": obj.table, self.role_keyword: obj.role, "schema": obj.schema})


@_register("create")
class GrantOp(_PrivilegeOp):
    name, sign, role_keyword = "grant", "+", "to"

    @classmethod
    def invoke(cls, operations: Operations, privileges: str, *, to: str,
               table: str | None = None, schema: str | None = None,
               function: str | None = None) -> None:
        """``GRANT privileges ON TABLE schema.table TO to``; without `table`,
        ``GRANT USAGE ON SCHEMA schema``; with `function`, ``GRANT EXECUTE ON FUNCTION``."""
        operations.invoke(cls(_privilege_object(privileges, table, to, schema, function)))


@_register("drop", undoes=GrantOp)
class RevokeOp(_PrivilegeOp):
    name, sign, role_keyword = "revoke", "-", "from_"

    @classmethod
    def invoke(cls, operations: Operations, privileges: str, *, from_: str,
               table: str | None = None, schema: str | None = None,
               function: str | None = None) -> None:
        """The reverse of ``op.grant`` with the same arguments."""
        operations.invoke(cls(_privilege_object(privileges, table, from_, schema, function)))


# -- table ownership -------------------------------------------------------------------------


class _OwnerOp(RlsOp):
    kinds = (o.TableOwner,)

    def arguments(self) -> tuple[list[Any], dict[str, Any]]:
        return [self.obj.table], {"schema": self.obj.schema, "owner": self.obj.owner}


@_register("create", "alter")
class SetOwnerOp(_OwnerOp):
    """``ALTER TABLE … OWNER TO owner``; with `existing`, a change of owner."""

    name = "set_owner"
    ddl = staticmethod(create)

    @property
    def sign(self) -> str:  # type: ignore[override]
        return "+" if self.existing is None else "~"

    @classmethod
    def invoke(cls, operations: Operations, table: str, *, owner: str,
               schema: str | None = None) -> None:
        """Give a table to `owner` (the model's NOLOGIN owner role)."""
        schema, table = _split(table, schema)
        operations.invoke(cls(o.TableOwner(schema, table, owner)))

    def reverse(self) -> RlsOp:
        if self.existing is None or self.existing == self.obj:
            return ResetOwnerOp(self.obj, existing=self.obj)
        return SetOwnerOp(self.existing, existing=self.obj)


@_register("drop", undoes=SetOwnerOp)
class ResetOwnerOp(_OwnerOp):
    """``ALTER TABLE … OWNER TO CURRENT_USER``: back to the role running the migration."""

    name, sign = "reset_owner", "-"

    @classmethod
    def invoke(cls, operations: Operations, table: str, *, owner: str,
               schema: str | None = None) -> None:
        """The reverse of ``op.set_owner`` with the same arguments."""
        schema, table = _split(table, schema)
        operations.invoke(cls(o.TableOwner(schema, table, owner)))


# -- Citus distribution ----------------------------------------------------------------------


class _DistributionOp(RlsOp):
    kinds = (o.Distribution,)

    def arguments(self) -> tuple[list[Any], dict[str, Any]]:
        dist = self.obj
        kwargs: dict[str, Any] = {"schema": dist.schema}
        if dist.column is None:
            kwargs["reference"] = True
        else:
            kwargs["by"] = dist.column
        if dist.colocate_with is not None:
            kwargs["colocate_with"] = dist.colocate_with
        return [dist.table], kwargs

    @classmethod
    def invoke(cls, operations: Operations, table: str, *, schema: str | None = None,
               by: str | None = None, reference: bool = False,
               colocate_with: str | None = None) -> None:
        """Shard a table across the Citus cluster by column `by`, or with
        ``reference=True`` copy it to every node (Citus' ``create_distributed_table`` /
        ``create_reference_table``)."""
        if (by is None) != reference:
            raise ValueError(f"op.{cls.name}({table!r}): give by= or reference=True")
        schema, table = _split(table, schema)
        operations.invoke(cls(o.Distribution(schema, table, by, colocate_with)))


@_register("create")
class DistributeTableOp(_DistributionOp):
    name, sign = "distribute_table", "+"


@_register("alter")
class RedistributeTableOp(_DistributionOp):
    """Shard by another column (``alter_distributed_table``; Citus moves the rows)."""

    name, sign = "redistribute_table", "~"


@_register("drop", undoes=DistributeTableOp)
class UndistributeTableOp(_DistributionOp):
    """Back to a plain table on the coordinator (``undistribute_table``), rows and all."""

    name, sign = "undistribute_table", "-"


# -- row security ----------------------------------------------------------------------------


class _RowSecurityOp(RlsOp):
    kinds = (o.RowSecurity,)

    def arguments(self) -> tuple[list[Any], dict[str, Any]]:
        kwargs: dict[str, Any] = {"schema": self.obj.schema}
        if self.sign != "~":
            kwargs["force"] = self.obj.force
        return [self.obj.table], kwargs

    @classmethod
    def invoke(cls, operations: Operations, table: str, *, schema: str | None = None,
               force: bool = True) -> None:
        """Enable (and by default force) or disable row-level security on a table."""
        schema, table = _split(table, schema)
        operations.invoke(cls(o.RowSecurity(schema, table, force=force)))


@_register("create")
class EnableRlsOp(_RowSecurityOp):
    name, sign = "enable_rls", "+"


@_register("drop", undoes=EnableRlsOp)
class DisableRlsOp(_RowSecurityOp):
    name, sign = "disable_rls", "-"


class _ForceOp(_RowSecurityOp):
    sign = "~"
    force: ClassVar[bool]

    @classmethod
    def invoke(cls, operations: Operations, table: str, *,  # type: ignore[override]
               schema: str | None = None) -> None:
        """``ALTER TABLE … [NO] FORCE ROW LEVEL SECURITY``: whether the owner is bound."""
        schema, table = _split(table, schema)
        operations.invoke(cls(o.RowSecurity(schema, table, force=cls.force)))

    def reverse(self) -> RlsOp:
        other = NoForceRlsOp if self.force else ForceRlsOp
        return other(dataclasses.replace(self.obj, force=not self.force))


@_register()
class ForceRlsOp(_ForceOp):
    name, force = "force_rls", True


@_register()
class NoForceRlsOp(_ForceOp):
    name, force = "no_force_rls", False


# -- policies --------------------------------------------------------------------------------


def _policy_identity(name: str, table: str, schema: str | None) -> o.DbPolicy:
    schema, table = _split(table, schema)
    return o.DbPolicy(schema, table, name, True, "ALL", (), None, None)


class _PolicyOp(RlsOp):
    kinds = (o.DbPolicy,)

    def identity(self) -> tuple[list[Any], dict[str, Any]]:
        return [self.obj.name], {"table": self.obj.table, "schema": self.obj.schema}


@_register("create")
class CreatePolicyOp(_PolicyOp):
    name, sign = "create_policy", "+"

    def arguments(self) -> tuple[list[Any], dict[str, Any]]:
        p = self.obj
        args, kwargs = self.identity()
        if not p.permissive:
            kwargs["permissive"] = False
        kwargs["command"] = p.command
        kwargs["to"] = list(p.roles)
        if p.using is not None:
            kwargs["using"] = p.using
        if p.with_check is not None:
            kwargs["with_check"] = p.with_check
        return args, kwargs

    @classmethod
    def invoke(cls, operations: Operations, name: str, *, table: str,
               schema: str | None = None, permissive: bool = True, command: str = "ALL",
               to: Sequence[str] = (), using: str | None = None,
               with_check: str | None = None) -> None:
        """``CREATE POLICY`` (``to=[]`` means PUBLIC), marked as managed by rlskit."""
        policy = _policy_identity(name, table, schema)
        operations.invoke(cls(dataclasses.replace(
            policy, permissive=permissive, command=command.upper(), roles=tuple(to),
            using=using, with_check=with_check)))


@_register("drop", undoes=CreatePolicyOp)
class DropPolicyOp(_PolicyOp):
    name, sign = "drop_policy", "-"

    def arguments(self) -> tuple[list[Any], dict[str, Any]]:
        return self.identity()

    @classmethod
    def invoke(cls, operations: Operations, name: str, *, table: str,
               schema: str | None = None) -> None:
        """``DROP POLICY name ON schema.table``."""
        operations.invoke(cls(_policy_identity(name, table, schema)))


@_register("alter")
class AlterPolicyOp(_PolicyOp):
    """``ALTER POLICY`` setting only the clauses given (`clauses`)."""

    name, sign = "alter_policy", "~"

    def __init__(self, obj: o.DbPolicy, existing: o.DbPolicy | None = None,
                 clauses: Sequence[str] = ("roles", "using", "with_check")) -> None:
        super().__init__(obj, existing)
        self.clauses = tuple(c for c in clauses if getattr(obj, c) is not None)

    def arguments(self) -> tuple[list[Any], dict[str, Any]]:
        args, kwargs = self.identity()
        for clause in self.clauses:
            value = getattr(self.obj, clause)
            kwargs["to" if clause == "roles" else clause] = (
                list(value) if clause == "roles" else value)
        return args, kwargs

    @classmethod
    def invoke(cls, operations: Operations, name: str, *, table: str,
               schema: str | None = None, to: Sequence[str] | None = None,
               using: str | None = None, with_check: str | None = None) -> None:
        """``ALTER POLICY`` changing the roles (``to``), ``using`` and/or ``with_check``."""
        policy = dataclasses.replace(_policy_identity(name, table, schema),
                                     roles=None if to is None else tuple(to),  # type: ignore[arg-type]
                                     using=using, with_check=with_check)
        operations.invoke(cls(policy))

    def statements(self, pg_version: int) -> list[sql.Composable]:
        return [alter_policy(self.obj, **{c: getattr(self.obj, c) for c in self.clauses})]

    def reverse(self) -> RlsOp:
        if self.existing is None:
            return super().reverse()
        return AlterPolicyOp(self.existing, self.obj, self.clauses)


# -- views -----------------------------------------------------------------------------------


class _ViewOp(RlsOp):
    kinds = (o.DbView,)

    def arguments(self) -> tuple[list[Any], dict[str, Any]]:
        v = self.obj
        kwargs: dict[str, Any] = {"schema": v.schema}
        if v.columns:
            kwargs["columns"] = list(v.columns)
        kwargs["options"] = dict(v.options)
        return [v.name, v.query], kwargs

    @classmethod
    def invoke(cls, operations: Operations, name: str, query: str, *,
               schema: str = "public", columns: Sequence[str] = (),
               options: dict[str, str] | None = None) -> None:
        """A view marked as managed by rlskit, with options such as
        ``{"security_invoker": "true", "security_barrier": "true"}``."""
        operations.invoke(cls(o.DbView(schema, name, query, tuple(columns),
                                     tuple((options or {}).items()))))


@_register("create")
class CreateViewOp(_ViewOp):
    name, sign = "create_view", "+"


@_register("alter")
class ReplaceViewOp(_ViewOp):
    name, sign = "replace_view", "~"


@_register("drop", undoes=CreateViewOp)
class DropViewOp(_ViewOp):
    name, sign = "drop_view", "-"

    def arguments(self) -> tuple[list[Any], dict[str, Any]]:
        return [self.obj.name], {"schema": self.obj.schema}

    @classmethod
    def invoke(cls, operations: Operations, name: str, *,  # type: ignore[override]
               schema: str = "public") -> None:
        """``DROP VIEW schema.name``."""
        operations.invoke(cls(o.DbView(schema, name, "", (), ())))


# -- running an op ---------------------------------------------------------------------------


def _pg_version(operations: Operations) -> int:
    context = operations.migration_context
    if not context.as_sql:
        info = operations.get_bind().dialect.server_version_info
        if info:
            return int(info[0])
    return int(context.opts.get("rlskit_pg_version") or DEFAULT_PG_VERSION)


@Operations.implementation_for(RlsOp)
def run(operations: Operations, operation: RlsOp) -> None:
    """Execute (or, offline, print) the op's statements."""
    prefix = operations.migration_context.opts.get("rlskit_role_prefix", "")
    for statement in operation.with_role_prefix(prefix).statements(_pg_version(operations)):
        # SQLAlchemy's text() reads ":name" as a bind parameter; these have none.
        operations.execute(sa.text(render(statement).replace(":", r"\:")))
