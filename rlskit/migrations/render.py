"""How rlskit's operations read in a revision file: one ``op.<name>(...)`` call each,
on one line when it fits, else one argument per line with long SQL split into adjacent
string literals (the value is unchanged, only the layout)."""

from __future__ import annotations

import textwrap
from typing import Any

from alembic.autogenerate import renderers
from alembic.autogenerate.api import AutogenContext

from .ops import RlsOp

__all__ = ["render_op"]

_WIDTH = 88
_SQL_WIDTH = 72


def _value(value: Any, indent: str) -> str:
    text = repr(value)
    if not isinstance(value, str) or len(text) + len(indent) <= _WIDTH:
        return text
    chunks = textwrap.wrap(value, _SQL_WIDTH, drop_whitespace=False, break_long_words=False,
                           break_on_hyphens=False, expand_tabs=False, replace_whitespace=False)
    if "".join(chunks) != value:
        return text
    inner = indent + " "
    return "(" + f"\n{inner}".join(repr(c) for c in chunks) + ")"


def render_op(op: RlsOp, prefix: str = "op.") -> str:
    """The Python call for `op` (`prefix`: Alembic's ``alembic_module_prefix``)."""
    args, kwargs = op.arguments()
    flat = [repr(a) for a in args] + [f"{k}={v!r}" for k, v in kwargs.items()]
    one_line = f"{prefix}{op.name}({', '.join(flat)})"
    if len(one_line) + 4 <= _WIDTH:
        return one_line
    indent = "    "
    lines = [f"{indent}{_value(a, indent)}," for a in args]
    lines += [f"{indent}{k}={_value(v, indent + ' ' * (len(k) + 1))}," for k, v in kwargs.items()]
    return f"{prefix}{op.name}(\n" + "\n".join(lines) + "\n)"


@renderers.dispatch_for(RlsOp)
def _render(autogen_context: AutogenContext, op: RlsOp) -> str:
    return render_op(op, autogen_context.opts.get("alembic_module_prefix", "op.") or "")
