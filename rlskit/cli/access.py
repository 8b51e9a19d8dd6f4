"""``rlskit access …`` and ``rlskit connect``: who holds a data product's roles.

Thin over `rlskit.access`: the database checks every change (the session user must
administer the role) and keeps the audit trail; these commands pick the environment,
print tables or JSON, and turn refusals into one sentence with exit code 2.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from typing import Annotated

import psycopg
import typer
from psycopg.conninfo import conninfo_to_dict
from rich.table import Table

from .. import access
from ..config import load_config
from ..errors import ConfigError
from ..server import embedded_bin_dir
from .common import (
    DatabaseOption,
    EnvOption,
    Format,
    ModelOption,
    app,
    handled,
    model_and_database,
    model_and_database_of,
    out,
    say,
)

access_app = typer.Typer(rich_markup_mode=None,
    help="Who holds a data product's roles: grants to users, groups and attribute rules, "
         "kept as data in the database with an audit trail.", no_args_is_help=True)
app.add_typer(access_app, name="access")

UserOption = Annotated[str | None, typer.Option("--user", help="A user id (the token's "
                                                "user_id) or a database login.")]
GroupOption = Annotated[str | None, typer.Option("--group", help="A group in the token's "
                                                 "groups claim.")]
AttributeOption = Annotated[str | None, typer.Option(
    "--attribute", help="An attribute rule, name=value over the model's context "
                        "(e.g. department=Finance).")]
ReasonOption = Annotated[str, typer.Option("--reason", help="Why (kept in the audit trail).")]


def _change_command(verb: str, doc: str) -> None:
    """Register ``rlskit access grant`` or ``revoke``: the same arguments, one verb."""

    @access_app.command(verb, help=doc)
    @handled
    def change(
        product: Annotated[str, typer.Argument(help="The data product.")],
        role: Annotated[str, typer.Argument(help="analyst, engineer or owner.")],
        reason: ReasonOption,
        user: UserOption = None, group: GroupOption = None, attribute: AttributeOption = None,
        database: DatabaseOption = None, model: ModelOption = None, env: EnvOption = None,
    ) -> None:
        loaded, url = model_and_database_of(database, model, env)
        who = access.grantee(loaded, user=user, group=group, attribute=attribute)
        target = access.product_role(loaded, product, role)
        with psycopg.connect(url) as conn:
            if verb == "revoke":
                access.revoke(conn, loaded, product, role, who, reason)
                say(f"revoked {target} from {who} (from its next transaction)")
            elif access.grant(conn, loaded, product, role, who, reason):
                say(f"granted {target} to {who}")
            else:
                say(f"{who} already holds {target}; nothing changed")


_change_command("grant", """Give a product role to a user, a group or an attribute rule.

You need ADMIN on the role (the product owner has it); the database checks. The grant
counts from the caller's next transaction.""")
_change_command("revoke", "Take a product role back; the next transaction of its holders "
                          "no longer has it.")


@access_app.command("list")
@handled
def list_command(
    product: Annotated[str | None, typer.Argument(help="One data product (default: all).")
                       ] = None,
    history: Annotated[bool, typer.Option(help="The audit trail instead: every grant and "
                                               "revoke of the roles you administer.")] = False,
    fmt: Annotated[Format, typer.Option("--format", help="Output format.")] = Format.text,
    database: DatabaseOption = None, model: ModelOption = None, env: EnvOption = None,
) -> None:
    """List who holds each product role (--history: who changed it, when and why)."""
    loaded, url = model_and_database_of(database, model, env)
    with psycopg.connect(url) as conn:
        if history:
            rows = [[str(at), actor, action, role, str(who), reason]
                    for at, actor, action, role, who, reason in access.history(conn, loaded,
                                                                                 product)]
            columns = ["at", "actor", "action", "role", "grantee", "reason"]
        else:
            rows = [[g.role, str(g.grantee), g.granted_by, str(g.granted_at), g.reason]
                    for g in access.list_grants(conn, loaded, product)]
            columns = ["role", "grantee", "granted_by", "granted_at", "reason"]
    if fmt is Format.json:
        typer.echo(json.dumps([dict(zip(columns, row, strict=True)) for row in rows], indent=2))
        return
    table = Table(*columns)
    for row in rows:
        table.add_row(*row)
    out.print(table)


