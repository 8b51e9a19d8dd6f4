"""``rlskit sql`` and ``rlskit graph``: the model's SQL and its diagram."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from ..config import load_config, load_model
from ..generate import DEFAULT_PG_VERSION, generate_sql
from .common import ModelOption, app, err, handled


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
    from ..graph import build_graph, to_dot, to_mermaid

    config = load_config(model=model)
    drawing = build_graph(load_model(config.model, config.root))
    typer.echo(to_mermaid(drawing) if fmt is GraphFormat.mermaid else to_dot(drawing), nl=False)
