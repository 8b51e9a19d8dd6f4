"""The autogenerate plugin ``"rlskit"``: compares the model with the database (by meaning,
see `rlskit.diff`) and adds the operations that close the gap.

Drops go before Alembic's own table operations (a policy goes before the column it
reads), creates and alters after them (a policy comes after the table it protects), so
one revision can create a table and its policies, and its downgrade undoes both in order.
"""

from __future__ import annotations

import contextlib
import dataclasses
import sys
from collections.abc import Callable
from typing import Any

import psycopg
from alembic.autogenerate.api import AutogenContext
from alembic.operations.ops import UpgradeOps
from alembic.runtime.plugins import Plugin
from alembic.util import CommandError, DispatchPriority, PriorityDispatchResult

from .. import objects as o
from ..ddl import grant_steps, policy_delta
from ..diff import Action, Change, diff_database
from ..sqltext import SqlTextError, deparse, parse_expression, parse_query
from . import ops

__all__ = ["PLUGIN", "changes_to_ops"]

PLUGIN = "rlskit"

def _wrap(obj: o.DbObject) -> object:
    return (obj,) if isinstance(obj, o.HelperFunction) else obj


def _alter_ops(old: o.DbObject, new: o.DbObject) -> list[ops.RlsOp]:
    if isinstance(new, o.TableGrant):
        assert isinstance(old, o.TableGrant)
        return [ops.RevokeOp(grant, existing=grant) if step == "revoke" else ops.GrantOp(grant)
                for step, grant in grant_steps(old, new)]
    if isinstance(new, o.RowSecurity):
        return [(ops.ForceRlsOp if new.force else ops.NoForceRlsOp)(new)]
    if isinstance(new, o.DbPolicy):
        assert isinstance(old, o.DbPolicy)
        clauses = policy_delta(old, new) or {}
        return [ops.AlterPolicyOp(new, existing=old, clauses=list(clauses))]
    return [ops.op_for("alter", type(new))(_wrap(new), existing=_wrap(old))]


def _grouped(operations: list[ops.RlsOp]) -> list[ops.RlsOp]:
    """Ops that merge with the one before them (consecutive helpers) become one op."""
    out: list[ops.RlsOp] = []
    for op in operations:
        merged = out[-1].merged(op) if out else None
        if merged is None:
            out.append(op)
        else:
            out[-1] = merged
    return out


def _one_line(text: str | None, parse: Callable[[str], Any]) -> str | None:
    """Server-printed SQL as one canonical line (same meaning, easier to read)."""
    if text is None:
        return None
    try:
        return deparse(parse(text.strip().rstrip(";")))
    except SqlTextError:
        return text


def _for_revision(obj: o.DbObject | None, prefix: str) -> o.DbObject | None:
    """`obj` as a revision states it: role names without the environment's prefix, live
    expressions and queries on one line."""
    if obj is None:
        return None
    obj = o.rename_roles(obj, lambda name: name[len(prefix):])
    if isinstance(obj, o.DbPolicy):
        return dataclasses.replace(obj, using=_one_line(obj.using, parse_expression),
                                   with_check=_one_line(obj.with_check, parse_expression))
    if isinstance(obj, o.DbView):
        return dataclasses.replace(obj, query=_one_line(obj.query, parse_query) or obj.query)
    return obj


def changes_to_ops(changes: list[Change], role_prefix: str = ""
                   ) -> tuple[list[ops.RlsOp], list[ops.RlsOp]]:
    """The ops for `changes` (role names without `role_prefix`): those that go before
    Alembic's table ops, and those after."""
    before: list[ops.RlsOp] = []
    after: list[ops.RlsOp] = []
    for change in changes:
        change = Change(change.action, _for_revision(change.old, role_prefix),
                        _for_revision(change.new, role_prefix))
        if change.old is not None and change.action in (Action.DROP, Action.REPLACE):
            old = _wrap(change.old)
            before.append(ops.op_for("drop", type(change.old))(old, existing=old))
        if change.new is not None and change.action in (Action.CREATE, Action.REPLACE):
            after.append(ops.op_for("create", type(change.new))(_wrap(change.new)))
        if change.action is Action.ALTER:
            after += _alter_ops(change.old, change.new)  # type: ignore[arg-type]
    return _grouped(before), _grouped(after)


def _driver_connection(autogen_context: AutogenContext) -> psycopg.Connection:
    connection = autogen_context.connection
    driver = connection.connection.driver_connection if connection is not None else None
    if not isinstance(driver, psycopg.Connection):
        raise CommandError("rlskit autogenerate needs a psycopg 3 connection "
                           "(a postgresql+psycopg:// URL)")
    return driver


def compare_model(autogen_context: AutogenContext, upgrade_ops: UpgradeOps
                  ) -> PriorityDispatchResult:
    """Add the ops that bring the database in line with ``opts["rlskit_model"]``."""
    model = autogen_context.opts.get("rlskit_model")
    if model is None:
        raise CommandError("rlskit: no model; pass rlskit_model=... to context.configure() "
                           "or use rlskit.migrations.run_migrations() in env.py")
    changes = diff_database(_driver_connection(autogen_context), model)
    before, after = changes_to_ops(changes, model.role_prefix)
    upgrade_ops.ops[:0] = before
    upgrade_ops.ops.extend(after)
    return PriorityDispatchResult.CONTINUE


def setup(plugin: Plugin) -> None:
    """Alembic plugin entry: run after Alembic's own comparators."""
    plugin.add_autogenerate_comparator(compare_model, "autogenerate",
                                       priority=DispatchPriority.LAST)


with contextlib.suppress(ValueError):  # ValueError: already registered
    Plugin.setup_plugin_from_module(sys.modules[__name__], PLUGIN)
