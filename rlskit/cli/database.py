"""``rlskit diff``, ``check``, ``verify``, ``explain`` and ``demo``: the database against the
model."""

from __future__ import annotations

import json
from dataclasses import asdict
from enum import Enum
from pathlib import Path
from typing import Annotated

import psycopg
import typer
from rich.table import Table

from ..config import load_config, load_model
from ..diff import diff_database, drift_sql
from ..errors import ConfigError
from ..generate import DEFAULT_PG_VERSION
from ..urls import libpq_url
from .common import (
    DatabaseOption,
    EnvOption,
    Format,
    ModelOption,
    app,
    database_or_dev_server,
    dev_server_url,
    err,
    handled,
    model_and_database,
    out,
)


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
    baseline: Annotated[Path | None, typer.Option(
        "--baseline", help="A baseline file: without one, record today's findings in it "
        "(exit 0); with one, report its findings as waived and only new ones as findings. "
        "Delete it to record a new one.")] = None,
) -> None:
    """Lint for row-level security mistakes; exit 1 on any unwaived error.

    Lints the live database (every user schema, managed by rlskit or not; the same default
    database as the other commands), or with --model-only the model alone. Each finding
    names its rule (RLS001…), the object, why it matters and the fix. Waive a rule for one
    object in the model: model.waive("RLS007", "public.t", reason=…).
    """
    from ..checks import check_database, check_model, has_errors
    from ..checks.baseline import apply_baseline, write_baseline
    from ..checks.report import as_json, as_sarif, as_table

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
    if baseline is not None and not baseline.exists():
        recorded = write_baseline(baseline, findings)
        err.print(f"{where}: recorded {recorded} finding(s) in {baseline}; later runs with "
                  "--baseline report only new ones", highlight=False)
        return
    gone: list[tuple[str, str]] = []
    if baseline is not None:
        findings, gone = apply_baseline(baseline, findings)
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
    if gone:
        err.print(f"{len(gone)} baseline finding(s) no longer found: "
                  f"{', '.join(f'{rule} {obj}' for rule, obj in gone)}", highlight=False)
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
    from ..verify import verify_database, verify_scratch
    from ..verify.report import as_html, as_json, as_markdown, as_tables

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


@app.command()
@handled
def explain(
    query: Annotated[str, typer.Argument(help="One SELECT, INSERT, UPDATE or DELETE.")],
    role: Annotated[str, typer.Option("--role", help="The model role to run it as.")],
    values: Annotated[list[str] | None, typer.Option(
        "--set", help="A context value, name=value (repeat for each).")] = None,
    analyze: Annotated[bool, typer.Option(
        "--analyze", help="Run the query (its writes rolled back): actual rows and times."
    )] = False,
    fmt: Annotated[Format, typer.Option("--format", help="Output format.")] = Format.text,
    database: DatabaseOption = None, model: ModelOption = None, env: EnvOption = None,
) -> None:
    """Show a query's plan as a role with a context gets it, and what to change; exit 1
    when a hint is found.

    Runs in a transaction that is rolled back, on a connection that may switch to the role
    (an owner or superuser URL). Hints: a page that sorts every row of several tenants
    (page per tenant with rlskit.paging), a context read per row.
    """
    from ..explain import explain as explain_query

    config = load_config(model=model)
    loaded, url = model_and_database(config, env, database)
    context = {}
    for item in values or ():
        name, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--set {item!r}: write name=value")
        context[name.strip()] = value
    with psycopg.connect(url) as conn:
        explained = explain_query(conn, loaded, query, role, context, analyze=analyze)
    if fmt is Format.json:
        typer.echo(json.dumps({"plan": explained.plan,
                               "hints": [asdict(h) for h in explained.hints]}, indent=2))
    else:
        typer.echo(explained.text)
        for hint in explained.hints:
            out.print(f"hint [{hint.id}] {hint.node}: {hint.message}\n  fix: {hint.fix}",
                      highlight=False)
    if explained.hints:
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
    from ..examples.demo import run_demo
    from ..examples.saas import build_model

    admin_url = libpq_url(admin_url) if admin_url else dev_server_url(load_config())
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
