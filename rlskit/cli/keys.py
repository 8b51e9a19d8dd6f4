"""``rlskit key rotate|list|retire``: the keys that seal request contexts.

Thin over `rlskit.keystore`: ``rotate`` adds a key and prints it once (or writes it to a
file with mode 0600), ``retire`` makes every seal of a key fail from the next statement,
``list`` shows ids and dates, never a secret.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import psycopg
import typer
from rich.table import Table

from .. import keystore
from ..errors import ConfigError
from ..seal import ContextKey
from .common import (
    DatabaseOption,
    EnvOption,
    Format,
    ModelOption,
    app,
    err,
    handled,
    model_and_database_of,
    out,
    say,
)

key_app = typer.Typer(rich_markup_mode=None,
    help="The keys that seal request contexts: the application signs with one, the database "
         "verifies with every key not retired.", no_args_is_help=True)
app.add_typer(key_app, name="key")


def _connect(database: str | None, model: str | None, env: str | None
             ) -> tuple[psycopg.Connection, str]:
    loaded, url = model_and_database_of(database, model, env)
    if not loaded.sealed:
        raise ConfigError("the model does not seal its context (model.context(sealed=False)); "
                          "it has no keys")
    return psycopg.connect(url, autocommit=True), loaded.helpers_schema


def _write_secret(path: Path, text: str) -> None:
    """`text` into a new file only its owner may read (never over an existing one)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise ConfigError(f"{path} exists; choose a new file for the key") from None
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror}") from None
    with os.fdopen(fd, "w") as f:
        f.write(text + "\n")


@key_app.command("rotate")
@handled
def rotate_command(
    key_id: Annotated[str | None, typer.Option("--id", help="The new key's id (default: "
                                               "k<UTC time>).")] = None,
    out_file: Annotated[Path | None, typer.Option(
        "--out", help="Write the key to this new file (mode 0600) instead of printing it.")
    ] = None,
    database: DatabaseOption = None, model: ModelOption = None, env: EnvOption = None,
) -> None:
    """Add a new key; keys not retired stay valid, so move the application to it, then
    retire the old one.

    The key is printed once, as RLSKIT_CONTEXT_KEY=<id>:<secret> (or written to --out),
    for the application's environment or a file, never a command line.
    """
    key = ContextKey.generate(key_id)
    if out_file is not None and out_file.exists():
        raise ConfigError(f"{out_file} exists; choose a new file for the key")
    conn, schema = _connect(database, model, env)
    with conn:
        keystore.rotate(conn, schema, key)
    if out_file is not None:
        _write_secret(out_file, key.text())
        say(f"added context key {key.kid!r}; written to {out_file} (mode 0600)")
    else:
        typer.echo(f"RLSKIT_CONTEXT_KEY={key.text()}")
        say(f"added context key {key.kid!r}; this is the only time it is shown")


@key_app.command("retire")
@handled
def retire_command(
    key_id: Annotated[str, typer.Argument(help="The id of the key to retire.")],
    database: DatabaseOption = None, model: ModelOption = None, env: EnvOption = None,
) -> None:
    """Retire a key: seals made with it fail from the next statement (its pads are erased)."""
    conn, schema = _connect(database, model, env)
    with conn:
        if not keystore.retire(conn, schema, key_id):
            raise ConfigError(f"no live context key {key_id!r} (see rlskit key list)")
    say(f"retired context key {key_id!r}")


@key_app.command("list")
@handled
def list_command(
    fmt: Annotated[Format, typer.Option("--format", help="Output format.")] = Format.text,
    database: DatabaseOption = None, model: ModelOption = None, env: EnvOption = None,
) -> None:
    """The keys: id, when added, when retired (never a secret)."""
    conn, schema = _connect(database, model, env)
    with conn:
        keys = keystore.list_keys(conn, schema)
    if fmt is Format.json:
        typer.echo(json.dumps([{"id": k.kid, "created_at": k.created_at.isoformat(),
                                "retired_at": k.retired_at and k.retired_at.isoformat()}
                               for k in keys], indent=2))
        return
    table = Table("key", "added", "retired")
    for k in keys:
        table.add_row(k.kid, f"{k.created_at:%Y-%m-%d %H:%M:%S %Z}",
                      "" if k.retired_at is None else f"{k.retired_at:%Y-%m-%d %H:%M:%S %Z}")
    out.print(table) if keys else err.print("no context keys yet (rlskit key rotate)")
