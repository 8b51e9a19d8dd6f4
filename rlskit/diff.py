"""Compare the model with a live database, by meaning, and say what must change.

Both sides are canonicalised (`fingerprint`): privileges and policy roles in a fixed order,
options sorted, expressions and queries as the server prints them (see `normalize`).
A change is an ALTER where PostgreSQL allows one, and drop + create only where it must.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import psycopg

from . import objects as o
from .catalog import privilege_key, read_catalog
from .ddl import alter, create, drop, policy_delta
from .keystore import verifier_source
from .kinds import KINDS, position
from .model import Model
from .normalize import normalize
from .render import render
from .sqltext import canonical_expression
from .target import target_objects
from .textenum import TextEnum

__all__ = ["Action", "Change", "compare", "diff_database", "drift_sql"]

class Action(TextEnum):
    """What a change does to one object."""

    CREATE = "create"
    ALTER = "alter"  # in place (ALTER POLICY, GRANT / REVOKE, CREATE OR REPLACE)
    REPLACE = "replace"  # drop, then create
    DROP = "drop"


@dataclass(frozen=True)
class Change:
    """``create`` (old is None), ``drop`` (new is None), ``alter`` or ``replace``
    (drop + create) of one object."""

    action: Action
    old: o.DbObject | None
    new: o.DbObject | None

    @property
    def obj(self) -> o.DbObject:
        return self.new if self.new is not None else self.old  # type: ignore[return-value]

    def statements(self, pg_version: int) -> list[str]:
        old, new = self.old, self.new
        if self.action is Action.CREATE and new is not None:
            stmts = create(new, pg_version)
        elif self.action is Action.DROP and old is not None:
            stmts = drop(old, pg_version)
        elif self.action is Action.ALTER and old is not None and new is not None:
            stmts = alter(old, new, pg_version) or []
        elif old is not None and new is not None:  # replace
            stmts = [*drop(old, pg_version), *create(new, pg_version)]
        else:
            raise ValueError(f"a {self.action} change without its objects")
        return [render(s) for s in stmts]


def fingerprint(obj: o.DbObject, pg_version: int) -> object:
    """What must be equal for two objects with the same key to be the same state."""
    if isinstance(obj, o.HelperFunction):
        return obj.key, obj.returns, obj.definition
    if isinstance(obj, o.ContextSeal):
        return obj, obj.definition or verifier_source(obj)
    if isinstance(obj, o.AccessStore):
        return obj, obj.functions
    if isinstance(obj, o.Membership) and pg_version < 16:
        return obj.key, obj.admin  # no INHERIT/SET options before PostgreSQL 16
    if isinstance(obj, o.TableGrant):
        privileges = tuple(sorted((dataclasses.replace(p, columns=tuple(sorted(p.columns)))
                                   for p in obj.privileges), key=privilege_key))
        return dataclasses.replace(obj, privileges=privileges)
    if isinstance(obj, o.DbPolicy):  # commuted = / <> operands, AND / OR terms: the same
        return dataclasses.replace(
            obj, roles=tuple(sorted(obj.roles)),
            using=obj.using and canonical_expression(obj.using),
            with_check=obj.with_check and canonical_expression(obj.with_check))
    if isinstance(obj, o.DbView):
        return dataclasses.replace(obj, options=tuple(sorted(obj.options)))
    return obj


def _keep_unchanged(want: o.DbObject, canonical: o.DbObject, have: o.DbObject
                    ) -> o.DbObject:
    """For a policy ALTER can change: the live policy with only the clauses that change
    taken from `want`, so the ALTER names just those."""
    if isinstance(want, o.DbPolicy):
        clauses = policy_delta(have, canonical)  # type: ignore[arg-type]
        if clauses is not None:
            return dataclasses.replace(have, **{c: getattr(want, c) for c in clauses})
    return want


def _drop_order(change: Change, views: set[tuple[str, str]]) -> int:
    """Dependents first: grants on views, views, policies, ... schemas."""
    obj = change.old
    if isinstance(obj, o.TableGrant) and (obj.schema, obj.table) in views:
        return -len(KINDS)
    return -position(obj)


def compare(target: list[o.DbObject], normalized: list[o.DbObject], live: list[o.DbObject],
            pg_version: int) -> list[Change]:
    """Changes that turn `live` into `target` (`normalized` is `target` after `normalize`).

    Drops come first (dependents before what they depend on), then creates and alters in
    the target's dependency order. A view that must be dropped and created has its grants
    revoked first and granted again after, so that every step has an exact reverse.
    """
    live_by_key = {obj.key: obj for obj in live}
    target_keys = {obj.key for obj in target}
    drops = [Change(Action.DROP, obj, None) for obj in live if obj.key not in target_keys]
    changes = []
    recreated: set[tuple[str, str]] = set()
    for want, canonical in zip(target, normalized, strict=True):
        have = live_by_key.get(want.key)
        lost = isinstance(want, o.TableGrant) and (want.schema, want.table) in recreated
        if have is None or lost:
            changes.append(Change(Action.CREATE, None, want))
        elif fingerprint(canonical, pg_version) != fingerprint(have, pg_version):
            in_place = alter(have, canonical, pg_version) is not None
            want = _keep_unchanged(want, canonical, have)
            changes.append(Change(Action.ALTER if in_place else Action.REPLACE, have, want))
            if isinstance(want, o.DbView) and not in_place:
                recreated.add((want.schema, want.name))
    dropped = {c.old.key for c in drops}  # type: ignore[union-attr]
    drops += [Change(Action.DROP, obj, None) for obj in live
              if isinstance(obj, o.TableGrant) and (obj.schema, obj.table) in recreated
              and obj.key not in dropped]
    views = recreated | {(v.schema, v.name) for v in live if isinstance(v, o.DbView)}
    drops.sort(key=lambda c: _drop_order(c, views))
    return drops + changes


def diff_database(conn: psycopg.Connection, model: Model) -> list[Change]:
    """The changes that would bring the database `conn` is connected to in line with
    `model` (the database itself is left untouched)."""
    pg_version = conn.info.server_version // 10000
    target = target_objects(model, pg_version)
    live = read_catalog(conn, model)
    normalized = normalize(conn, target, {obj.key for obj in live}, pg_version)
    return compare(target, normalized, live, pg_version)


def drift_sql(changes: list[Change], pg_version: int) -> str:
    """The changes as one SQL script, each statement headed by what it does."""
    lines = []
    for change in changes:
        lines.append(f"-- {change.action} {' '.join(map(str, change.obj.key))}")
        lines += [stmt + ";" for stmt in change.statements(pg_version)]
    return "\n".join(lines) + ("\n" if lines else "")
