"""``rlskit check``: lint a model, or a live database against its model, for RLS mistakes.

``check_model(model)`` looks at what the model's migrations would create;
``check_database(conn, model)`` looks at everything in the database's user schemas,
including objects the model does not manage. Both return `Finding`s sorted by rule and
object; a finding the model waives (`Model.waive`) keeps its place, marked with the
reason, and never counts as an error.
"""

from __future__ import annotations

import psycopg

from ..errors import ModelError
from ..generate import DEFAULT_PG_VERSION
from ..model import Model, Waiver
from .facts import Facts, from_model
from .findings import Finding
from .live import read_facts
from .rules import RULES, Rule

__all__ = ["RULES", "Finding", "Rule", "check_database", "check_facts", "check_model",
           "has_errors"]


def _waiver(waivers: list[Waiver], rule: str, obj: str) -> Waiver | None:
    for w in waivers:
        if w.rule == rule and (obj == w.on or obj.startswith(w.on + ".")):
            return w
    return None


def check_facts(facts: Facts, waivers: list[Waiver]) -> list[Finding]:
    """Run every rule over `facts`."""
    for w in waivers:
        if w.rule not in RULES:
            raise ModelError(f"waive: unknown check rule {w.rule!r} (rules are "
                             f"{min(RULES)} to {max(RULES)})")
    findings = []
    for r in RULES.values():
        for hit in r.check(facts):
            waiver = _waiver(waivers, r.id, hit.object)
            findings.append(Finding(r.id, r.severity, r.title, hit.object, hit.message, r.why,
                                    hit.fix, waiver.reason if waiver else None))
    return sorted(findings, key=lambda f: (f.rule, f.object, f.message))


def check_model(model: Model, pg_version: int = DEFAULT_PG_VERSION) -> list[Finding]:
    """Lint what `model` generates for PostgreSQL `pg_version`, without a database."""
    return check_facts(from_model(model, pg_version), model.waivers)


def check_database(conn: psycopg.Connection, model: Model) -> list[Finding]:
    """Lint the live database `conn` is connected to, with `model` naming the
    application's roles, tenant columns and settings."""
    model.validate()
    return check_facts(read_facts(conn, model), model.waivers)


def has_errors(findings: list[Finding]) -> bool:
    return any(f.counts for f in findings)
