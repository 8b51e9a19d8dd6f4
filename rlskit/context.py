"""The request context: verified claims → the caller's database role and session settings.

`from_claims` maps a verified token's claims through the model (`Claim`s for the values,
`assign`/`callers` for the role) to an immutable `RequestContext`; nothing here touches a
connection, so a bad token never changes one. `as_context` makes a context current for the
integrations that read it (SQLAlchemy).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from .claims import lookup
from .errors import ContextError, ModelError
from .model import Assignment, Model, Role

if TYPE_CHECKING:
    from .jwt import Verifier

__all__ = [
    "RequestContext",
    "anonymous",
    "as_context",
    "claim_values",
    "context_settings",
    "current",
    "for_role",
    "from_claims",
    "from_token",
]


@dataclass(frozen=True)
class RequestContext:
    """Who is asking: a database role and the typed context values.

    `settings` holds every context setting the model declares, in order, as the text
    ``set_config`` receives (an absent value is ``''``, which the helpers read as NULL);
    `limits` the role's limits (``statement_timeout`` …); all are transaction-local. A
    `sealed` context also carries a seal over the role and `settings` (`rlskit.seal`). A
    `propagated` one (a Citus model's) is applied by ``SET LOCAL`` commands, which Citus
    sends on to its workers.
    """

    role: str
    model_role: str
    values: Mapping[str, Any]
    settings: tuple[tuple[str, str], ...]
    limits: tuple[tuple[str, str], ...] = ()
    sealed: bool = False
    propagated: bool = False

    def __getattr__(self, name: str) -> Any:
        values = self.__dict__.get("values", {})
        if name in values:
            return values[name]
        raise AttributeError(f"RequestContext has no value {name!r}")


def from_claims(model: Model, claims: Mapping[str, Any], *, role: str | None = None
                ) -> RequestContext:
    """The context of a caller whose verified token holds `claims`; `role` requests one of
    the roles the model gives that caller (default: the one that inherits all the others)."""
    values = claim_values(model, claims)
    chosen = _select_role(model, claims, values, role)
    return _context(model, chosen, values)


def claim_values(model: Model, claims: Mapping[str, Any]) -> dict[str, Any]:
    """The model's context values in a verified token's claims, typed (absent optional
    claims are left out)."""
    if not isinstance(claims, Mapping):
        raise ContextError(f"claims must be a JSON object, got {type(claims).__name__}")
    values = {}
    for name, claim in model.claims.items():
        raw = lookup(claims, claim.keys)
        if raw is None:
            if claim.required:
                raise ContextError(f"token has no {claim.label!r} claim, which "
                                   f"{model.setting_name(name)} requires")
            continue
        try:
            values[name] = claim.coerce(raw)
        except ValueError as exc:
            raise ContextError(f"claim {claim.label!r} {exc}") from None
    return values


def from_token(model: Model, verifier: Verifier, token: str | None, *,
               role: str | None = None) -> RequestContext:
    """The context of a request bearing `token` (verified first); no token: `anonymous`."""
    if token is None:
        if role is not None:
            raise ContextError(f"role {role!r} was requested without a token")
        return anonymous(model)
    return from_claims(model, verifier.verify(token), role=role)


def anonymous(model: Model) -> RequestContext:
    """The context of a caller without a token: the model's anonymous role, no values."""
    if model.anonymous is None:
        raise ContextError("no token given and the model declares no anonymous role "
                           "(model.callers(anonymous=...))")
    return _context(model, model.resolve_role(model.anonymous), {})


def for_role(model: Model, role: Role | str, **values: Any) -> RequestContext:
    """A context built by trusted code (a job, a test) rather than from a token: any group
    role of the model and any subset of its context values."""
    try:
        resolved = model.resolve_role(role)
    except ModelError as exc:
        raise ContextError(str(exc)) from None
    if resolved.login:
        raise ContextError(f"role {resolved.name!r} is a login role, not a group role")
    typed = {}
    for name, value in values.items():
        if name not in model.claims:
            raise ContextError(f"unknown context name {name!r} "
                               f"(known: {', '.join(sorted(model.claims)) or 'none'})")
        if value is None:
            continue
        try:
            typed[name] = model.claims[name].coerce(value)
        except ValueError as exc:
            raise ContextError(f"context value {name!r} {exc}") from None
    return _context(model, resolved, typed)


def context_settings(model: Model, values: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    """Every context setting the model declares, as ``set_config`` receives it (``''``
    for an absent value, which the helpers read as NULL)."""
    return tuple((model.setting_name(name),
                  claim.setting_text(values[name]) if name in values else "")
                 for name, claim in model.claims.items())


def _context(model: Model, role: Role, values: dict[str, Any]) -> RequestContext:
    return RequestContext(model.role_name(role), role.name, MappingProxyType(values),
                          context_settings(model, values), model.limits(role), model.sealed,
                          propagated=model.citus)


def _select_role(model: Model, claims: Mapping[str, Any], values: Mapping[str, Any],
                 requested: str | None) -> Role:
    granted = [model.resolve_role(rule.role) for rule in model.assignments
               if _matches(model, rule, claims, values)]
    if not granted:
        raise ContextError(f"the model gives this caller no role (role claim "
                           f"{_show(lookup(claims, model.role_claim))}, groups "
                           f"{_show(lookup(claims, model.groups_claim))})")
    lineage = {g: model.ancestors(g) for g in granted}  # each granted role and its parents
    if requested is not None:
        reachable = {r.name: r for roles in lineage.values() for r in roles}
        if requested not in reachable:
            raise ContextError(f"role {_show(requested)} is not granted to this caller "
                               f"(granted: {', '.join(sorted({g.name for g in granted}))})")
        return reachable[requested]
    top = [g for g, roles in lineage.items() if all(other in roles for other in lineage)]
    if not top:
        names = ", ".join(sorted({g.name for g in granted}))
        raise ContextError(f"this caller holds several unrelated roles ({names}); "
                           "request one of them")
    return top[0]


def _matches(model: Model, rule: Assignment, claims: Mapping[str, Any],
             values: Mapping[str, Any]) -> bool:
    if rule.role_claim is not None:
        return rule.role_claim in _strings(lookup(claims, model.role_claim))
    if rule.group is not None:
        return rule.group in _strings(lookup(claims, model.groups_claim))
    return all(name in values and values[name] == model.claims[name].coerce(expected)
               for name, expected in rule.attributes)


def _strings(value: Any) -> tuple[str, ...]:
    """A claim holding one string or a list of strings, as a tuple (anything else: empty)."""
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list):
        return tuple(v for v in value if isinstance(v, str))
    return ()


def _show(value: Any) -> str:
    """A claim value for an error message, cut short (a token may carry anything)."""
    if value is None:
        return "missing"
    text = repr(value)
    return text if len(text) <= 60 else text[:60] + "…"


_current: ContextVar[RequestContext | None] = ContextVar("rlskit_context", default=None)


def current() -> RequestContext | None:
    """The context made current by `as_context`, if any."""
    return _current.get()


@contextmanager
def as_context(ctx: RequestContext) -> Iterator[RequestContext]:
    """Make `ctx` the context of every transaction begun inside the block (SQLAlchemy
    engines with `rlskit.sqlalchemy.install`)."""
    if not isinstance(ctx, RequestContext):
        raise ContextError(f"as_context needs a RequestContext, got {type(ctx).__name__}")
    token = _current.set(ctx)
    try:
        yield ctx
    finally:
        _current.reset(token)
