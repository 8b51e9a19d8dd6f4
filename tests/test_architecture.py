"""The package's shape: no import cycles between rlskit's modules, and `import rlskit` stays
light (no token or command-line libraries until they are used)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "rlskit"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """The rlskit modules `path` imports when it is loaded: module-level imports, not those
    inside functions or under ``if TYPE_CHECKING``."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("rlskit")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("rlskit"):
                continue
            for alias in node.names:  # `from . import module`, or a name from `target`
                candidate = f"{target}.{alias.name}"
                submodule = (PACKAGE.parent / (candidate.replace(".", "/") + ".py")).is_file() \
                    or (PACKAGE.parent / candidate.replace(".", "/")).is_dir()
                found.add(candidate if submodule else target)
    return found - {name}


USER_CODE = ("rlskit.examples", "rlskit.migrations.template")  # written as users write it


def graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")
               if not module_name(p).startswith(USER_CODE)}
    return {name: {m for m in imports(path) if m in modules} for name, path in modules.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in edges[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycles():
    edges = graph()
    # a package's __init__ may import its children (as Alembic's autogenerate/compare does);
    # no module imports a package it belongs to
    assert {name: sorted(m for m in targets if name.startswith(m + "."))
            for name, targets in edges.items()
            if any(name.startswith(m + ".") for m in targets)} == {}
    for name in edges:
        edges[name] = {m for m in edges[name] if not m.startswith(name + ".")}
    assert cycles(edges) == []


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == [["a", "b", "c"]]


def test_import_rlskit_is_light():
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, rlskit; print(' '.join(sorted(sys.modules)))"],
        capture_output=True, text=True, check=True).stdout.split()
    heavy = {"jwt", "cryptography", "typer", "rich", "alembic", "psycopg_pool"}
    assert heavy.isdisjoint(loaded), heavy & set(loaded)


def test_a_lint_rule_id_is_registered_once():
    import pytest

    from rlskit.checks.rules import RULES, rule

    first = next(iter(RULES.values()))
    with pytest.raises(ValueError, match=f"rule {first.id} is registered twice"):
        rule(first.id, "error", "again", "why")(first.check)
    assert RULES[first.id] is first


def test_every_kind_has_its_target_ddl_and_ops():
    """One row in rlskit.kinds, and each part of the pipeline knows the kind."""
    from rlskit import ddl, kinds, target
    from rlskit.migrations import ops

    for kind in kinds.KINDS:
        assert kind.type in target._DERIVES, kind
        assert ddl.create.dispatch(kind.type) is not ddl.create.dispatch(object), kind
        assert ddl.drop.dispatch(kind.type) is not ddl.drop.dispatch(object), kind
        assert ops.op_for("create", kind.type).noun == kind.noun
        assert ops.op_for("drop", kind.type).undo is ops.op_for("create", kind.type)


def test_the_psycopg_internals_rlskit_relies_on_are_still_there():
    """`rlskit._wire` drives libpq through psycopg's undocumented generators and waits, and
    the pool reset clears psycopg's prepared-statement cache: if a psycopg release moves
    them, this fails first, naming what moved (pyproject bounds psycopg below 3.4)."""
    import inspect

    import psycopg
    from psycopg import generators
    from psycopg.waiting import Wait

    for name in ("send", "fetch_many"):
        assert inspect.isfunction(getattr(generators, name, None)) or \
            callable(getattr(generators, name, None)), f"psycopg.generators.{name} moved"
    assert {"R", "W", "RW"} <= set(Wait.__members__), "psycopg.waiting.Wait changed"
    assert callable(getattr(psycopg.Connection, "wait", None)), "Connection.wait moved"
    assert callable(getattr(psycopg.AsyncConnection, "wait", None)), \
        "AsyncConnection.wait moved"
    from psycopg._preparing import PrepareManager  # what `rlskit.psycopg.reset` clears

    assert "self._prepared: PrepareManager = PrepareManager()" in inspect.getsource(
        psycopg.BaseConnection.__init__) and callable(PrepareManager.clear), \
        "the prepared-statement cache moved"
    # `rlskit._wire.mark`: a rollback keeps the statements prepared before its transaction
    assert "self._prepared_idx += 1" in inspect.getsource(PrepareManager.get), \
        "psycopg no longer numbers its prepared statements"
    assert callable(getattr(generators, "execute", None)), "psycopg.generators.execute moved"


def test_rlskit_printers_stay_inside_rlskit_rendering():
    import pglast
    from pglast.printers import NODE_PRINTERS
    from psycopg import sql

    from rlskit import render
    from rlskit.render import render_uncached

    statement = "GRANT a TO b WITH INHERIT TRUE, SET FALSE"
    assert "".join(render_uncached(sql.SQL(statement)).split()) == "".join(statement.split())
    ours = render._OURS[(pglast.ast.GrantRoleStmt, pglast.ast.DefElem)]
    assert NODE_PRINTERS.get((pglast.ast.GrantRoleStmt, pglast.ast.DefElem)) is not ours
    assert "INHERIT OPTION" in pglast.prettify(statement)  # pglast's own printer, as it was
