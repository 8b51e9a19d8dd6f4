"""Compile a validated model into the ordered list of objects the database should hold.

One function per kind derives its objects (`derives`); `rlskit.kinds` orders the kinds
(dependency order: schema, helpers, roles, memberships, grants, row security, policies,
views, each view followed by its grants). Within a kind, declaration order.
"""

from __future__ import annotations

from collections.abc import Callable

from pglast.stream import maybe_double_quote_name as quote

from . import objects as o
from .access.store import FUNCTIONS, RUNTIME_FUNCTIONS
from .citus_policies import citus_policies
from .errors import ModelError
from .keystore import KEY_STATUS, VERIFIER
from .kinds import KINDS
from .model import ROW_COMMANDS, Model, Table, View, row_commands
from .sqltext import policy_expression, relations_read

__all__ = ["target_objects"]

TENANT_CONTEXT = "tenant_id"
PRODUCT_ACCESS = "product_access"  # the restrictive policy on every data product table


Derive = Callable[[Model, int], list[o.DbObject]]
_DERIVES: dict[type, Derive] = {}


def derives(kind: type) -> Callable[[Derive], Derive]:
    """Register how the objects of `kind` follow from a model (one function per kind)."""
    def register(derive: Derive) -> Derive:
        _DERIVES[kind] = derive
        return derive
    return register


def target_objects(model: Model, pg_version: int) -> list[o.DbObject]:
    """Everything `model` manages, ready for DDL, in creation order: kind by kind as
    `rlskit.kinds` orders them, each in declaration order."""
    model.validate()
    if any(t.tenant_column for t in model.tables.values()) and TENANT_CONTEXT not in model.claims:
        raise ModelError(f"tenant tables need a {TENANT_CONTEXT!r} context: "
                         f"model.context({TENANT_CONTEXT}=Claim(...))")
    return [obj for kind in KINDS for obj in _DERIVES[kind.type](model, pg_version)]


@derives(o.Schema)
def _schema(model: Model, pg_version: int) -> list[o.DbObject]:
    return [o.Schema(model.helpers_schema)]


@derives(o.ContextSeal)
def _context_seal(model: Model, pg_version: int) -> list[o.DbObject]:
    return [o.ContextSeal(model.helpers_schema, model.key_owner,
                          citus=model.citus)] if model.sealed else []


@derives(o.AccessStore)
def _access_store(model: Model, pg_version: int) -> list[o.DbObject]:
    return [o.AccessStore(model.helpers_schema, model.settings_prefix, model.sealed,
                          functions=tuple(sorted(FUNCTIONS)))] if model.products else []


@derives(o.DbRole)
def _roles(model: Model, pg_version: int) -> list[o.DbObject]:
    citus = model.citus  # Citus logs in to its workers as the current role
    out: list[o.DbObject] = [
        o.DbRole(model.role_name(r), login=r.login or citus, inherit=not r.login,
                 settings=r.limits,
               connection_limit=-1 if r.connection_limit is None else r.connection_limit)
        for r in model.roles.values()]
    if model.owner_name is not None:
        out.append(o.DbRole(model.owner_name, login=citus, inherit=True))
    return out


@derives(o.FunctionGrant)
def _function_grants(model: Model, pg_version: int) -> list[o.DbObject]:
    return [*(_seal_grants(model) if model.sealed else []),
            *(_store_grants(model) if model.products else [])]


@derives(o.TableGrant)
def _table_grants(model: Model, pg_version: int) -> list[o.DbObject]:
    return [o.TableGrant(table.schema, table.name, model.role_name(role), privs)
            for table in model.tables.values() for role, privs in table.grants.items()]


@derives(o.TableOwner)
def _table_owners(model: Model, pg_version: int) -> list[o.DbObject]:
    if model.owner_name is None:
        return []
    return [o.TableOwner(t.schema, t.name, model.owner_name) for t in model.tables.values()]


