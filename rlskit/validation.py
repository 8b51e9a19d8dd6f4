"""Checking a model's cross references (roles, context names, columns, cycles in the role
hierarchy) before anything is generated from it: one ModelError naming the problem."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pglast import ast

from .errors import ModelError
from .sqltext import column_refs, helper_calls

if TYPE_CHECKING:
    from .model import Model, Policy, Role, Table

__all__ = ["validate"]


def validate(model: Model) -> None:
    """Check every cross reference of `model`; raise ModelError on the first problem."""
    for role in model.roles.values():
        for parent in role.inherits:
            try:
                resolved = model.resolve_role(parent)
            except ModelError:
                raise ModelError(
                    f"role {role.name!r} inherits unknown role {parent!r}") from None
            if resolved.login:
                raise ModelError(f"role {role.name!r} cannot inherit the login role "
                                 f"{resolved.name!r}")
    _check_cycles(model)
    admins = {model.resolve_role(a).name for a, _ in model.admins}
    for name, allowed in model.authenticators.items():
        for target in allowed or ():
            role = _role_in(model, f"authenticator {name!r}", target)
            if role.name in admins:
                raise ModelError(f"authenticator {name!r} may not switch to {role.name!r}: "
                                 "it administers other roles, so SQL inside a request "
                                 "could grant them to anyone")
    _validate_callers(model)
    for admin, target in model.admins:
        _role_in(model, "admin()", admin)
        _role_in(model, "admin(of=)", target)
    for table in model.tables.values():
        for grantee in table.grants:
            _role_in(model, "grants", grantee, table=table.name)
        for pol in table.policies:
            _validate_policy(model, table, pol)
    for view in model.views.values():
        for grantee in view.grants:
            _role_in(model, "grants", grantee, table=view.name)
        _check_helpers(model, view.query, table=view.name, policy=None, text=view.source)

def _validate_callers(model: Model) -> None:
    given = {}
    if model.anonymous is not None:
        given[_role_in(model, "callers(anonymous=)", model.anonymous).name] = "callers"
    for rule in model.assignments:
        given[_role_in(model, f"assign(..., {rule.rule})", rule.role).name] = "assign"
        for name, value in rule.attributes:
            if name not in model.claims:
                known = ", ".join(sorted(model.claims)) or "none declared"
                raise ModelError(f"assign({rule.role!r}) matches unknown context name "
                                 f"{name!r} (known: {known})")
            try:
                model.claims[name].coerce(value)
            except ValueError as exc:
                raise ModelError(f"assign({rule.role!r}): value for {name!r} {exc}"
                                 ) from None
    for name in model.authenticators:
        reachable = {r.name for r in model.switchable(name)}
        for role, where in given.items():
            if role not in reachable:
                raise ModelError(f"role {role!r} is given to callers by {where}() but "
                                 f"authenticator {name!r} cannot switch to it")

def _role_in(model: Model, where: str, role: Role | str, *, table: str | None = None,
             policy: str | None = None) -> Role:
    try:
        resolved = model.resolve_role(role)
    except ModelError as exc:
        raise ModelError(f"{exc} in {where}", table=table, policy=policy) from None
    if resolved.login:
        raise ModelError(f"login role {resolved.name!r} cannot be used in {where}; "
                         "grant to group roles", table=table, policy=policy)
    return resolved

def _check_cycles(model: Model) -> None:
    state: dict[str, int] = {}

    def visit(role: Role, path: list[str]) -> None:
        if state.get(role.name) == 2:
            return
        if state.get(role.name) == 1:
            cycle = path[path.index(role.name):] + [role.name]
            raise ModelError(f"role hierarchy has a cycle: {' -> '.join(cycle)}")
        state[role.name] = 1
        for parent in role.inherits:
            visit(model.resolve_role(parent), path + [role.name])
        state[role.name] = 2

    for role in model.roles.values():
        visit(role, [])

def _validate_policy(model: Model, table: Table, pol: Policy) -> None:
    for role in pol.to:
        _role_in(model, "to=", role, table=table.name, policy=pol.name)
    for expr in (pol.using, pol.with_check):
        if expr is None:
            continue
        _check_helpers(model, expr.tree, table=table.name, policy=pol.name, text=pol.source)
        if table.columns is not None:
            missing = sorted(column_refs(expr.tree, table.name) - table.columns)
            if missing:
                raise ModelError(f"unknown column {missing[0]!r}", table=table.name,
                                 policy=pol.name, text=pol.source)

def _check_helpers(model: Model, node: ast.Node, *, table: str, policy: str | None,
                   text: str) -> None:
    for call in helper_calls(node, model.helpers_schema):
        if call.name == "claim":
            if len(call.args) != 1 or call.args[0] is None:
                raise ModelError(f"{model.helpers_schema}.claim() takes one literal "
                                 "context name", table=table, policy=policy, text=text)
            name = call.args[0]
        else:
            if call.args:
                raise ModelError(f"{model.helpers_schema}.{call.name}() takes no arguments",
                                 table=table, policy=policy, text=text)
            name = call.name
        if name not in model.claims:
            known = ", ".join(sorted(model.claims)) or "none declared"
            raise ModelError(f"unknown context name {name!r} (known: {known})",
                             table=table, policy=policy, text=text)
