"""``rlskit db start|stop|status|url``: the project's embedded development server."""

from __future__ import annotations

import typer

from ..config import load_config
from .common import app, handled

db_app = typer.Typer(help="The embedded development PostgreSQL server (.rlskit/pgdata).",
                     rich_markup_mode=None, no_args_is_help=True)
app.add_typer(db_app, name="db")


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
