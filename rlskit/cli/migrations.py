"""``rlskit init``, ``revision``, ``migrate``, ``downgrade``, ``current``, ``history`` and
``status``: Alembic, configured from pyproject.toml."""

from __future__ import annotations

import json
from typing import Annotated

import psycopg
import sqlalchemy.exc
import typer

from ..config import Config, load_config
from ..errors import ConfigError
from ..migrations.commands import Revision, alembic_config
from ..model import Model
from .common import (
    DatabaseOption,
    EnvOption,
    Format,
    ModelOption,
    PgVersionOption,
    app,
    err,
    handled,
    in_environment,
    model_and_database,
)


@app.command()
@handled
def init(
    directory: Annotated[str | None, typer.Option(
        help="Where the migrations go (default: [tool.rlskit] migrations, else migrations).")
    ] = None,
    model: Annotated[str | None, typer.Option(
        "--model", help="Your model as package.module:attribute (default: a stub in "
        "rls_model.py).")] = None,
    metadata: Annotated[str | None, typer.Option(
        "--metadata", help="The SQLAlchemy metadata Alembic manages, e.g. "
        "myapp.models:Base.metadata (default: rlskit's objects only).")] = None,
) -> None:
    """Scaffold migrations/ wired to rlskit, the model (or a stub) and the pyproject
    settings ([tool.rlskit], and [tool.alembic] so plain `alembic` works too)."""
    from ..migrations.scaffold import init as scaffold

    config = load_config()
    root = config.root
    for path in scaffold(root, directory or config.migrations, model, metadata):
        err.print(f"wrote {path.relative_to(root)}", highlight=False)


@app.command()
@handled
def revision(
    message: Annotated[str, typer.Option("--message", "-m", help="What the revision does.")],
    database: DatabaseOption = None,
    model: ModelOption = None,
) -> None:
    """Autogenerate a revision from the model (and a .sql twin for review)."""
    from ..migrations.commands import revision as autogenerate

    config = load_config(model=model)
    alembic_config(config)  # the project has migrations, before any server starts
    loaded, url = model_and_database(config, None, database)  # may show its own status
    with err.status("comparing the model with the database…"):
        written = autogenerate(config, message, url, model=loaded)
    if written is None:
        err.print("no changes: the database already matches the model; no revision written",
                  highlight=False)
        return
    err.print(f"wrote {written.path.relative_to(config.root)} and "
              f"{written.sql_path.name}: {written.summary}", highlight=False, soft_wrap=True)
    _review(config, loaded, url, written)


def _review(config: Config, model: Model, url: str, written: Revision) -> None:
    """Review the new revision against the one it revises, print the cells it changes
    and record them in its ``.sql`` twin."""
    from ..migrations.review import record
    from ..migrations.review import review as review_states

    try:
        with err.status("reviewing who can do what before and after the revision…"):
            outcome = review_states(config, model, url, written.down or "base", written.id)
    except (ConfigError, psycopg.Error, sqlalchemy.exc.DBAPIError) as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        err.print(f"review not run ({reason}); run `rlskit review {written.down or 'base'} "
                  f"{written.id}` on a server where you may create databases", highlight=False,
                  soft_wrap=True)
        return
    record(written, outcome)
    err.print(f"review: {outcome.summary}", highlight=False)
    for change in outcome.changes:
        err.print(f"  {change}", highlight=False, soft_wrap=True)
    for change in outcome.unacknowledged:
        err.print(f"  if intended, acknowledge it in the revision: {change.acknowledgement}",
                  highlight=False, soft_wrap=True)


SqlOption = Annotated[bool, typer.Option("--sql", help="Print the SQL instead of running it.")]