@access_app.command("promote")
@handled
def promote_command(
    source: Annotated[str, typer.Option("--from", help="The environment to copy grants from.")],
    target: Annotated[str, typer.Option("--to", help="The environment to copy them into.")],
    apply: Annotated[bool, typer.Option("--apply", help="Make the change (default: show "
                                                        "what it would be).")] = False,
    fmt: Annotated[Format, typer.Option("--format", help="Output format.")] = Format.text,
    model: ModelOption = None,
) -> None:
    """Copy one environment's grants into another (dev → prod); a dry run unless --apply.

    Role names are translated to the target's prefix; grants only the target has are
    kept and listed. Applied in one transaction: all or nothing.
    """
    config = load_config(model=model)
    from_model, from_url = model_and_database(config, source, None)
    to_model, to_url = model_and_database(config, target, None)
    with psycopg.connect(from_url) as conn:
        grants = access.list_grants(conn, from_model)
    with psycopg.connect(to_url) as conn:
        plan = access.plan_promotion(grants, from_model, access.list_grants(conn, to_model),
                                     to_model)
        if apply:
            access.promote(conn, to_model, plan, source)
    if fmt is Format.json:
        typer.echo(json.dumps({
            "applied": apply,
            "add": [{"role": g.role, "grantee": str(g.grantee), "reason": g.reason}
                    for g in plan.add],
            "only_in_target": [{"role": g.role, "grantee": str(g.grantee)}
                               for g in plan.only_in_target]}, indent=2))
    else:
        for g in plan.add:
            say(f"+ {g.role} ← {g.grantee}  ({g.reason})", out)
        for g in plan.only_in_target:
            say(f"= {g.role} ← {g.grantee}  (only in {target}; kept)", out)
    verb = "copied" if apply else "would copy (dry run; --apply to copy)"
    say(f"{len(plan.add)} grant(s) {verb} from {source} to {target}")


_LIBPQ_ENV = {"host": "PGHOST", "hostaddr": "PGHOSTADDR", "port": "PGPORT", "user": "PGUSER",
              "password": "PGPASSWORD", "dbname": "PGDATABASE", "passfile": "PGPASSFILE",
              "sslmode": "PGSSLMODE", "sslrootcert": "PGSSLROOTCERT", "sslcert": "PGSSLCERT",
              "sslkey": "PGSSLKEY", "application_name": "PGAPPNAME",
              "connect_timeout": "PGCONNECT_TIMEOUT", "options": "PGOPTIONS"}


def _libpq_environment(url: str) -> dict[str, str]:
    """A connection string as libpq's environment variables (so psql's argv holds none
    of it); a parameter libpq has no variable for is refused."""
    params = conninfo_to_dict(url)
    unknown = sorted(set(params) - set(_LIBPQ_ENV))
    if unknown:
        raise ConfigError(f"rlskit connect cannot pass {', '.join(unknown)} to psql; set it "
                          "in ~/.pg_service.conf or the environment instead")
    return {_LIBPQ_ENV[k]: str(v) for k, v in params.items() if v is not None}


def _pgoptions(role: str) -> str:
    """``-c role=<role>`` as libpq ``options``; a name with a control character (which
    could end the option and start another) is refused."""
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in role):
        raise ConfigError(f"role name {role!r} has a control character")
    return "-c role=" + role.replace("\\", "\\\\").replace(" ", "\\ ")


@app.command("connect", context_settings={"ignore_unknown_options": True})
@handled
def connect_command(
    role: Annotated[str, typer.Option("--role", help="The product role, e.g. "
                                                     "sales_analytics_analyst.")],
    psql_args: Annotated[list[str] | None, typer.Argument(help="Passed on to psql.")] = None,
    check_only: Annotated[bool, typer.Option("--check", help="Only say whether you may.")
                          ] = False,
    database: DatabaseOption = None, model: ModelOption = None, env: EnvOption = None,
) -> None:
    """Open psql as your own login in a data product role, once it is clear you hold it.

    If you do not, it says which grant is missing and who owns the product. The
    connection's details (password included) reach psql through its environment, never
    its command line.
    """
    loaded, url = model_and_database_of(database, model, env)
    with psycopg.connect(url) as conn:
        target = access.check(conn, loaded, role)
    say(f"you may act as {target}")
    if check_only:
        return
    embedded = embedded_bin_dir() / "psql"
    psql = shutil.which("psql") or (str(embedded) if embedded.exists() else None)
    if psql is None:
        raise ConfigError("psql is not installed; use rlskit.connect(...) from Python")
    libpq = _libpq_environment(url)
    options = " ".join(filter(None, (libpq.get("PGOPTIONS"), _pgoptions(target))))
    env_vars = {**os.environ, **libpq, "PGOPTIONS": options}
    raise typer.Exit(subprocess.run([psql, *(psql_args or [])], env=env_vars).returncode)
