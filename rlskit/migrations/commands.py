"""``rlskit revision / migrate / downgrade / current / history / status``: Alembic's
commands, configured from ``[tool.rlskit]`` (and ``[tool.alembic]``), plus the reviewable
``.sql`` twin written beside every revision, which is tried on the server first."""

from __future__ import annotations

import io
import sys
from argparse import Namespace
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy.exc
from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.operations import Operations
from alembic.operations import ops as alembic_ops
from alembic.operations.ops import MigrateOperation, MigrationScript
from alembic.runtime.migration import MigrationContext
from alembic.script import Script, ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import create_engine, pool

from ..config import Config
from ..errors import ConfigError
from ..kinds import NOUNS
from ..model import Model
from ..urls import sqlalchemy_url
from .ops import RlsOp

__all__ = ["Revision", "Status", "alembic_config", "current", "downgrade", "history", "migrate",
           "revision", "status", "summarize", "upgrade"]

_TABLE_NOUNS = (("table", "tables"), ("column", "columns"), ("index", "indexes"),
                ("constraint", "constraints"))  # Alembic's, before rlskit's kinds
_NOUNS = dict(_TABLE_NOUNS) | {kind.noun: kind.nouns for kind in NOUNS}


@dataclass(frozen=True)
class Revision:
    id: str
    down: str | None  # the revision it revises; None for the first
    path: Path
    sql_path: Path
    summary: str


def alembic_config(settings: Config, database_url: str | None = None,
                   pg_version: int | None = None, output: io.StringIO | None = None,
                   model: Model | None = None) -> AlembicConfig:
    """An Alembic configuration for the project's ``migrations`` directory (`model`
    overrides ``[tool.rlskit] model``)."""
    location = settings.root / settings.migrations
    if not (location / "env.py").is_file():
        raise ConfigError(f"no Alembic environment in {location}: run `rlskit init`")
    if str(settings.root) not in sys.path:  # env.py imports the project's own package
        sys.path.insert(0, str(settings.root))
    pyproject = settings.root / "pyproject.toml"
    config = AlembicConfig(output_buffer=output, stdout=io.StringIO(),
                           toml_file=pyproject if pyproject.is_file() else None,
                           cmd_opts=Namespace(quiet=True, x=[]))  # rlskit says what happened
    config.set_main_option("script_location", str(location))
    config.attributes.update(rlskit_root=str(settings.root), rlskit_database_url=database_url,
                             rlskit_pg_version=pg_version, rlskit_model=model)
    return config


_TABLE_OPS: dict[type, tuple[str, str]] = {
    alembic_ops.CreateTableOp: ("+", "table"), alembic_ops.DropTableOp: ("-", "table"),
    alembic_ops.AddColumnOp: ("+", "column"), alembic_ops.DropColumnOp: ("-", "column"),
    alembic_ops.AlterColumnOp: ("~", "column"), alembic_ops.CreateIndexOp: ("+", "index"),
    alembic_ops.DropIndexOp: ("-", "index"), alembic_ops.AddConstraintOp: ("+", "constraint"),
    alembic_ops.DropConstraintOp: ("-", "constraint"),
}


def _sign_noun(op: MigrateOperation) -> tuple[str, str]:
    if isinstance(op, RlsOp):
        return op.sign, op.noun
    for kind, sign_noun in _TABLE_OPS.items():
        if isinstance(op, kind):
            return sign_noun
    return "~", "table"  # comments and other table changes


def summarize(operations: list[MigrateOperation]) -> str:
    """``+3 policies, ~1 policy, -1 grant, +1 index``: what a list of ops does, by kind."""
    counts: Counter[tuple[str, str]] = Counter()
    for op in _flat(operations):
        counts[_sign_noun(op)] += len(op.obj) if isinstance(op, RlsOp) and \
            isinstance(op.obj, tuple) else 1
    order = list(_NOUNS)
    parts = [f"{sign}{n} {noun if n == 1 else _NOUNS[noun]}"
             for (sign, noun), n in sorted(counts.items(), key=lambda item: (
                 order.index(item[0][1]), "+~-".index(item[0][0])))]
    return ", ".join(parts) or "no changes"


