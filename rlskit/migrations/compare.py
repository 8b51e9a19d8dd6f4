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
from ..ddl import policy_delta, privilege_delta
from ..diff import Change, diff_database
from ..sqltext import SqlTextError, deparse, parse_expression, parse_query
from . import ops

__all__ = ["PLUGIN", "changes_to_ops"]

PLUGIN = "rlskit"

_CREATE: dict[type, type[ops.RlsOp]] = {
    o.Schema: ops.CreateSchemaOp, o.ContextSeal: ops.CreateContextSealOp,
    o.HelperFunction: ops.CreateHelpersOp,
    o.AccessStore: ops.CreateAccessStoreOp, o.Role: ops.CreateRoleOp,
    o.Membership: ops.GrantRoleOp, o.SchemaUsage: ops.GrantOp, o.FunctionGrant: ops.GrantOp,
    o.TableGrant: ops.GrantOp, o.TableOwner: ops.SetOwnerOp,
    o.RowSecurity: ops.EnableRlsOp, o.Policy: ops.CreatePolicyOp,
    o.View: ops.CreateViewOp,
}
_DROP: dict[type, type[ops.RlsOp]] = {
    o.Schema: ops.DropSchemaOp, o.ContextSeal: ops.DropContextSealOp,
    o.HelperFunction: ops.DropHelpersOp,
    o.AccessStore: ops.DropAccessStoreOp, o.Role: ops.DropRoleOp,
    o.Membership: ops.RevokeRoleOp, o.SchemaUsage: ops.RevokeOp, o.FunctionGrant: ops.RevokeOp,
    o.TableGrant: ops.RevokeOp, o.TableOwner: ops.ResetOwnerOp,
    o.RowSecurity: ops.DisableRlsOp, o.Policy: ops.DropPolicyOp,
    o.View: ops.DropViewOp,
}


def _wrap(obj: o.DbObject) -> object:
    return (obj,) if isinstance(obj, o.HelperFunction) else obj


def _alter_ops(old: o.DbObject, new: o.DbObject) -> list[ops.RlsOp]:
    if isinstance(new, o.TableGrant):
        assert isinstance(old, o.TableGrant)
        revoked, granted = privilege_delta(old, new)
        out: list[ops.RlsOp] = []
        if revoked:  # revoke, then grant: the reverse of the pair is the change back
            gone = dataclasses.replace(new, privileges=revoked)
            out.append(ops.RevokeOp(gone, existing=gone))
        if granted:
            out.append(ops.GrantOp(dataclasses.replace(new, privileges=granted)))
        return out
    if isinstance(new, o.RowSecurity):
        return [(ops.ForceRlsOp if new.force else ops.NoForceRlsOp)(new)]
    if isinstance(new, o.Policy):
        assert isinstance(old, o.Policy)
        clauses = policy_delta(old, new) or {}
        return [ops.AlterPolicyOp(new, existing=old, clauses=list(clauses))]
    kind = {o.Role: ops.AlterRoleOp, o.Membership: ops.GrantRoleOp,
            o.HelperFunction: ops.ReplaceHelpersOp, o.AccessStore: ops.ReplaceAccessStoreOp,
            o.ContextSeal: ops.ReplaceContextSealOp, o.TableOwner: ops.SetOwnerOp,
            o.View: ops.ReplaceViewOp}[type(new)]
    return [kind(_wrap(new), existing=_wrap(old))]


def _grouped(operations: list[ops.RlsOp]) -> list[ops.RlsOp]:
    """Consecutive helper ops of one kind, schema and prefix become one op."""
    out: list[ops.RlsOp] = []
    for op in operations:
        last = out[-1] if out else None
        if (isinstance(op, ops._HelpersOp) and type(last) is type(op)
                and (last.obj[0].schema, last.obj[0].settings_prefix,  # type: ignore[union-attr]
                     last.obj[0].sealed)  # type: ignore[union-attr]
                == (op.obj[0].schema, op.obj[0].settings_prefix, op.obj[0].sealed)):
            existing = None if op.existing is None else last.existing + op.existing  # type: ignore[union-attr]
            out[-1] = type(op)(last.obj + op.obj, existing=existing)  # type: ignore[union-attr]
        else:
            out.append(op)
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
    if isinstance(obj, o.Policy):
        return dataclasses.replace(obj, using=_one_line(obj.using, parse_expression),
                                   with_check=_one_line(obj.with_check, parse_expression))
    if isinstance(obj, o.View):
        return dataclasses.replace(obj, query=_one_line(obj.query, parse_query))
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
        if change.old is not None and change.action in ("drop", "replace"):
            old = _wrap(change.old)
            before.append(_DROP[type(change.old)](old, existing=old))
        if change.new is not None and change.action in ("create", "replace"):
            after.append(_CREATE[type(change.new)](_wrap(change.new)))
        if change.action == "alter":
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
