"""Who holds a product role at run time: resolve a caller, explain a refusal, connect.

- `roles_held`: the product roles a caller's context values (user id, groups, attributes
  from a verified token) hold, read from the grants store in the database.
- `context_for`: a verified token's claims → the `RequestContext` of one of those roles,
  for `rlskit.psycopg.transaction` and the other integrations.
- `connect`: a dedicated connection of a person's own login in a role, checked first; a
  caller without the role gets an `AccessError` saying which grant is missing and who can
  give it.

A caller is either a token (through the application's authenticator login, with a sealed
context) or a person's own database login (``psql``): the first holds a role by a grant in
the store, the second by membership (which ``rlskit access grant --user <login>`` also
gives). A token never opens a session of its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import psycopg
from psycopg import sql

from ..config import load_config, load_model
from ..context import RequestContext, claim_values, for_role
from ..errors import ConfigError
from ..model import Model, Role
from ..rows import one
from ..seal import sealed_settings
from .grants import PRODUCT_KINDS, AccessError, read_store

__all__ = ["check", "connect", "context_for", "explain", "product_roles", "roles_held"]

_NATIVE_MEMBERS = """
SELECT m.rolname FROM pg_catalog.pg_auth_members a
JOIN pg_catalog.pg_roles r ON r.oid = a.roleid
JOIN pg_catalog.pg_roles m ON m.oid = a.member
WHERE r.rolname = %s AND m.rolcanlogin AND pg_catalog.pg_has_role(m.oid, r.oid, 'USAGE')
ORDER BY 1"""


def product_roles(model: Model) -> dict[str, tuple[str, str, Role]]:
    """Database role name -> (product, kind, model role) for every data product role."""
    return {model.role_name(p.role(kind)): (p.name, kind, p.role(kind))
            for p in model.products.values() for kind in PRODUCT_KINDS}


def roles_held(conn: psycopg.Connection, model: Model, values: Mapping[str, Any]
               ) -> list[str]:
    """The model's product roles (database names) a caller with these context values
    holds."""
    # the store believes a context sealed for the session's login
    with conn.transaction(force_rollback=True):  # the settings go with it
        for name, value in sealed_settings(model, conn.info.user, values):
            conn.execute("SELECT pg_catalog.set_config(%s, %s, true)", [name, value])
        rows = read_store(conn, model, "roles_held")
    known = product_roles(model)
    return [role for (role,) in rows if role in known]


def _target(model: Model, role: str) -> str:
    """`role` (a model name like ``sales_analytics_analyst`` or the database name) as the
    database role of a product."""
    roles = product_roles(model)
    for name, (_, _, model_role) in roles.items():
        if role in (name, model_role.name):
            return name
    known = ", ".join(r.name for _, _, r in roles.values()) or "none"
    raise AccessError(f"unknown product role {role!r} (the model's: {known})")


def _caller(model: Model, values: Mapping[str, Any]) -> str:
    parts = [f"{name}={value!r}" for name, value in values.items()]
    return "the caller (" + (", ".join(parts) or "no context values") + ")"


def explain(conn: psycopg.Connection, model: Model, role: str, caller: str) -> str:
    """Why `caller` (described) does not hold `role`, and who can change that: the logins
    holding the product's owner role (the grants themselves are for administrators)."""
    target = _target(model, role)
    product, kind, _ = product_roles(model)[target]
    owner = model.role_name(model.products[product].owner)
    owners = [f"login {m!r}" for (m,) in conn.execute(_NATIVE_MEMBERS, [owner])]
    return (f"{caller} does not hold {target} ({kind} of data product {product!r}). Its "
            f"owner role {owner} is held by: {'; '.join(owners) or 'nobody yet'}; ask them "
            f"for it (rlskit access grant {product} {kind} --user …).")


def context_for(conn: psycopg.Connection, model: Model, claims: Mapping[str, Any], *,
                role: str | None = None) -> RequestContext:
    """The context of a caller with verified `claims` in a product role it holds: `role`,
    or the only one it holds. `conn` reads the grants store (the authenticator's)."""
    return _held_context(conn, model, claim_values(model, claims), role)


def _held_context(conn: psycopg.Connection, model: Model, values: Mapping[str, Any],
                  role: str | None) -> RequestContext:
    """The context of a caller with these context values in `role` (or the only product
    role it holds), if the grants store says it holds it."""
    target = None if role is None else _target(model, role)
    held = roles_held(conn, model, values)
    if target is None:
        if len(held) != 1:
            raise AccessError(f"{_caller(model, values)} holds "
                              + (f"several product roles ({', '.join(held)}); request one"
                                 if held else "no product role"))
        target = held[0]
    elif target not in held:
        raise AccessError(explain(conn, model, target, _caller(model, values)))
    return for_role(model, product_roles(model)[target][2], **values)


def check(conn: psycopg.Connection, model: Model, role: str) -> str:
    """The database role of product role `role` if the session's own login holds it (a
    membership, which the store mirrors for user grants), else an `AccessError` saying
    why not and who can grant it."""
    target = _target(model, role)
    (member,) = one(conn.execute("SELECT pg_catalog.pg_has_role(session_user, %s, 'MEMBER')",
                             [target]))
    if not member:
        raise AccessError(explain(conn, model, target, f"login {conn.info.user!r}"))
    return target


def connect(role: str, *, url: str | None = None, model: Model | None = None,
            **kwargs: Any) -> psycopg.Connection:
    """A new connection of your own login (`url`) acting as product role `role`, checked
    before it is handed over.

    A person always connects as their own LOGIN role, never as the application's
    authenticator: a token is the application's proof of a caller, not a key to a
    session (whoever held the session could forge any context). `url` and `model`
    default to the project's ``[tool.rlskit]``. The product tables' policy still checks
    the membership on every statement, so a revoke takes effect at once.
    """
    if "token" in kwargs:
        raise TypeError("rlskit.connect() takes no token: a person connects as their own "
                        "login (grant it the role), never through the authenticator")
    if model is None or url is None:
        config = load_config()
        model = model or load_model(config.model, config.root)
        url = url or config.database_url
        if url is None:
            raise ConfigError("no database: pass url= or set RLSKIT_DATABASE_URL")
    _target(model, role)
    conn = psycopg.connect(url, **kwargs)
    try:
        target = check(conn, model, role)
        conn.rollback()
        conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(target)))
        conn.commit()
    except BaseException:
        conn.close()
        raise
    return conn
