"""Who holds a data product's roles, managed as data: grant, revoke, list, promote.

Every change goes through the store's functions (see `store`), so the database itself
checks that the session user may administer the role, and records who, when and why.
Input is checked against the model first (product, role, attribute and its type), so a
mistake is reported before anything is sent; a promotion runs in one transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg import errors, sql

from ..errors import ModelError, RlskitError
from ..model import DataProduct, Model
from ..render import Ident
from ..rows import one

__all__ = [
    "AccessError",
    "Grant",
    "Grantee",
    "Promotion",
    "grant",
    "grantee",
    "history",
    "list_grants",
    "plan_promotion",
    "product_role",
    "promote",
    "revoke",
]

PRODUCT_KINDS = ("analyst", "engineer", "owner")
_IDENTITY = ("user_id", "groups")  # who the caller is, not an attribute of it
_NO_STORE = ("this database has no grants store: migrate it with a model that declares a "
             "data product")


class AccessError(RlskitError):
    """A grant, revoke or promotion was refused: bad input or missing rights."""


@dataclass(frozen=True, order=True)
class Grantee:
    """Whom a grant names: a user id, a group, or an attribute rule ``subject = value``."""

    kind: str
    subject: str
    value: str = ""

    def __str__(self) -> str:
        if self.kind == "attribute":
            return f"attribute {self.subject} = {self.value!r}"
        return f"{self.kind} {self.subject!r}"


@dataclass(frozen=True)
class Grant:
    role: str  # the database role, environment prefix included
    grantee: Grantee
    granted_by: str = ""
    granted_at: datetime | None = None
    reason: str = ""


@dataclass(frozen=True)
class Promotion:
    """Grants to copy into the target environment (role names translated) and the grants
    the target has that the source lacks (left alone)."""

    add: list[Grant]
    only_in_target: list[Grant]


def product_role(model: Model, product: str, role: str) -> str:
    """The database role of `role` (analyst, engineer, owner) in data product `product`."""
    try:
        return model.role_name(_product(model, product).role(role))
    except ModelError as exc:
        raise AccessError(str(exc)) from None


def _product(model: Model, name: str) -> DataProduct:
    if name not in model.products:
        known = ", ".join(sorted(model.products)) or "none"
        raise AccessError(f"unknown data product {name!r} (the model declares: {known})")
    return model.products[name]


def grantee(model: Model, *, user: str | None = None, group: str | None = None,
            attribute: str | None = None) -> Grantee:
    """Exactly one of a user id, a group name, or an attribute rule ``"name=value"`` whose
    name is one of the model's context values (the value is checked against its type)."""
    given = [(k, v) for k, v in (("user", user), ("group", group), ("attribute", attribute))
             if v is not None]
    if len(given) != 1:
        raise AccessError("name exactly one grantee: a user, a group or an attribute rule")
    kind, text = given[0]
    if not text.strip():
        raise AccessError(f"the {kind} must not be empty")
    if kind != "attribute":
        return Grantee(kind, text)
    name, sep, value = text.partition("=")
    name, value = name.strip(), value.strip()
    if not sep or not name or not value:
        raise AccessError(f"an attribute rule looks like department=Finance, got {text!r}")
    usable = [n for n, c in model.claims.items()
              if c.sql_type != "text[]" and n not in _IDENTITY]
    claim = model.claims.get(name)
    if claim is None or name not in usable:
        raise AccessError(f"unknown attribute {name!r} (attributes in the model's context: "
                          f"{', '.join(usable) or 'none'})")
    try:
        typed = claim.coerce(value)
    except ValueError as exc:
        raise AccessError(f"attribute {name} {exc}") from None
    return Grantee(kind, name, claim.setting_text(typed))


def _reason(reason: str) -> str:
    if not isinstance(reason, str) or not reason.strip():
        raise AccessError("a reason is required (it goes into the audit trail)")
    return reason.strip()


