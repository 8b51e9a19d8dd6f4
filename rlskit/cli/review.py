"""``rlskit review [FROM] [TO]``: what a change does to who can do what, cell by cell."""

from __future__ import annotations

import json
from enum import Enum
from typing import Annotated

import typer

from ..config import load_config, load_model
from ..migrations.review import DATABASE, MODEL, Review
from .common import ModelOption, app, database_or_dev_server, err, handled


class ReviewFormat(str, Enum):
    text = "text"
    markdown = "markdown"
    json = "json"


def _markdown(outcome: Review) -> str:
    lines = [f"**Access review** `{outcome.before}` → `{outcome.after}`: {outcome.summary}"]
    if outcome.changes:
        lines += ["", "| role | command | relation | before | after | change |",
                  "|---|---|---|---|---|---|"]
        for c in outcome.changes:
            kind = f"**{c.kind}**" + (f" (acknowledged: {c.acknowledged})"
                                      if c.acknowledged else "")
            lines.append(f"| {c.actor} | {c.command} | {c.relation} | {c.before} | "
                         f"{c.after} | {kind} |")
    return "\n".join(lines)


def _json(outcome: Review) -> str:
    return json.dumps({
        "from": outcome.before, "to": outcome.after, "summary": outcome.summary,
        "changes": [{"actor": c.actor, "relation": c.relation, "command": c.command,
                     "before": str(c.before), "after": str(c.after), "kind": str(c.kind),
                     "acknowledged": c.acknowledged} for c in outcome.changes]}, indent=2)


@app.command()
@handled
def review(
    before: Annotated[str, typer.Argument(
        metavar="FROM", help="`database` (as it is), `model`, or a revision (id, `head`, "
        "`head-1`, `base`).")] = DATABASE,
    after: Annotated[str, typer.Argument(
        metavar="TO", help="The same choices as FROM.")] = MODEL,
    database: Annotated[str | None, typer.Option(
        "--database", "-d", help="The database (a superuser's URL), whose server also "
        "holds the scratch databases (default: the configured one, else the development "
        "server).")] = None,
    model: ModelOption = None,
    fmt: Annotated[ReviewFormat, typer.Option("--format", help="Output format.")
                   ] = ReviewFormat.text,
) -> None:
    """The access-matrix cells (role × relation × command) two states differ in, each
    widening (someone gains access), narrowing (someone loses it) or neutral; exit 1 on a
    widening no revision acknowledges.

    The default reviews what migrating the database to the model would change. A revision
    acknowledges a widening it brings with a comment:
    `# rlskit: widens member DELETE membership — reason`. Revisions and the model are
    installed in scratch databases that are dropped after; the database is probed in a
    transaction that is rolled back.
    """
    from ..migrations.review import review as review_states

    config = load_config(model=model)
    loaded = load_model(config.model, config.root)
    url = database_or_dev_server(config, database)
    with err.status(f"probing every role × relation × command: {before} → {after}…"):
        outcome = review_states(config, loaded, url, before, after)
    if fmt is ReviewFormat.json:
        typer.echo(_json(outcome))
    elif fmt is ReviewFormat.markdown:
        typer.echo(_markdown(outcome))
    else:
        for change in outcome.changes:
            typer.echo(str(change))
    err.print(f"{outcome.before} → {outcome.after}: {outcome.summary}", highlight=False,
              soft_wrap=True)
    for change in outcome.unacknowledged:
        err.print(f"unacknowledged widening; if intended, add to the revision: "
                  f"{change.acknowledgement}", highlight=False, soft_wrap=True)
    if outcome.unacknowledged:
        raise typer.Exit(1)
