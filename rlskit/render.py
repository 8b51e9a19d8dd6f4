"""Turn composed statements (psycopg ``sql``) into pglast-prettified SQL text.

Prettifying is the slow step of generation (a parse plus a pure-Python printer per
statement). Models repeat a handful of statement *shapes* over hundreds of tables, so
`render` prettifies each shape once: identifiers are swapped for placeholders printed at
the same width, the shape is prettified, and the real names are put back. The layout
pglast chooses depends only on the tree and the printed widths, so the result is the same
text as prettifying the statement directly (a property test holds this to account).
"""

from __future__ import annotations

import re
import threading
from typing import Any

from pglast import ast, prettify
from pglast.printers import NODE_PRINTERS
from pglast.stream import maybe_double_quote_name
from psycopg import sql

__all__ = ["Ident", "dollar_quoted", "render", "render_uncached"]


class Ident(sql.Identifier):
    """``sql.Identifier`` that keeps its parts visible, so `render` can cache by shape."""

    def __init__(self, *strings: str) -> None:
        super().__init__(*strings)
        self.parts = strings


def _grant_role_option(node: ast.DefElem, output: Any) -> None:
    """Spell membership options as ``INHERIT TRUE`` / ``SET FALSE`` (pglast writes OPTION)."""
    name = (node.defname or "").upper()
    value = node.arg.boolval if isinstance(node.arg, ast.Boolean) else True
    if name == "ADMIN" and value:
        output.write("ADMIN OPTION")
    else:
        output.write(f"{name} {'TRUE' if value else 'FALSE'}")


_PLACEHOLDER = re.compile(r"\bzq[a-y]+z*\b")
_MIN_CACHED_WIDTH = 4
_CACHE_LIMIT = 4096
_shapes: dict[str, str] = {}


_OURS = {(ast.GrantRoleStmt, ast.DefElem): _grant_role_option}
_LOCK = threading.Lock()


def _prettify(text: str) -> str:
    """pglast's prettify with rlskit's printers in place for this call only (pglast keeps
    its printers in one process-wide registry; other users of pglast keep theirs)."""
    with _LOCK:
        saved = {key: NODE_PRINTERS.get(key) for key in _OURS}
        NODE_PRINTERS.update(_OURS)
        try:
            return prettify(text).rstrip()
        finally:
            for key, printer in saved.items():
                if printer is None:
                    del NODE_PRINTERS[key]
                else:
                    NODE_PRINTERS[key] = printer


def dollar_quoted(body: str) -> str:
    """`body` dollar-quoted with a tag that does not occur in it (a function or DO body)."""
    tag = "rlskit"
    while f"${tag}$" in body:
        tag += "_"
    return f"${tag}${body}${tag}$"


def render_uncached(statement: sql.Composable) -> str:
    """Prettify one statement directly."""
    return _prettify(statement.as_string())


def _encode(index: int) -> str:
    letters = "abcdefghijklmnopqrstuvwxy"
    out = ""
    while True:
        index, rem = divmod(index, len(letters))
        out = letters[rem] + out
        if index == 0:
            return out


def _flatten(statement: sql.Composable) -> list[sql.Composable]:
    if isinstance(statement, sql.Composed):
        return [leaf for part in statement for leaf in _flatten(part)]
    return [statement]


def render(statement: sql.Composable) -> str:
    """Prettify one statement, reusing the layout of an earlier statement of the same shape."""
    names: dict[str, str] = {}  # placeholder -> printed identifier
    placeholders: dict[str, str] = {}  # raw name -> placeholder
    pieces = []
    leaves = _flatten(statement)
    for leaf in leaves:
        if not isinstance(leaf, sql.Identifier):
            pieces.append(leaf.as_string())
            continue
        if not isinstance(leaf, Ident):
            return render_uncached(statement)
        parts = []
        for raw in leaf.parts:
            if raw not in placeholders:
                printed = maybe_double_quote_name(raw)
                stem = "zq" + _encode(len(placeholders))
                if len(printed) < max(_MIN_CACHED_WIDTH, len(stem)):
                    return render_uncached(statement)
                placeholders[raw] = stem + "z" * (len(printed) - len(stem))
                names[placeholders[raw]] = printed
            parts.append(placeholders[raw])
        pieces.append(".".join(parts))
    shape = "".join(pieces)
    if len(_PLACEHOLDER.findall(shape)) != sum(
        len(leaf.parts) for leaf in leaves if isinstance(leaf, Ident)
    ):
        return render_uncached(statement)  # user text looks like a placeholder
    pretty = _shapes.get(shape)
    if pretty is None:
        pretty = _prettify(shape)
        if len(_shapes) >= _CACHE_LIMIT:
            _shapes.clear()
        _shapes[shape] = pretty
    return _PLACEHOLDER.sub(lambda m: names[m.group(0)], pretty)