def _change(conn: psycopg.Connection, model: Model, function: str, role: str,
            who: Grantee, reason: str) -> bool:
    try:
        with conn.transaction():
            (changed,) = one(conn.execute(
                sql.SQL("SELECT {}(%s, %s, %s, %s, %s)").format(
                    Ident(model.helpers_schema, function)),
                [role, who.kind, who.subject, who.value, reason]))
    except errors.InsufficientPrivilege as exc:
        message = exc.diag.message_primary or str(exc)
        if message.startswith("permission denied for function"):  # holds no model role
            verb = function.partition("_")[0]
            message = (f"{conn.info.user} may not {verb} {role}: that takes ADMIN on the role "
                       "(its product's owner role has it)")
        raise AccessError(message) from None
    except (errors.UndefinedObject, errors.InvalidParameterValue) as exc:
        raise AccessError(exc.diag.message_primary or str(exc)) from None
    except (errors.UndefinedFunction, errors.InvalidSchemaName):
        raise AccessError(_NO_STORE) from None
    return bool(changed)


def grant(conn: psycopg.Connection, model: Model, product: str, role: str, who: Grantee,
          reason: str) -> bool:
    """Give `who` the product's `role`; False if it already held it by this grant."""
    return _change(conn, model, "grant_access", product_role(model, product, role), who,
                   _reason(reason))


def revoke(conn: psycopg.Connection, model: Model, product: str, role: str, who: Grantee,
           reason: str) -> None:
    """Take the product's `role` from `who` (effective from the caller's next statement)."""
    target = product_role(model, product, role)
    if not _change(conn, model, "revoke_access", target, who, _reason(reason)):
        raise AccessError(f"{who} holds no grant of {target} to revoke")


def _roles(model: Model, product: str | None) -> dict[str, tuple[str, str]]:
    """Database role -> (product, kind) for one product or all."""
    names = [_product(model, product).name] if product is not None else sorted(model.products)
    return {product_role(model, p, k): (p, k) for p in names for k in PRODUCT_KINDS}


def read_store(conn: psycopg.Connection, model: Model, function: str) -> list[tuple]:
    """The rows of one of the store's set-returning functions."""
    try:
        with conn.transaction():
            return conn.execute(sql.SQL("SELECT * FROM {}()").format(
                Ident(model.helpers_schema, function))).fetchall()
    except (errors.UndefinedFunction, errors.InvalidSchemaName):
        raise AccessError(_NO_STORE) from None
    except errors.InsufficientPrivilege:
        raise AccessError(f"{conn.info.user!r} may not read the grants store: it holds none "
                          "of the model's roles") from None


def list_grants(conn: psycopg.Connection, model: Model, product: str | None = None
                ) -> list[Grant]:
    """The grants of the model's products (or one product), ordered by role and grantee."""
    roles = _roles(model, product)
    rows = read_store(conn, model, "access_grants")
    return [Grant(role, Grantee(kind, subject, value), by, at, reason)
            for role, kind, subject, value, by, at, reason in rows if role in roles]


def history(conn: psycopg.Connection, model: Model, product: str | None = None
            ) -> list[tuple]:
    """The audit trail (at, actor, action, role, grantee, reason) of the roles the session
    user administers."""
    roles = _roles(model, product)
    rows = read_store(conn, model, "access_history")
    return [(at, actor, action, role, Grantee(kind, subject, value), reason)
            for at, actor, action, role, kind, subject, value, reason in rows
            if role in roles]


def plan_promotion(source: list[Grant], source_model: Model, target: list[Grant],
                   target_model: Model) -> Promotion:
    """What copying `source`'s grants into the target environment would add."""
    rename = {product_role(source_model, p, k): product_role(target_model, p, k)
              for p in source_model.products for k in PRODUCT_KINDS
              if p in target_model.products}
    have = {(g.role, g.grantee) for g in target}
    add = [Grant(rename[g.role], g.grantee, reason=g.reason) for g in source
           if g.role in rename and (rename[g.role], g.grantee) not in have]
    wanted = {(rename[g.role], g.grantee) for g in source if g.role in rename}
    return Promotion(add, [g for g in target if (g.role, g.grantee) not in wanted])


def promote(conn: psycopg.Connection, model: Model, plan: Promotion, source: str) -> int:
    """Apply `plan` to the target database in one transaction (all grants or none); each
    keeps its reason, marked as promoted from `source`."""
    with conn.transaction():
        for g in plan.add:
            _change(conn, model, "grant_access", g.role, g.grantee,
                    f"promoted from {source}: {g.reason}")
    return len(plan.add)

