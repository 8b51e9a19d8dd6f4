"""A table's policies in the form Citus keeps: permissive only, no subqueries.

Citus copies a table's policies to its shards by deparsing them, and (as of 14.0) drops
``AS RESTRICTIVE`` on the way: a restrictive tenant-isolation policy arrives on every
shard as a permissive one, where it admits a tenant's rows *or* whatever the other rules
admit — every tenant's rows, beside a ``USING (true)`` rule. Citus also refuses subqueries
in policies on its tables. So on a distributed or reference table rlskit writes every
restrictive policy into each permissive one (a row passes ``(r₁ AND … AND rₙ) AND p``, the
same rows PostgreSQL admits with the restrictive policies beside them) and reads the
context through plain helper calls (evaluated per row, on the workers). A restrictive
policy for some roles only, or for one command beside a rule for all, is refused: folding
it would need the rules split per role or command.
"""

from __future__ import annotations

from dataclasses import replace

from . import objects as o
from .errors import ModelError
from .model import Table
from .sqltext import SqlTextError, deparse, parse_expression, unwrapped_expression

__all__ = ["citus_policies"]

_NO_CHECK = ("SELECT", "DELETE")  # commands whose policies have no WITH CHECK
_NO_USING = ("INSERT",)  # … and no USING


def citus_policies(table: Table, policies: list[o.DbPolicy], helpers: str
                   ) -> list[o.DbPolicy]:
    """`policies` of `table` as Citus keeps them (see the module)."""
    plain = [_unwrapped(table, p, helpers) for p in policies]
    restrictive = [p for p in plain if not p.permissive]
    for r in restrictive:
        if r.roles:
            raise ModelError(f"table {table.name!r}, policy {r.name!r}: a restrictive policy "
                             "for some roles cannot be kept on a Citus table (Citus copies "
                             "it to the shards as permissive); make it apply to every role")
    return [_folded(table, p, restrictive) for p in plain if p.permissive]


def _unwrapped(table: Table, pol: o.DbPolicy, helpers: str) -> o.DbPolicy:
    try:
        return replace(pol, using=pol.using and unwrapped_expression(pol.using, helpers),
                       with_check=pol.with_check and unwrapped_expression(pol.with_check,
                                                                          helpers))
    except SqlTextError as exc:
        raise ModelError(f"table {table.name!r}, policy {pol.name!r}: {exc}, which Citus "
                         "refuses on a distributed or reference table") from None


def _folded(table: Table, pol: o.DbPolicy, restrictive: list[o.DbPolicy]) -> o.DbPolicy:
    """`pol` with every restrictive policy that applies to its command written into it."""
    applying = [r for r in restrictive if r.command in ("ALL", pol.command)]
    for r in applying:
        if r.command != "ALL" and pol.command == "ALL":
            raise ModelError(f"table {table.name!r}: the restrictive policy {r.name!r} "
                             f"applies to {r.command} only and {pol.name!r} to every "
                             "command; on a Citus table write the rule per command")
    if not applying:
        return pol
    using = with_check = None
    if pol.command not in _NO_USING:
        using = _all([*(r.using or "true" for r in applying), pol.using or "true"])
    if pol.command not in _NO_CHECK:
        with_check = _all([*(r.with_check or r.using or "true" for r in applying),
                           pol.with_check or pol.using or "true"])
    return replace(pol, using=using, with_check=with_check)


def _all(conditions: list[str]) -> str:
    """The conditions joined by AND (a ``true`` among others left out), as deparsed SQL."""
    kept = [c for c in conditions if c.strip().lower() not in ("true", "(true)")] or ["true"]
    return deparse(parse_expression(" AND ".join(f"({c})" for c in kept)))
