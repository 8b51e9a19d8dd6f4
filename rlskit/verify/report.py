"""The access matrix as a rich table, Markdown, JSON or a standalone HTML page.

Rows are relation × command, columns the actors; each cell says what the model promises
and whether the database proved it (✓) or violated it (✗). Violations follow with the
context, the expected and the actual outcome; then the side-channel probes.
"""

from __future__ import annotations

import html
from dataclasses import asdict
from typing import Any

from rich.table import Table

from .matrix import Cell, Matrix

__all__ = ["as_html", "as_json", "as_markdown", "as_tables"]


def _grid(matrix: Matrix) -> tuple[list[str], list[tuple[list[str], list[bool]]]]:
    """Header, then per relation × command the cell texts and whether each was proven."""
    header = ["relation", "command", *matrix.actors]
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for cell in matrix.cells:
        rows.setdefault((cell.relation, cell.command), {})[cell.actor] = cell
    out = []
    for (relation, command), cells in rows.items():
        texts = [relation, command]
        proven = [True, True]
        for actor in matrix.actors:
            cell = cells[actor]
            texts.append(f"{'✓' if cell.proven else '✗'} {cell.promise}")
            proven.append(cell.proven)
        out.append((texts, proven))
    return header, out


def _violations(matrix: Matrix) -> list[list[str]]:
    return [[c.actor, c.relation, c.command, o.context, str(o.expected), str(o.actual)]
            for c in matrix.violations for o in c.observations if not o.ok]


def _side_channels(matrix: Matrix) -> list[list[str]]:
    return [[s.relation, s.actor, s.probe, str(s.outcome),
             "proven" if s.ok else "LEAK: " + ", ".join(s.revealed)]
            for s in matrix.side_channels]


VIOLATION_HEADER = ["actor", "relation", "command", "context", "expected", "actual"]
SIDE_HEADER = ["relation", "actor", "probe", "outcome", "verdict"]


def as_tables(matrix: Matrix) -> list[Table]:
    header, rows = _grid(matrix)
    grid = Table(title="Access matrix (✓ proven, ✗ violated; contexts: tenant A, tenant B, "
                       "none)", show_lines=False)
    for name in header:
        grid.add_column(name, overflow="fold")
    for texts, proven in rows:
        grid.add_row(*(t if ok else f"[bold red]{t}[/]" for t, ok in zip(texts, proven,
                                                                          strict=True)))
    tables = [grid]
    for title, head, body in (("Violations", VIOLATION_HEADER, _violations(matrix)),
                              ("Side channels", SIDE_HEADER, _side_channels(matrix))):
        if body:
            table = Table(title=title)
            for name in head:
                table.add_column(name, overflow="fold")
            for row in body:
                table.add_row(*row)
            tables.append(table)
    return tables


def _markdown_table(header: list[str], body: list[list[str]]) -> list[str]:
    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"
    return [line(header), "|" + "---|" * len(header), *map(line, body), ""]


def as_markdown(matrix: Matrix) -> str:
    header, rows = _grid(matrix)
    verdict = "all cells proven" if matrix.ok else f"{len(matrix.violations)} cell(s) violated"
    lines = [f"# Access matrix: {verdict}", ""]
    lines += _markdown_table(header, [texts for texts, _ in rows])
    if matrix.violations:
        lines += ["## Violations", "", *_markdown_table(VIOLATION_HEADER, _violations(matrix))]
    lines += ["## Side channels", "", *_markdown_table(SIDE_HEADER, _side_channels(matrix))]
    return "\n".join(lines)


def as_json(matrix: Matrix) -> dict[str, Any]:
    return {
        "ok": matrix.ok,
        "actors": matrix.actors,
        "relations": matrix.relations,
        "cells": [_cell_json(c) for c in matrix.cells],
        "side_channels": [asdict(s) | {"outcome": str(s.outcome), "ok": s.ok}
                          for s in matrix.side_channels],
    }


def _cell_json(cell: Cell) -> dict[str, Any]:
    observations = [{"context": o.context, "expected": str(o.expected),
                     "actual": str(o.actual), "ok": o.ok} for o in cell.observations]
    return {"actor": cell.actor, "relation": cell.relation, "command": cell.command,
            "observations": observations, "seeded": list(cell.seeded),
            "proven": cell.proven, "promise": str(cell.promise)}


def _html_table(header: list[str], body: list[tuple[list[str], list[bool]]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    rows = "".join(
        "<tr>" + "".join(f"<td class=\"{'ok' if ok else 'bad'}\">{html.escape(t)}</td>"
                         for t, ok in zip(texts, proven, strict=True)) + "</tr>"
        for texts, proven in body)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


def as_html(matrix: Matrix) -> str:
    header, rows = _grid(matrix)
    sections = [f"<h1>Access matrix: {'all cells proven' if matrix.ok else 'VIOLATED'}</h1>",
                _html_table(header, rows)]
    for title, head, body in (("Violations", VIOLATION_HEADER, _violations(matrix)),
                              ("Side channels", SIDE_HEADER, _side_channels(matrix))):
        if body:
            sections += [f"<h2>{title}</h2>",
                         _html_table(head, [(r, [True] * len(r)) for r in body])]
    style = ("body{font-family:sans-serif}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:2px 6px}td.bad{background:#fdd}")
    return (f"<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>rlskit verify"
            f"</title><style>{style}</style></head><body>{''.join(sections)}</body></html>\n")