@derives(o.Distribution)
def _distributions(model: Model, pg_version: int) -> list[o.DbObject]:
    return [o.Distribution(d.schema, d.name, d.column, d.colocate_with)
            for d in model.distributions.values()]


@derives(o.RowSecurity)
def _row_security(model: Model, pg_version: int) -> list[o.DbObject]:
    return [o.RowSecurity(t.schema, t.name, force=True) for t in model.tables.values() if t.rls]


@derives(o.DbPolicy)
def _all_policies(model: Model, pg_version: int) -> list[o.DbObject]:
    return [p for table in model.tables.values() for p in _policies(model, table)]


@derives(o.DbView)
def _views(model: Model, pg_version: int) -> list[o.DbObject]:
    """Each view followed by its grants (they need it, and a view's SQL section holds them)."""
    out: list[o.DbObject] = []
    for view in model.views.values():
        if pg_version < 15:
            _refuse_owner_rights(model, view)
        options = [("security_barrier", "true")]
        if view.security_invoker and pg_version >= 15:
            options.insert(0, ("security_invoker", "true"))
        out.append(o.DbView(view.schema, view.name, view.query_sql, view.columns, tuple(options)))
        out += [o.TableGrant(view.schema, view.name, model.role_name(role), privs)
                for role, privs in view.grants.items()]
    return out


def _refuse_owner_rights(model: Model, view: View) -> None:
    """PostgreSQL 14 has no security_invoker: a view over an RLS table would run with its
    owner's rights and show every tenant's rows, unless the model says it means that."""
    protected = sorted(q for q in relations_read(view.query_sql, model.schema)
                       if any(t.qualified == q and t.rls for t in model.tables.values()))
    if view.security_invoker and protected:
        raise ModelError(
            f"view {view.name!r} reads {', '.join(protected)}, protected by row-level "
            "security, and PostgreSQL 14 has no security_invoker: the view would run with its "
            "owner's rights and show every tenant's rows; generate for PostgreSQL 15 or "
            "later, or declare model.view(..., security_invoker=False) to accept that")


@derives(o.HelperFunction)
def _helpers(model: Model, pg_version: int) -> list[o.DbObject]:
    schema, prefix, sealed = model.helpers_schema, model.settings_prefix, model.sealed
    helpers: list[o.DbObject] = [
        o.HelperFunction(schema, name, claim.sql_type, model.setting_name(name), prefix,
                         sealed=sealed)
        for name, claim in model.claims.items()
    ]
    helpers.append(o.HelperFunction(schema, "claim", "text", None, prefix, arguments="name text",
                                    sealed=sealed))
    return helpers


def _store_grants(model: Model) -> list[o.FunctionGrant]:
    """The grants store's functions for the model's roles only (logins reach them through
    their memberships); the runtime's lookup for the authenticators too."""
    schema, groups = model.helpers_schema, [model.role_name(r) for r in model.group_roles]
    logins = [model.role_name(name) for name in model.authenticators]
    return [o.FunctionGrant(schema, function, role) for function in FUNCTIONS
            for role in (groups + logins if function in RUNTIME_FUNCTIONS else groups)]


def _seal_grants(model: Model) -> list[o.FunctionGrant]:
    """The verifier for every group role (their policies call it through the helpers), the
    key status for the authenticators (their start-up check asks it)."""
    schema = model.helpers_schema
    return ([o.FunctionGrant(schema, VERIFIER, model.role_name(r)) for r in model.group_roles]
            + [o.FunctionGrant(schema, KEY_STATUS, model.role_name(name))
               for name in model.authenticators])


@derives(o.Membership)
def _memberships(model: Model, pg_version: int) -> list[o.DbObject]:
    """Inheritance, SET ROLE for authenticators and ADMIN for role administrators; one
    membership per (role, member) with the options of every reason combined."""
    found: dict[tuple[str, str], o.Membership] = {}

    def add(role: str, member: str, **options: bool) -> None:
        key = (model.role_name(role), model.role_name(member))
        old = found.get(key, o.Membership(*key, inherit=False, set=False))
        found[key] = o.Membership(*key, inherit=old.inherit or options.get("inherit", False),
                                  set=old.set or options.get("set", False),
                                  admin=old.admin or options.get("admin", False))

    for role in model.roles.values():
        for parent in role.inherits:
            add(model.resolve_role(parent).name, role.name, inherit=True)
    for name in model.authenticators:
        for t in model.switchable(name):
            add(t.name, name, set=True)
    for admin, target in model.admins:
        add(model.resolve_role(target).name, model.resolve_role(admin).name, admin=True)
    return list(found.values())


