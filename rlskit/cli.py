"""The ``rlskit`` command line: a thin layer over the library.

Exit codes: 0 success, 1 findings (e.g. a failed isolation probe), 2 bad input or
configuration (one sentence on stderr; ``--debug`` shows the traceback).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, TypeVar

import psycopg
import sqlalchemy.exc
import typer
from alembic.util import CommandError
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .config import Config, load_config, load_model
from .diff import diff_database, drift_sql
from .errors import ConfigError, RlskitError
from .generate import DEFAULT_PG_VERSION, generate_sql
from .migrations.commands import alembic_config
from .model import Model
from .urls import libpq_url

app = typer.Typer(help="Declare, generate, migrate, test and trust Postgres row-level security.",
                  rich_markup_mode=None,
                  no_args_is_help=True, add_completion=False)
db_app = typer.Typer(help="The embedded development PostgreSQL server (.rlskit/pgdata).",
                     rich_markup_mode=None, no_args_is_help=True)
app.add_typer(db_app, name="db")

out = Console()
if not out.is_terminal:  # piped: one line per table row, never SQL wrapped mid-identifier
    out = Console(width=10_000)
err = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])
_state = {"debug": False}

ModelOption = Annotated[str | None, typer.Option(
    "--model", help="Model as package.module:attribute (default: [tool.rlskit] model).")]


class Format(str, Enum):
    text = "text"
    json = "json"


def _print_version(asked: bool) -> None:
    if asked:
        from importlib.metadata import version

        typer.echo(f"rlskit {version('rlskit')}")
        raise typer.Exit()


@app.callback()
def _main(
    debug: Annotated[bool, typer.Option(help="Show tracebacks on errors.")] = False,
    version: Annotated[bool, typer.Option(
        "--version", help="Print rlskit's version and exit.", is_eager=True,
        callback=_print_version)] = False,
) -> None:
    _state["debug"] = debug


def handled(func: F) -> F:
    """Turn user mistakes into one line on stderr and exit code 2."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (RlskitError, CommandError, psycopg.OperationalError,
                sqlalchemy.exc.DBAPIError) as exc:
            if _state["debug"]:
                raise
            message = _first_line(exc)
            if isinstance(exc, sqlalchemy.exc.DBAPIError):
                message = f"migration failed, nothing was changed: {_first_line(exc.orig)}"
            err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


def _first_line(exc: BaseException | None) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else repr(exc)


def dev_server_url(config: Config) -> str:
    """The embedded development server's superuser URL, started if needed."""
    server = config.dev_server()
    if not server.is_running():
        with err.status("starting the embedded PostgreSQL server…"):
            server.start()
    return server.url()


def database_or_dev_server(config: Config, database: str | None = None) -> str:
    """`database`, else the configured database, else the development server."""
    url = database or config.database_url
    return libpq_url(url) if url else dev_server_url(config)


def model_and_database(config: Config, env: str | None, database: str | None
                       ) -> tuple[Model, str]:
    """The model (under the environment's role prefix) and the database to work on:
    ``--database``, the environment's, the configured one, else the development server.
    The model is loaded first, so a broken project starts no server."""
    if env is None:
        return load_model(config.model, config.root), database_or_dev_server(config, database)
    model, url = in_environment(config, env, database)
    if url is None:
        raise ConfigError(f"environment {env!r} has no database: set database_url in "
                          f"[tool.rlskit.environments.{env}] or "
                          f"RLSKIT_{env.upper()}_DATABASE_URL")
    return model, libpq_url(url)


DatabaseOption = Annotated[str | None, typer.Option(
    "--database", "-d", help="Database URL (default: RLSKIT_DATABASE_URL, DATABASE_URL, "
    "database_url in [tool.rlskit], else the embedded development server).")]


def in_environment(config: Config, env: str, database: str | None) -> tuple[Model, str | None]:
    """The model under the environment's role prefix and the environment's database."""
    environment = config.environment(env)
    model = load_model(config.model, config.root).with_role_prefix(environment.role_prefix)
    return model, database or environment.database_url


EnvOption = Annotated[str | None, typer.Option(
    "--env", help="An environment of [tool.rlskit.environments]: its role prefix and its "
    "database (RLSKIT_<ENV>_DATABASE_URL).")]


PgVersionOption = Annotated[int | None, typer.Option(
    help="PostgreSQL major version to write SQL for (offline; default 18).")]


@app.command("sql")
@handled
def sql_command(
    model: ModelOption = None,
    out_file: Annotated[Path | None, typer.Option("--out", "-o", help="Write to this file.")
                        ] = None,
    pg_version: Annotated[int, typer.Option(help="Target PostgreSQL major version (14-18).")
                          ] = DEFAULT_PG_VERSION,
) -> None:
    """Print the SQL the model generates (roles, grants, RLS, policies, views, helpers)."""
    config = load_config(model=model)
    script = generate_sql(load_model(config.model, config.root), pg_version=pg_version)
    if out_file is None:
        typer.echo(script, nl=False)
    else:
        out_file.write_text(script)
        err.print(f"wrote {out_file}", highlight=False)


