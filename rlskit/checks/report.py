"""Lint findings as a rich table, JSON, or SARIF 2.1.0 (for code-scanning dashboards)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from rich.table import Table

from ..version import __version__
from .findings import Finding
from .rules import RULES

__all__ = ["as_json", "as_sarif", "as_table"]

_STYLE = {"error": "bold red", "warning": "yellow"}


def as_table(findings: list[Finding], title: str) -> Table:
    table = Table(title=title, show_lines=True)
    for column in ("rule", "severity", "object", "finding", "fix"):
        table.add_column(column, overflow="fold")
    for f in findings:
        severity = (f"[dim]waived[/]\n{f.waived}" if f.waived
                    else f"[{_STYLE[f.severity]}]{f.severity}[/]")
        table.add_row(f.rule, severity, f.object, f"{f.title}: {f.message}", f.fix)
    return table


def as_json(findings: list[Finding]) -> list[dict[str, Any]]:
    return [asdict(f) for f in findings]


def as_sarif(findings: list[Finding]) -> dict[str, Any]:
    """A SARIF log with the whole catalogue as rules and one result per finding; a waived
    finding carries its reason as a suppression."""
    rules = [{
        "id": r.id,
        "name": r.title,
        "shortDescription": {"text": r.title},
        "fullDescription": {"text": r.why},
        "defaultConfiguration": {"level": r.severity},
    } for r in RULES.values()]
    index = {r.id: i for i, r in enumerate(RULES.values())}
    results = []
    for f in findings:
        result: dict[str, Any] = {
            "ruleId": f.rule,
            "ruleIndex": index[f.rule],
            "level": f.severity,
            "message": {"text": f"{f.object}: {f.message}. Fix: {f.fix}"},
            "locations": [{"logicalLocations": [{"fullyQualifiedName": f.object}]}],
            "properties": {"fix": f.fix},
        }
        if f.waived:
            result["suppressions"] = [{"kind": "inSource", "justification": f.waived}]
        results.append(result)
    return {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{"tool": {"driver": {"name": "rlskit", "version": __version__,
                                      "rules": rules}},
                  "results": results}],
    }