@derives(o.SchemaUsage)
def _schema_usage(model: Model, pg_version: int) -> list[o.DbObject]:
    schemas = [model.helpers_schema]
    for schema in [t.schema for t in model.tables.values()] + \
            [v.schema for v in model.views.values()]:
        if schema not in schemas:
            schemas.append(schema)
    out: list[o.DbObject] = [o.SchemaUsage(s, model.role_name(r)) for s in schemas
                             for r in model.group_roles]
    if model.sealed:  # the authenticators' start-up check asks the key status
        out += [o.SchemaUsage(model.helpers_schema, model.role_name(name))
                for name in model.authenticators]
    return out


def _policies(model: Model, table: Table) -> list[o.DbPolicy]:
    out = []
    if model.in_product(table):
        # who holds a product role is data: checked on every statement (see access.store)
        _, held = policy_expression(f"{quote(model.helpers_schema)}.holds(CURRENT_USER)",
                                    model.helpers_schema)
        out.append(o.DbPolicy(table.schema, table.name, PRODUCT_ACCESS, permissive=False,
                            command="ALL", roles=(), using=held, with_check=held))
    if table.tenant_column:
        schema = model.helpers_schema
        _, check = policy_expression(
            f"{quote(table.tenant_column)} = {quote(schema)}.{TENANT_CONTEXT}()", schema)
        out.append(o.DbPolicy(table.schema, table.name, "tenant_isolation", permissive=False,
                            command="ALL", roles=(), using=check, with_check=check))
    for pol in table.policies:
        out.append(o.DbPolicy(table.schema, table.name, pol.name, pol.permissive, pol.command,
                            tuple(model.role_name(r) for r in pol.to),
                            pol.using.sql if pol.using else None,
                            pol.with_check.sql if pol.with_check else None))
    if table.tenant_column:
        out += _default_rules(model, table)
    if (table.schema, table.name) in model.distributions:
        out = citus_policies(table, out, model.helpers_schema)
    return out


def _default_rules(model: Model, table: Table) -> list[o.DbPolicy]:
    """A permissive rule per granted row command that no declared rule already covers.

    Roles are visited parents first, so a rule for a parent also covers its descendants
    and the table gets the fewest rules that admit every grant.
    """
    covered: set[tuple[str, str]] = set()  # (model role name, command)
    for pol in table.policies:
        if pol.permissive:
            covered |= {(model.resolve_role(r).name, c) for r in pol.to
                        for c in row_commands(pol.command)}
    taken = {p.name for p in table.policies}
    out = []
    granted = sorted(table.grants.items(),
                     key=lambda item: len(model.ancestors(item[0])))
    for role_ref, privs in granted:
        lineage = {r.name for r in model.ancestors(role_ref)}
        role = model.resolve_role(role_ref)
        for cmd in ROW_COMMANDS:
            if not any(p.name == cmd for p in privs):
                continue
            if any((name, cmd) in covered for name in lineage):
                continue
            name = f"{role.name}_{cmd.lower()}"
            if name in taken:
                raise ModelError(f"declared policy name clashes with the default rule for "
                                 f"{role.name} {cmd}", table=table.name, policy=name)
            covered.add((role.name, cmd))
            out.append(o.DbPolicy(
                table.schema, table.name, name, permissive=True, command=cmd,
                roles=(model.role_name(role),),
                using=None if cmd == "INSERT" else "true",
                with_check="true" if cmd in ("INSERT", "UPDATE") else None,
            ))
    return out
