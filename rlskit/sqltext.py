"""SQL text supplied by users, parsed and checked with pglast before anything uses it.

Every expression, query and privilege list from a model goes through this module: it is
parsed into a pglast AST, checked to be exactly one thing of the expected kind (so text
cannot smuggle in a second clause or statement), inspected, and deparsed back to
canonical SQL. Generated DDL only ever embeds the deparsed text.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache

from pglast import ast, enums, parse_sql
from pglast.parser import ParseError
from pglast.stream import RawStream

__all__ = [
    "HelperCall",
    "Privilege",
    "SqlTextError",
    "column_refs",
    "deparse",
    "helper_calls",
    "parse_expression",
    "parse_privileges",
    "parse_query",
    "policy_expression",
    "setting_read",
    "unwrap_helper_calls",
    "unwrapped_expression",
    "wrap_helper_calls",
]

SEALED_READER = "sealed_setting"  # the seal's verifier (rlskit.keystore.VERIFIER)
PLACEHOLDER_TABLE = "rlskit_placeholder_table"
PLACEHOLDER_ROLE = "rlskit_placeholder_role"


class SqlTextError(ValueError):
    """The text is not valid SQL of the expected kind."""


@dataclass(frozen=True)
class Privilege:
    """One privilege of a GRANT, optionally limited to columns."""

    name: str
    columns: tuple[str, ...] = ()


@dataclass(frozen=True)
class HelperCall:
    """A call to a function in the helpers schema, with its literal string arguments."""

    name: str
    args: tuple[str | None, ...]


def _parse_one(text: str, what: str) -> ast.Node:
    try:
        statements = parse_sql(text)
    except ParseError as exc:
        raise SqlTextError(f"syntax error in {what}: {exc.args[0]}") from None
    if len(statements) != 1:
        raise SqlTextError(f"{what} must be a single piece of SQL, found {len(statements)}")
    stmt = statements[0].stmt
    if stmt is None:
        raise SqlTextError(f"{what} is empty")
    return stmt


def _only_fields(node: ast.Node, allowed: set[str]) -> bool:
    """True when every populated field of `node` is in `allowed`."""
    for name in _slots(node):
        if name in allowed or name == "location":
            continue
        value = getattr(node, name)
        if value not in (None, False, 0, (), enums.LimitOption.LIMIT_OPTION_DEFAULT,
                         enums.SetOperation.SETOP_NONE):
            return False
    return True


def parse_expression(text: str) -> ast.Node:
    """Parse a boolean/scalar SQL expression; anything but exactly one expression is refused."""
    if not text or not text.strip():
        raise SqlTextError("empty expression")
    stmt = _parse_one(f"SELECT ({text})", "expression")
    if (
        not isinstance(stmt, ast.SelectStmt)
        or not stmt.targetList
        or len(stmt.targetList) != 1
        or stmt.targetList[0].name is not None
        or not _only_fields(stmt, {"targetList"})
    ):
        raise SqlTextError("not a single SQL expression")
    return stmt.targetList[0].val


def parse_query(text: str) -> ast.SelectStmt:
    """Parse a view query: exactly one SELECT (set operations and CTEs allowed)."""
    stmt = _parse_one(text, "query")
    if not isinstance(stmt, ast.SelectStmt):
        kind = type(stmt).__name__.removesuffix("Stmt").upper()
        raise SqlTextError(f"a view query must be a SELECT, not {kind}")
    if stmt.intoClause is not None or stmt.lockingClause:
        raise SqlTextError("a view query cannot use INTO or FOR UPDATE/SHARE")
    return stmt


@lru_cache(maxsize=4096)
def parse_privileges(text: str) -> tuple[Privilege, ...]:
    """Parse a privilege list such as ``"SELECT, UPDATE (name, email)"`` or ``"ALL"``."""
    if not text or not text.strip():
        raise SqlTextError("empty privilege list")
    stmt = _parse_one(
        f"GRANT {text} ON TABLE {PLACEHOLDER_TABLE} TO {PLACEHOLDER_ROLE}", "privilege list"
    )
    if (
        not isinstance(stmt, ast.GrantStmt)
        or not stmt.is_grant
        or stmt.targtype != enums.GrantTargetType.ACL_TARGET_OBJECT
        or stmt.objtype != enums.ObjectType.OBJECT_TABLE
        or len(stmt.objects or ()) != 1
        or (stmt.objects or ())[0].relname != PLACEHOLDER_TABLE
        or (stmt.objects or ())[0].schemaname is not None
        or len(stmt.grantees or ()) != 1
        or (stmt.grantees or ())[0].rolename != PLACEHOLDER_ROLE
        or stmt.grant_option
        or stmt.grantor is not None
    ):
        raise SqlTextError("not a plain privilege list")
    if not stmt.privileges:
        return (Privilege("ALL"),)
    out = []
    for priv in stmt.privileges:
        name = (priv.priv_name or "all").upper()
        cols = tuple(c.sval for c in priv.cols or ())
        out.append(Privilege(name, cols))
    return tuple(out)


def deparse(node: ast.Node) -> str:
    """Canonical one-line SQL for an AST node."""
    return RawStream()(node)


def _slots(node: ast.Node) -> tuple[str, ...]:
    """The fields of a pglast node (its attribute names)."""
    return tuple(getattr(type(node), "__slots__", ()))


def _children(node: ast.Node) -> Iterator[tuple[str, int | None, ast.Node]]:
    for name in _slots(node):
        value = getattr(node, name)
        if isinstance(value, ast.Node):
            yield name, None, value
        elif isinstance(value, tuple):
            for i, item in enumerate(value):
                if isinstance(item, ast.Node):
                    yield name, i, item


def _map_children(node: ast.Node, change: Callable[[ast.Node], ast.Node]) -> ast.Node:
    """Put `change(child)` in place of every child of `node` (in place); returns `node`."""
    for field, index, child in list(_children(node)):
        new = change(child)
        if new is child:
            continue
        if index is None:
            setattr(node, field, new)
        else:
            items = list(getattr(node, field))
            items[index] = new
            setattr(node, field, tuple(items))
    return node


def walk(node: ast.Node) -> Iterator[ast.Node]:
    """Every node below and including `node`, depth first."""
    yield node
    for _, _, child in _children(node):
        yield from walk(child)


def _func_name(node: ast.FuncCall) -> tuple[str, ...]:
    return tuple(part.sval for part in node.funcname or ())


def _string_arg(node: ast.Node | None) -> str | None:
    if isinstance(node, ast.A_Const) and isinstance(node.val, ast.String):
        return node.val.sval
    return None


def _uncast(node: ast.Node | None) -> ast.Node | None:
    while isinstance(node, ast.TypeCast):
        node = node.arg
    return node


def setting_read(function_definition: str) -> tuple[str | None, str, bool] | None:
    """What a helper function (as ``pg_get_functiondef`` prints it) reads: ``(setting,
    prefix, sealed)`` for ``current_setting('prefix.x')`` (``sealed``: through the seal's
    verifier, ``sealed_setting(CURRENT_USER, 'prefix.x')``), ``(None, prefix, sealed)`` for
    the generic ``… 'prefix.' || name``, None when it reads no setting that way."""
    try:
        tree = parse_sql(function_definition)
    except ParseError:
        return None
    if not tree or tree[0].stmt is None:
        return None
    for node in walk(tree[0].stmt):
        if not isinstance(node, ast.FuncCall) or not node.args:
            continue
        function = _func_name(node)[-1]
        if function == "current_setting":
            arg, sealed = node.args[0], False
        elif function == SEALED_READER and len(node.args) == 2:
            arg, sealed = node.args[1], True
        else:
            continue
        arg = _uncast(arg)
        name = _string_arg(arg)
        if name is not None:
            return name, name.rpartition(".")[0], sealed
        if isinstance(arg, ast.A_Expr) and arg.name and arg.name[0].sval == "||":
            prefix = _string_arg(_uncast(arg.lexpr))
            if prefix is not None and prefix.endswith("."):
                return None, prefix[:-1], sealed
    return None


def helper_calls(node: ast.Node, schema: str) -> list[HelperCall]:
    """Calls to ``schema.f(...)`` anywhere in the tree, in textual order."""
    calls = []
    for sub in walk(node):
        if isinstance(sub, ast.FuncCall):
            name = _func_name(sub)
            if len(name) == 2 and name[0] == schema:
                calls.append(HelperCall(name[1], tuple(_string_arg(a) for a in sub.args or ())))
    return calls


def _is_helper(node: ast.Node, schema: str) -> bool:
    if not isinstance(node, ast.FuncCall):
        return False
    name = _func_name(node)
    return len(name) == 2 and name[0] == schema


def _is_wrapped_helper(node: ast.Node, schema: str) -> bool:
    """``(SELECT schema.f(...))``: a scalar subquery around a single helper call."""
    if not isinstance(node, ast.SubLink) or node.subLinkType != enums.SubLinkType.EXPR_SUBLINK:
        return False
    sel = node.subselect
    return (
        isinstance(sel, ast.SelectStmt)
        and sel.targetList is not None
        and len(sel.targetList) == 1
        and _only_fields(sel, {"targetList"})
        and _is_helper(sel.targetList[0].val, schema)
    )


def _wrap(call: ast.FuncCall) -> ast.SubLink:
    return ast.SubLink(
        subLinkType=enums.SubLinkType.EXPR_SUBLINK,
        subLinkId=0,
        subselect=ast.SelectStmt(
            targetList=(ast.ResTarget(val=call),),
            limitOption=enums.LimitOption.LIMIT_OPTION_DEFAULT,
            op=enums.SetOperation.SETOP_NONE,
        ),
    )


def wrap_helper_calls(node: ast.Node, schema: str) -> ast.Node:
    """Wrap every bare helper call as ``(SELECT helper())`` so Postgres runs it once (InitPlan).

    Helpers take only constants, so the wrapped form is always equivalent. Returns the new
    root (the input tree is modified in place where possible).
    """
    if _is_wrapped_helper(node, schema):
        return node
    if isinstance(node, ast.FuncCall) and _is_helper(node, schema):
        return _wrap(node)
    return _map_children(node, lambda child: wrap_helper_calls(child, schema))


def unwrap_helper_calls(node: ast.Node, schema: str) -> ast.Node:
    """The reverse of `wrap_helper_calls`: ``(SELECT helper())`` back to ``helper()``, for
    servers that refuse subqueries in policies (Citus, on distributed tables)."""
    if _is_wrapped_helper(node, schema):
        assert isinstance(node, ast.SubLink) and isinstance(node.subselect, ast.SelectStmt)
        return node.subselect.targetList[0].val  # type: ignore[index]  # checked above
    return _map_children(node, lambda child: unwrap_helper_calls(child, schema))


@lru_cache(maxsize=4096)
def unwrapped_expression(text: str, schema: str) -> str:
    """Policy SQL with its helper calls unwrapped; `SqlTextError` if a subquery remains."""
    node = unwrap_helper_calls(parse_expression(text), schema)
    if any(isinstance(n, ast.SubLink) for n in walk(node)):
        raise SqlTextError("it has a subquery")
    return deparse(node)


@lru_cache(maxsize=4096)
def policy_expression(text: str, schema: str) -> tuple[ast.Node, str]:
    """A policy expression parsed, helper calls wrapped, and deparsed: ``(tree, sql)``.

    Models repeat the same expressions over many tables, so results are cached; callers
    must treat the tree as read-only.
    """
    node = wrap_helper_calls(parse_expression(text), schema)
    return node, deparse(node)


_COMMUTATIVE = {"=", "<>"}


@lru_cache(maxsize=4096)
def canonical_expression(text: str) -> str:
    """`text` with the operands of ``=`` and ``<>`` and the terms of ``AND`` and ``OR`` in
    one order, so that rewrites that only commute them compare equal. (The planner is free
    to evaluate them in any order; SQL promises no short circuit.) Text that does not parse
    is returned as it is."""
    try:
        node = parse_expression(text)
    except SqlTextError:
        return text
    return deparse(_sorted_operands(node))


def _sorted_operands(node: ast.Node) -> ast.Node:
    _map_children(node, _sorted_operands)
    if isinstance(node, ast.BoolExpr) and node.boolop != enums.BoolExprType.NOT_EXPR:
        node.args = tuple(sorted(node.args or (), key=deparse))
    elif (isinstance(node, ast.A_Expr) and node.kind == enums.A_Expr_Kind.AEXPR_OP
          and len(node.name or ()) == 1 and (node.name or ())[0].sval in _COMMUTATIVE
          and isinstance(node.lexpr, ast.Node) and isinstance(node.rexpr, ast.Node)
          and deparse(node.rexpr) < deparse(node.lexpr)):
        node.lexpr, node.rexpr = node.rexpr, node.lexpr
    return node


def column_refs(node: ast.Node, table: str) -> set[str]:
    """Columns of `table` the expression names: unqualified outside subqueries, or ``table.col``."""
    found: set[str] = set()

    def visit(sub: ast.Node, in_subquery: bool) -> None:
        if isinstance(sub, ast.ColumnRef):
            fields = sub.fields or ()
            parts = [f.sval for f in fields if isinstance(f, ast.String) and f.sval]
            if len(parts) == 1 and not in_subquery and len(fields) == 1:
                found.add(parts[0])
            elif len(parts) == 2 and parts[0] == table:
                found.add(parts[1])
            return
        for _, _, child in _children(sub):
            visit(child, in_subquery or isinstance(sub, ast.SubLink))

    visit(node, False)
    return found


def relations_read(query: str, default_schema: str) -> tuple[str, ...]:
    """Relations a view query names (CTE names excluded), qualified, in order."""
    try:
        tree = parse_query(query)
    except SqlTextError:
        return ()
    ctes = {c.ctename for n in walk(tree) if isinstance(n, ast.WithClause)
            for c in n.ctes or ()}
    out: list[str] = []
    for node in walk(tree):
        if isinstance(node, ast.RangeVar) and not (node.schemaname is None
                                                   and node.relname in ctes):
            name = f"{node.schemaname or default_schema}.{node.relname}"
            if name not in out:
                out.append(name)
    return tuple(out)
