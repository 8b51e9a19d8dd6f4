"""What the model promises, independent of what the database holds: which actor has which
privilege on which relation, and which rows each policy set admits (as SQL predicates
composed from the model's own policies, the way PostgreSQL combines them)."""

from __future__ import annotations

from dataclasses import dataclass

from .. import objects as o
from ..model import Model, row_commands
from ..sqltext import relations_read

__all__ = ["Actor", "Promises", "actors"]


@dataclass(frozen=True)
class Actor:
    """Someone the matrix probes: a model role, the authenticator itself, or the owner."""

    name: str  # database role
    label: str  # as the matrix shows it
    uses: frozenset[str]  # roles whose grants and policies apply to it
    owner: bool = False


def actors(model: Model, owner: str) -> list[Actor]:
    out = [Actor(model.role_name(r), r.name,
                 frozenset(model.role_name(a) for a in model.ancestors(r)))
           for r in model.group_roles]
    out += [Actor(model.role_name(name), name, frozenset({model.role_name(name)}))
            for name in model.authenticators]
    return out + [Actor(owner, "owner", frozenset({owner}), owner=True)]


class Promises:
    def __init__(self, model: Model, objects: list[o.DbObject]) -> None:
        self.rls = {f"{r.schema}.{r.table}" for r in objects if isinstance(r, o.RowSecurity)}
        self.grants: dict[tuple[str, str], tuple] = {}
        for g in objects:
            if isinstance(g, o.TableGrant):
                self.grants[(f"{g.schema}.{g.table}", g.role)] = g.privileges
        self.policies: dict[str, list[o.DbPolicy]] = {}
        for p in objects:
            if isinstance(p, o.DbPolicy):
                self.policies.setdefault(f"{p.schema}.{p.table}", []).append(p)
        self.views = {f"{v.schema}.{v.name}": v for v in objects if isinstance(v, o.DbView)}

    def allowed(self, actor: Actor, relation: str, command: str,
                columns: tuple[str, ...] = ()) -> bool:
        """Does `actor` hold `command` on `relation` (on every one of `columns`)?"""
        if actor.owner and relation not in self.views:
            return True
        needed = set(columns)
        for role in actor.uses:
            for priv in self.grants.get((relation, role), ()):
                if priv.name == command:
                    if not priv.columns:
                        return True
                    needed -= set(priv.columns)
        return bool(columns) and not needed

    def columns(self, actor: Actor, relation: str, command: str) -> tuple[str, ...] | None:
        """The columns `actor` may use `command` on, or None for all of them."""
        if actor.owner and relation not in self.views:
            return None
        found: list[str] = []
        for role in actor.uses:
            for priv in self.grants.get((relation, role), ()):
                if priv.name == command:
                    if not priv.columns:
                        return None
                    found += [c for c in priv.columns if c not in found]
        return tuple(found)

    def rows(self, actor: Actor, relation: str, command: str, check: bool = False
             ) -> str | None:
        """SQL predicate over `relation`'s columns: rows `command` may read or touch
        (``check``: new rows it may write). RESTRICTIVE policies all hold, and at least one
        PERMISSIVE one; a table without RLS admits every row; None: no permissive policy
        applies, so no row is admitted."""
        if relation not in self.rls:
            return "true"
        applies = [p for p in self.policies.get(relation, ())
                   if command in row_commands(p.command)
                   and (not p.roles or set(p.roles) & actor.uses)]

        def text(p: o.DbPolicy) -> str | None:
            return (p.with_check or p.using) if check else p.using

        restrictive = [t for p in applies if not p.permissive and (t := text(p))]
        permissive = [t for p in applies if p.permissive and (t := text(p))]
        if not permissive:
            return None
        either = " OR ".join(f"({t})" for t in permissive)
        return " AND ".join([*(f"({t})" for t in restrictive), f"({either})"])

    def reads(self, relation: str) -> set[str]:
        """The relations that `relation`'s policies (or its view query) read."""
        schema = relation.partition(".")[0]
        texts = [f"SELECT {t}" for p in self.policies.get(relation, ())
                 for t in (p.using, p.with_check) if t is not None]
        if relation in self.views:
            texts.append(self.views[relation].query)
        return {r for text in texts for r in relations_read(text, schema)}
