"""What every command shares: the app, the consoles, the options, turning mistakes into one
line with exit code 2, and where a command's model and database come from.

Exit codes: 0 success, 1 findings (e.g. a failed isolation probe), 2 bad input or
configuration (one sentence on stderr; ``--debug`` shows the traceback).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from enum import Enum
from typing import Annotated, Any, TypeVar

import psycopg
import sqlalchemy.exc
import typer
from alembic.util import CommandError
from rich.console import Console
from rich.markup import escape

from ..config import Config, load_config, load_model
from ..errors import ConfigError, RlskitError
from ..model import Model
from ..urls import libpq_url

app = typer.Typer(help="Declare, generate, migrate, test and trust Postgres row-level security.",
                  rich_markup_mode=None,
                  no_args_is_help=True, add_completion=False)

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


def model_and_database_of(database: str | None, model: str | None, env: str | None
                          ) -> tuple[Model, str]:
    """`model_and_database` for the usual ``--database``, ``--model`` and ``--env``."""
    return model_and_database(load_config(model=model, database_url=database), env, database)


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


def say(text: str, console: Console = err) -> None:
    """One message, as it is (no markup, no wrapping)."""
    console.print(text, markup=False, highlight=False, soft_wrap=True)