def _offline_sql(settings: Config, pg_version: int | None, run: str, revisions: str,
                 model: Model | None) -> str:
    output = io.StringIO()
    config = alembic_config(settings, pg_version=pg_version, output=output, model=model)
    getattr(command, run)(config, revisions, sql=True)
    return output.getvalue()


def revision(settings: Config, message: str, database_url: str, model: Model | None = None
             ) -> Revision | None:
    """Autogenerate a revision against `database_url` and write its ``.sql`` twin (for
    that server's PostgreSQL version); None (and nothing written) when the database
    already matches."""
    summary: list[str] = []
    versions: list[int] = []

    def keep_if_changed(context: MigrationContext, rev: object,
                        directives: list[MigrationScript]) -> None:
        ops = directives[0].upgrade_ops
        if ops is None or ops.is_empty():
            directives[:] = []
        else:
            try_on_server(context, directives[0])
            summary.append(summarize(ops.ops))
            versions.append(_major(context))

    config = alembic_config(settings, database_url, model=model)
    try:
        script = command.revision(config, message, autogenerate=True,
                                  process_revision_directives=keep_if_changed)
    except CommandError as exc:
        if "not up to date" not in str(exc):
            raise
        raise CommandError(f"{exc}: run `rlskit migrate` first, then `rlskit revision` "
                           "again") from None
    if script is None or not summary:
        return None
    pg_version = versions[0]
    assert not isinstance(script, list)
    down = script.down_revision
    assert down is None or isinstance(down, str), "merge revisions are not autogenerated"
    upgrade_sql = _offline_sql(settings, pg_version, "upgrade",
                               f"{down}:{script.revision}" if down else script.revision, model)
    downgrade_sql = _offline_sql(settings, pg_version, "downgrade",
                                 f"{script.revision}:{down or 'base'}", model)
    path = Path(script.path)
    sql_path = path.with_suffix(".sql")
    sql_path.write_text(
        f"-- Revision {script.revision}: {message}\n"
        f"-- Revises: {down or '(base)'}\n"
        f"-- Summary: {summary[0]}\n"
        f"-- The exact SQL of {path.name} for PostgreSQL {pg_version}, for review; "
        "apply the revision with `rlskit migrate`.\n\n"
        f"-- ==== upgrade ====\n{upgrade_sql}\n-- ==== downgrade ====\n{downgrade_sql}")
    return Revision(script.revision, down, path, sql_path, summary[0])


@dataclass(frozen=True)
class Status:
    """Where a database stands: its revisions, the heads, the revisions not yet applied
    (oldest first) and, when it is at head, a summary of the model's changes that no
    revision captures ("" for none; None when unknown because revisions are pending)."""

    current: tuple[str, ...]
    heads: tuple[str, ...]
    pending: tuple[str, ...]
    uncaptured: str | None


