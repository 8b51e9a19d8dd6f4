"""The states ``rlskit review`` compares, and what the revisions between them acknowledge.

A state is ``database`` (the database as it is: observed in a transaction that is rolled
back), ``model`` (the working model installed in a scratch database) or a revision (the
project's revisions up to it, run into a scratch database). Scratch databases are made on
the given server under a role prefix of their own, one at a time, and dropped with their
roles. Every state is probed with the working model's roles, relations and context: a
role or relation a state lacks is denied there; relations only an older state has are
not probed.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
import sqlalchemy.exc
from alembic.script import Script, ScriptDirectory
from alembic.script.revision import RevisionError
from alembic.util import CommandError
from psycopg import errors, sql

from ..config import Config
from ..diff import diff_database
from ..errors import ConfigError
from ..model import Model
from ..scratch import create_tables, drop_database, table_definitions, with_prefix
from ..verify import verify_database, verify_scratch
from ..verify.review import (
    Access,
    Acknowledgement,
    CellChange,
    Kind,
    acknowledge,
    acknowledgements,
    affected,
    compare,
    observed,
    promised,
)
from ..verify.review import review as review_matrix
from .commands import Revision, alembic_config, current, upgrade

__all__ = ["DATABASE", "MODEL", "Review", "record", "review"]

DATABASE = "database"
MODEL = "model"
_RELATIVE = re.compile(r"(?P<name>\w+)-(?P<back>\d+)")  # head-1: the revision before head


@dataclass(frozen=True)
class Review:
    before: str  # the states, as resolved: "database", "model" or a revision id
    after: str
    changes: list[CellChange]

    @property
    def widenings(self) -> list[CellChange]:
        return [c for c in self.changes if c.kind is Kind.WIDENING]

    @property
    def unacknowledged(self) -> list[CellChange]:
        return [c for c in self.widenings if not c.acknowledged]

    @property
    def summary(self) -> str:
        """``2 cells change: 1 widening (1 acknowledged), 1 narrowing, 0 neutral``."""
        counts = {kind: sum(c.kind is kind for c in self.changes) for kind in Kind}
        acknowledged = len(self.widenings) - len(self.unacknowledged)
        return (f"{len(self.changes)} cell{'' if len(self.changes) == 1 else 's'} change: "
                f"{counts[Kind.WIDENING]} widening"
                + (f" ({acknowledged} acknowledged)" if acknowledged else "")
                + f", {counts[Kind.NARROWING]} narrowing, {counts[Kind.NEUTRAL]} neutral")


def review(settings: Config, model: Model, url: str, before: str = DATABASE,
           after: str = MODEL) -> Review:
    """The cells in which state `after` differs from state `before`; `url` is the
    database (a superuser's), whose server also holds the scratch databases."""
    scripts = _scripts(settings) if {before, after} - {DATABASE, MODEL} else None
    before, after = (_resolve(scripts, state) for state in (before, after))
    if (before, after) == (DATABASE, MODEL):  # the model's promises over the same rows,
        with psycopg.connect(url) as conn:  # in the cells of what the diff changes
            only = affected(diff_database(conn, model))
            changes = review_matrix(verify_database(conn, model, only=only)) \
                if only != set() else []
    else:
        changes = compare(_access(settings, model, url, before),
                          _access(settings, model, url, after))
    if scripts is not None and after not in (DATABASE, MODEL):
        start = current(settings, url) if before == DATABASE else (
            () if before == MODEL else (before,))
        changes = acknowledge(changes, _acknowledgements(scripts, start, after))
    return Review(before, after, changes)


def _scripts(settings: Config) -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config(settings))


def _resolve(scripts: ScriptDirectory | None, state: str) -> str:
    """``database``, ``model``, ``base`` or the full id of a revision (``head``, a
    prefix of an id, ``head-1``…)."""
    if state in (DATABASE, MODEL, "base") or scripts is None:
        return state
    name, steps = state, 0
    if relative := _RELATIVE.fullmatch(state):
        name, steps = relative["name"], -int(relative["back"])
    try:
        script: Script | None = scripts.get_revision(name)
        for _ in range(-steps):  # back along the history, one revision each
            if script is None:
                raise CommandError(f"{state!r} goes back past the first revision")
            down = script.down_revision
            if isinstance(down, (tuple, list)):
                raise CommandError(f"{script.revision} merges several revisions")
            script = scripts.get_revision(down) if down else None
    except CommandError as exc:
        raise ConfigError(f"review: {state!r} is neither `database`, `model` nor a revision "
                          f"of {scripts.dir}: {exc}") from None
    return "base" if script is None else script.revision


def _access(settings: Config, model: Model, url: str, state: str) -> Access:
    if state == DATABASE:
        with psycopg.connect(url) as conn:
            return observed(verify_database(conn, model, expect=False))
    if model.citus:
        raise ConfigError(f"review: the {state} state of a Citus model needs a scratch "
                          "database with Citus, which rlskit does not make yet; review "
                          "`database model` on the cluster instead")
    if state == MODEL:
        return promised(verify_scratch(url, model))
    with _scratch(url, model) as (scratch_url, scratch_model):
        _upgrade(settings, scratch_model, scratch_url, state)
        with psycopg.connect(scratch_url) as conn:
            return observed(verify_database(conn, scratch_model, expect=False))


@contextmanager
def _scratch(url: str, model: Model) -> Iterator[tuple[str, Model]]:
    """An empty database on the server of `url`, and `model` with a role prefix of its
    own; both dropped after."""
    tag = f"rlskit_review_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(tag)))
    try:
        yield psycopg.conninfo.make_conninfo(url, dbname=tag), with_prefix(model, f"{tag}_")
    finally:
        drop_database(url, tag, f"{tag}_")


def _upgrade(settings: Config, model: Model, url: str, revision: str) -> None:
    """Run the revisions up to `revision` into the empty database of `url`. Revisions that
    leave the tables to the application (their environment has no metadata) find them
    made first from the model's SQLAlchemy tables."""
    if revision == "base":
        return
    try:
        upgrade(settings, revision, url, None, model=model)
    except sqlalchemy.exc.ProgrammingError as exc:  # the run was rolled back as a whole
        if not isinstance(exc.orig, errors.UndefinedTable):
            raise
        with psycopg.connect(url) as conn:
            create_tables(conn, f"{model.role_prefix}tables_owner", table_definitions(model))
        upgrade(settings, revision, url, None, model=model)


def _acknowledgements(scripts: ScriptDirectory, start: tuple[str, ...], end: str
                      ) -> list[Acknowledgement]:
    """What the revisions after `start` up to `end` acknowledge (nothing when `end` is
    not after `start`: a review of a downgrade)."""
    try:
        between = list(scripts.iterate_revisions(end, start or "base"))
    except RevisionError:
        return []
    found = []
    for script in between:
        path = Path(script.path)
        found += acknowledgements(path.read_text(), path.name)
    return found


def record(revision: Revision, outcome: Review) -> None:
    """Write the review into the header of the revision's ``.sql`` twin, after its
    summary: the count, then each changed cell (widenings with the line that would
    acknowledge them)."""
    lines = [f"-- Review: {outcome.summary}"]
    for change in outcome.changes:
        lines.append(f"--   {change}")
        if change.kind is Kind.WIDENING and not change.acknowledged:
            lines.append(f"--     acknowledge with: {change.acknowledgement}")
    text = revision.sql_path.read_text()
    head, sep, rest = text.partition("\n-- The exact SQL")
    revision.sql_path.write_text(head + "\n" + "\n".join(lines) + sep + rest)