@app.command()
@handled
def diff(
    database: DatabaseOption = None,
    model: ModelOption = None,
    env: EnvOption = None,
) -> None:
    """Print the SQL that would bring the database in line with the model; exit 1 on drift.

    Compares by meaning (expressions as the server prints them); objects the model does not
    manage are ignored. The database is not changed.
    """
    config = load_config(model=model)
    loaded, url = model_and_database(config, env, database)
    with psycopg.connect(url) as conn:
        changes = diff_database(conn, loaded)
        script = drift_sql(changes, conn.info.server_version // 10000)
    if not changes:
        err.print("no drift: the database matches the model", highlight=False)
        return
    typer.echo(script, nl=False)
    err.print(f"{len(changes)} difference(s)", highlight=False)
    raise typer.Exit(1)


class CheckFormat(str, Enum):
    text = "text"
    json = "json"
    sarif = "sarif"


@app.command()
@handled
def check(
    database: DatabaseOption = None,
    model: ModelOption = None,
    env: EnvOption = None,
    model_only: Annotated[bool, typer.Option(
        "--model-only", help="Lint the model alone, for --pg-version, without a database.")
    ] = False,
    pg_version: Annotated[int, typer.Option(
        help="With --model-only: the PostgreSQL major version to lint for.")
    ] = DEFAULT_PG_VERSION,
    fmt: Annotated[CheckFormat, typer.Option("--format", help="Output format.")
                   ] = CheckFormat.text,
) -> None:
    """Lint for row-level security mistakes; exit 1 on any unwaived error.

    Lints the live database (every user schema, managed by rlskit or not; the same default
    database as the other commands), or with --model-only the model alone. Each finding
    names its rule (RLS001…), the object, why it matters and the fix. Waive a rule for one
    object in the model: model.waive("RLS007", "public.t", reason=…).
    """
    from .checks import check_database, check_model, has_errors
    from .checks.report import as_json, as_sarif, as_table

    config = load_config(model=model)
    if model_only:
        if database or env:
            raise ConfigError("--model-only lints the model without a database: drop "
                              "--database / --env")
        loaded = load_model(config.model, config.root)
        findings = check_model(loaded, pg_version)
        where = f"the model (PostgreSQL {pg_version})"
    else:
        loaded, url = model_and_database(config, env, database)
        with psycopg.connect(url) as conn:
            findings = check_database(conn, loaded)
            where = f"database {conn.info.dbname}"
    if fmt is CheckFormat.json:
        typer.echo(json.dumps(as_json(findings), indent=2))
    elif fmt is CheckFormat.sarif:
        typer.echo(json.dumps(as_sarif(findings), indent=2))
    elif findings:
        out.print(as_table(findings, f"rlskit check: {where}"))
    counts = {s: sum(1 for f in findings if f.severity == s and not f.waived)
              for s in ("error", "warning")}
    waived = sum(1 for f in findings if f.waived)
    err.print(f"{where}: {counts['error']} error(s), {counts['warning']} warning(s), "
              f"{waived} waived", highlight=False)
    if has_errors(findings):
        raise typer.Exit(1)


class VerifyFormat(str, Enum):
    text = "text"
    markdown = "markdown"
    json = "json"
    html = "html"


@app.command()
@handled
def verify(
    database: Annotated[str | None, typer.Option(
        "--database", "-d", help="Verify this database (a superuser's URL) inside a "
        "transaction that is rolled back, instead of a scratch database.")] = None,
    model: ModelOption = None,
    fmt: Annotated[VerifyFormat, typer.Option("--format", help="Output format.")
                   ] = VerifyFormat.text,
) -> None:
    """Prove the access matrix: every role × table × command under two tenants' contexts
    and none, against what the model promises; exit 1 on any violation.

    Without --database, a scratch database is built on the configured server (else the
    embedded one) from the model's SQLAlchemy tables, and dropped afterwards.
    """
    from .verify import verify_database, verify_scratch
    from .verify.report import as_html, as_json, as_markdown, as_tables

    config = load_config(model=model)
    loaded = load_model(config.model, config.root)
    if database is None:
        admin_url = database_or_dev_server(config)  # the configured server, else the dev one
        with err.status("building a scratch database and probing every role × table…"):
            matrix = verify_scratch(admin_url, loaded)
    else:
        with psycopg.connect(libpq_url(database)) as conn, \
                err.status("probing every role × table…"):
            matrix = verify_database(conn, loaded)
    if fmt is VerifyFormat.json:
        typer.echo(json.dumps(as_json(matrix), indent=2))
    elif fmt is VerifyFormat.markdown:
        typer.echo(as_markdown(matrix))
    elif fmt is VerifyFormat.html:
        typer.echo(as_html(matrix), nl=False)
    else:
        for table in as_tables(matrix):
            out.print(table)
    proven = sum(c.proven for c in matrix.cells)
    err.print(f"{proven} of {len(matrix.cells)} cells proven, "
              f"{sum(s.ok for s in matrix.side_channels)} of {len(matrix.side_channels)} "
              "side channels closed", highlight=False)
    if not matrix.ok:
        raise typer.Exit(1)


class GraphFormat(str, Enum):
    mermaid = "mermaid"
    dot = "dot"


@app.command()
@handled
def graph(
    model: ModelOption = None,
    fmt: Annotated[GraphFormat, typer.Option("--format", help="Diagram language.")
                   ] = GraphFormat.mermaid,
) -> None:
    """Draw the role hierarchy, SET ROLE paths, grants and view exposure (Mermaid or DOT)."""
    from .graph import build_graph, to_dot, to_mermaid

    config = load_config(model=model)
    drawing = build_graph(load_model(config.model, config.root))
    typer.echo(to_mermaid(drawing) if fmt is GraphFormat.mermaid else to_dot(drawing), nl=False)


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
    from .migrations.scaffold import init as scaffold

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
    from .migrations.commands import revision as autogenerate

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


SqlOption = Annotated[bool, typer.Option("--sql", help="Print the SQL instead of running it.")]


def _move(direction: str, target: str, sql: bool, database: str | None,
          pg_version: int | None, env: str | None) -> None:
    from .migrations.commands import current
    from .migrations.commands import migrate as run

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
    from .migrations.commands import current

    config = load_config()
    alembic_config(config)
    _, url = model_and_database(config, env, database)
    typer.echo(_revisions(current(config, url)))


@app.command("history")
@handled
def history_command(fmt: Annotated[Format, typer.Option("--format", help="Output format.")
                                   ] = Format.text) -> None:
    """List the project's revisions, newest first."""
    from .migrations.commands import history

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
    from .migrations.commands import status

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


@app.command()
@handled
def demo(
    database: Annotated[str, typer.Option(help="Name of the demo database (recreated).")
                        ] = "rlskit_demo",
    admin_url: Annotated[str | None, typer.Option(
        "--admin-url", help="Superuser URL of a server to use instead of the embedded one.")
    ] = None,
    fmt: Annotated[Format, typer.Option("--format", help="Output format.")] = Format.text,
) -> None:
    """Install the example SaaS model on the embedded server and probe its isolation."""
    from .examples.demo import run_demo
    from .examples.saas import build_model

    if admin_url is None:
        server = load_config().dev_server()
        with err.status("starting the embedded PostgreSQL server…"):
            server.start()
        admin_url = server.url()
    with err.status("installing the example and probing every role × table…"):
        probes = run_demo(admin_url, database, build_model(role_prefix="demo_"))
    if fmt is Format.json:
        typer.echo(json.dumps([p.__dict__ | {"ok": p.ok} for p in probes], indent=2))
    else:
        table = Table(title="Tenant isolation of the example model (context: tenant A)")
        for column in ("role", "table", "seen", "B seen", "no context", "write to B",
                       "verdict"):
            table.add_column(column)
        for p in probes:
            table.add_row(p.role, p.table, "denied" if p.visible is None else str(p.visible),
                          str(p.leaked), str(p.no_context), p.cross_tenant_write,
                          "[green]isolated[/]" if p.ok else "[bold red]LEAK[/]")
        out.print(table)
    if not all(p.ok for p in probes):
        raise typer.Exit(1)


@db_app.command("start")
@handled
def db_start() -> None:
    """Start (initialising if needed) the development server."""
    server = load_config().dev_server()
    server.start()
    typer.echo(server.url())


@db_app.command("stop")
@handled
def db_stop() -> None:
    """Stop the development server."""
    load_config().dev_server().stop()


@db_app.command("status")
@handled
def db_status() -> None:
    """Say whether the development server is running; exit 1 when it is not."""
    server = load_config().dev_server()
    running = server.is_running()
    typer.echo(f"running (PostgreSQL {server.version}) at {server.url()}" if running
               else "stopped")
    if not running:
        raise typer.Exit(1)


@db_app.command("url")
@handled
def db_url() -> None:
    """Print the development server's superuser connection URL."""
    typer.echo(load_config().dev_server().url())


# registers `rlskit access`, `rlskit connect` and `rlskit key`
from . import cli_access, cli_keys  # noqa: E402,F401