def current(settings: Config, database_url: str) -> tuple[str, ...]:
    """The revisions the database is at (empty before the first upgrade)."""
    alembic_config(settings)  # the project has migrations at all
    engine = create_engine(sqlalchemy_url(database_url), poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            return tuple(MigrationContext.configure(connection).get_current_heads())
    finally:
        engine.dispose()


def history(settings: Config) -> list[Script]:
    """The project's revisions, newest first."""
    return list(ScriptDirectory.from_config(alembic_config(settings)).walk_revisions())


def status(settings: Config, database_url: str, model: Model | None = None) -> Status:
    """Where the database stands against the revisions and the model."""
    scripts = ScriptDirectory.from_config(alembic_config(settings))
    at = current(settings, database_url)
    heads = tuple(scripts.get_heads())
    pending = tuple(reversed([s.revision for s in scripts.iterate_revisions(heads, at)]))
    uncaptured = None if pending else _uncaptured(settings, database_url, model)
    return Status(at, heads, pending, uncaptured)


def _uncaptured(settings: Config, database_url: str, model: Model | None) -> str:
    found: list[str] = []

    def capture(context: MigrationContext, rev: object,
                directives: list[MigrationScript]) -> None:
        ops = directives[0].upgrade_ops
        if ops is not None and not ops.is_empty():
            found.append(summarize(ops.ops))
        directives[:] = []  # nothing is written

    command.revision(alembic_config(settings, database_url, model=model), "status",
                     autogenerate=True, process_revision_directives=capture)
    return found[0] if found else ""


def try_on_server(context: MigrationContext, script: MigrationScript) -> None:
    """Run `script`'s upgrade, then its downgrade, in a savepoint that is rolled back; a
    statement the server refuses is a ConfigError naming the object (nothing is written)."""
    operations = Operations(context)
    connection = context.connection
    assert connection is not None and script.upgrade_ops and script.downgrade_ops
    version = _major(context)
    with connection.begin_nested() as savepoint:
        for direction, container in (("upgrade", script.upgrade_ops),
                                     ("downgrade", script.downgrade_ops)):
            for op in _flat(container.ops):
                try:
                    operations.invoke(op)
                except sqlalchemy.exc.DBAPIError as exc:
                    reason = (str(exc.orig).strip().splitlines() or ["refused"])[0]
                    raise ConfigError(
                        f"revision refused, nothing written: the {direction} of "
                        f"{describe(op)} fails on PostgreSQL {version}: {reason}") from None
        savepoint.rollback()


def _major(context: MigrationContext) -> int:
    """The server's major version, from the dialect of an online migration context."""
    info = context.dialect.server_version_info
    if not info or not isinstance(info[0], int):
        raise CommandError("autogenerate needs a connected server")
    return info[0]


def _flat(operations: list[MigrateOperation]) -> list[MigrateOperation]:
    """Alembic's per-table op containers opened up, in order."""
    return [inner for op in operations
            for inner in (_flat(op.ops) if isinstance(op, alembic_ops.OpContainer) else [op])]


def describe(op: MigrateOperation) -> str:
    """``policy public.flow.read`` or ``table public.flow``: what an op changes."""
    if isinstance(op, RlsOp):
        members = op.obj if isinstance(op.obj, tuple) else (op.obj,)
        keys = [getattr(m, "key", None) for m in members]
        named = [f"{k[0]} {'.'.join(map(str, k[1:]))}" for k in keys if k]
        return f"op.{op.name}({', '.join(named)})" if named else f"op.{op.name}()"
    table = getattr(op, "table_name", None)
    schema = getattr(op, "schema", None)
    where = f"{schema}.{table}" if schema and table else table
    return f"{type(op).__name__} on {where}" if where else type(op).__name__


def upgrade(settings: Config, target: str, database_url: str | None, pg_version: int | None,
            sql: bool = False, model: Model | None = None) -> str:
    """Upgrade to `target` in one transaction; with `sql`, return the SQL instead."""
    return migrate("upgrade", settings, target, database_url, pg_version, sql, model)


def downgrade(settings: Config, target: str, database_url: str | None,
              pg_version: int | None, sql: bool = False, model: Model | None = None) -> str:
    """Downgrade to `target`; with `sql`, return the SQL instead (``from:to`` range)."""
    return migrate("downgrade", settings, target, database_url, pg_version, sql, model)


def migrate(direction: str, settings: Config, target: str, database_url: str | None,
            pg_version: int | None, sql: bool = False, model: Model | None = None) -> str:
    """``"upgrade"`` or ``"downgrade"`` to `target`; with `sql`, the SQL instead."""
    if sql:
        return _offline_sql(settings, pg_version, direction, target, model)
    getattr(command, direction)(alembic_config(settings, database_url, pg_version,
                                               model=model), target)
    return ""