def _move(direction: str, target: str, sql: bool, database: str | None,
          pg_version: int | None, env: str | None) -> None:
    from ..migrations.commands import current
    from ..migrations.commands import migrate as run

    config = load_config()
    if sql:
        model = in_environment(config, env, database)[0] if env else None
        typer.echo(run(direction, config, target, None, pg_version, sql=True, model=model),
                   nl=False)
        return
    alembic_config(config)
    model, url = model_and_database(config, env, database)
    before = current(config, url)
    with err.status(f"{direction[:-1]}ing to {target}…"):
        run(direction, config, target, url, pg_version, model=model)
    after = current(config, url)
    where = f" ({env})" if env else ""
    if before == after:
        err.print(f"already at {target}{where}: {_revisions(after)}", highlight=False)
    else:
        err.print(f"{direction}d{where} from {_revisions(before)} to {_revisions(after)}",
                  highlight=False)


def _revisions(revisions: tuple[str, ...]) -> str:
    return ", ".join(revisions) if revisions else "base (no revision)"


@app.command()
@handled
def migrate(
    target: Annotated[str, typer.Argument(help="Revision to upgrade to.")] = "head",
    sql: SqlOption = False,
    database: DatabaseOption = None,
    pg_version: PgVersionOption = None,
    env: EnvOption = None,
) -> None:
    """Upgrade the database to TARGET (default: head), in one transaction."""
    _move("upgrade", target, sql, database, pg_version, env)


@app.command(context_settings={"ignore_unknown_options": True})
@handled
def downgrade(
    target: Annotated[str, typer.Argument(
        help="Revision to downgrade to (with --sql: a FROM:TO range).")],
    sql: SqlOption = False,
    database: DatabaseOption = None,
    pg_version: PgVersionOption = None,
    env: EnvOption = None,
) -> None:
    """Downgrade the database to TARGET (e.g. -1 or base), in one transaction."""
    _move("downgrade", target, sql, database, pg_version, env)


@app.command("current")
@handled
def current_command(database: DatabaseOption = None, env: EnvOption = None) -> None:
    """Print the revision the database is at."""
    from ..migrations.commands import current

    config = load_config()
    alembic_config(config)
    _, url = model_and_database(config, env, database)
    typer.echo(_revisions(current(config, url)))


@app.command("history")
@handled
def history_command(fmt: Annotated[Format, typer.Option("--format", help="Output format.")
                                   ] = Format.text) -> None:
    """List the project's revisions, newest first."""
    from ..migrations.commands import history

    scripts = history(load_config())
    if fmt is Format.json:
        typer.echo(json.dumps([{"revision": s.revision, "down_revision": s.down_revision,
                                "message": s.doc, "head": s.is_head} for s in scripts],
                              indent=2))
        return
    for script in scripts:
        head = " (head)" if script.is_head else ""
        typer.echo(f"{script.down_revision or '<base>'} -> {script.revision}{head}, {script.doc}")


@app.command("status")
@handled
def status_command(
    database: DatabaseOption = None,
    env: EnvOption = None,
    fmt: Annotated[Format, typer.Option("--format", help="Output format.")] = Format.text,
) -> None:
    """Say where the database stands: its revision, the head, the revisions still to apply,
    and whether the model has changes no revision captures; exit 1 when something is to do
    (`rlskit migrate`, or `rlskit revision`)."""
    from ..migrations.commands import status

    config = load_config()
    alembic_config(config)
    model, url = model_and_database(config, env, database)
    with err.status("comparing the database with the revisions and the model…"):
        found = status(config, url, model)
    if fmt is Format.json:
        typer.echo(json.dumps({"current": list(found.current), "heads": list(found.heads),
                               "pending": list(found.pending),
                               "uncaptured": found.uncaptured}, indent=2))
    else:
        typer.echo(f"database: {_revisions(found.current)}")
        typer.echo(f"head:     {_revisions(found.heads)}")
        if found.pending:
            typer.echo(f"pending:  {len(found.pending)} revision(s) to apply "
                       f"({', '.join(found.pending)}): run `rlskit migrate`")
        elif found.uncaptured:
            typer.echo(f"model:    changes no revision captures ({found.uncaptured}): run "
                       "`rlskit revision -m MESSAGE`")
        else:
            typer.echo("model:    every change is in a revision; the database is up to date")
    if found.pending or found.uncaptured:
        raise typer.Exit(1)
