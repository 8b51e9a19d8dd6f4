"""Who holds a product role at run time: resolve a caller, explain a refusal, connect.

- `roles_held`: the product roles a caller's context values (user id, groups, attributes
  from a verified token) hold, read from the grants store in the database.
- `context_for`: a verified token's claims → the `RequestContext` of one of those roles,
  for `rlskit.psycopg.transaction` and the other integrations.
- `connect`: a dedicated connection in a role, checked first; a caller without the role
  gets an `AccessError` saying which grant is missing and who can give it.

A caller is either a token (through the application's authenticator login) or a database
login of its own (``psql``): the first holds a role by a grant in the store, the second by
membership (which ``rlskit access grant --user <login>`` also gives).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import psycopg

from ..config import load_config, load_model
from ..context import RequestContext, claim_values, context_settings, for_role
from ..errors import ConfigError
from ..jwt import Verifier
from ..model import Model, Role
from .grants import PRODUCT_KINDS, AccessError, list_grants, read_store

__all__ = ["check", "connect", "context_for", "explain", "product_roles", "roles_held"]

_NATIVE_MEMBERS = """
SELECT m.rolname FROM pg_catalog.pg_auth_members a
JOIN pg_catalog.pg_roles r ON r.oid = a.roleid
JOIN pg_catalog.pg_roles m ON m.oid = a.member
WHERE r.rolname = %s AND m.rolcanlogin ORDER BY 1"""


def product_roles(model: Model) -> dict[str, tuple[str, str, Role]]:
    """Database role name -> (product, kind, model role) for every data product role."""
    return {model.role_name(p.role(kind)): (p.name, kind, p.role(kind))
            for p in model.products.values() for kind in PRODUCT_KINDS}


def roles_held(conn: psycopg.Connection, model: Model, values: Mapping[str, Any]
               ) -> list[str]:
    """The model's product roles (database names) a caller with these context values
    holds."""
    with conn.transaction(force_rollback=True):  # the settings go with it
        for name, value in context_settings(model, values):
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
    """Why `caller` (described) does not hold `role`, and who can change that."""
    target = _target(model, role)
    product, kind, _ = product_roles(model)[target]
    grants = list_grants(conn, model, product)
    owner = model.role_name(model.products[product].owner)
    given = [str(g.grantee) for g in grants if g.role == target]
    owners = [str(g.grantee) for g in grants if g.role == owner]
    owners += [f"login {m!r}" for (m,) in conn.execute(_NATIVE_MEMBERS, [owner])
               if f"user {m!r}" not in owners]
    lines = [f"{caller} does not hold {target} ({kind} of data product {product!r}).",
             "It is granted to: " + ("; ".join(given) or "nobody yet") + ".",
             f"Its owner role {owner} is held by: " + ("; ".join(owners) or "nobody yet")
             + f"; ask them for it (rlskit access grant {product} {kind} --user …)."]
    return " ".join(lines)


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


def check(conn: psycopg.Connection, model: Model, role: str,
          values: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    """The session settings (``role`` first) of a caller acting as `role`, or an
    `AccessError` saying why it may not: with context `values` (a token's, `conn` the
    authenticator's) by the grants store, without (`conn` the caller's own login) by
    membership."""
    if values is not None:
        ctx = _held_context(conn, model, values, role)
        return [("role", ctx.role), *ctx.settings]
    target = _target(model, role)
    (member,) = conn.execute("SELECT pg_catalog.pg_has_role(session_user, %s, 'MEMBER')",
                             [target]).fetchone()
    if not member:
        raise AccessError(explain(conn, model, target, f"login {conn.info.user!r}"))
    return [("role", target)]


def connect(role: str, *, token: str | None = None, url: str | None = None,
            model: Model | None = None, verifier: Verifier | None = None, **kwargs: Any
            ) -> psycopg.Connection:
    """A new connection acting as product role `role`, checked before it is handed over.

    With `token`, `url` is the authenticator's login and the token's grants decide;
    without, `url` is the caller's own login, which must be a member of the role. `url`,
    `model` and `verifier` default to the project's ``[tool.rlskit]`` (database_url,
    model, jwt). The role and context are set for the session: the connection is the
    caller's alone (do not return it to a pool). The product tables' policy still checks
    the grant on every statement, so a revoke takes effect at once.
    """
    if model is None or url is None or (token is not None and verifier is None):
        config = load_config()
        model = model or load_model(config.model, config.root)
        url = url or config.database_url
        if url is None:
            raise ConfigError("no database: pass url= or set RLSKIT_DATABASE_URL")
        if token is not None and verifier is None:
            verifier = config.verifier()
    _target(model, role)
    values = claim_values(model, verifier.verify(token)) if verifier and token else None
    conn = psycopg.connect(url, **kwargs)
    try:
        settings = check(conn, model, role, values)
        conn.rollback()
        for name, value in settings:
            conn.execute("SELECT pg_catalog.set_config(%s, %s, false)", [name, value])
        conn.commit()
    except BaseException:
        conn.close()
        raise
    return conn
