"""DDL for each managed object, composed with psycopg's ``sql`` module.

Identifiers always go through ``sql.Identifier`` (as `Ident`) and values through ``sql.Literal``;
the only raw SQL fragments are keywords chosen here and expressions that `sqltext`
has parsed and deparsed.
"""

from __future__ import annotations

import dataclasses
from functools import singledispatch
from typing import Any

from pglast.stream import maybe_double_quote_name as quote
from psycopg import sql

from . import objects as o
from .access.store import create_store, drop_store
from .keystore import VERIFIER, create_keystore, drop_keystore
from .render import Ident, render
from .sqltext import Privilege

__all__ = ["alter", "alter_policy", "create", "drop", "grant_steps", "policy_delta",
           "privilege_delta", "update"]


def _roles(names: tuple[str, ...]) -> sql.Composable:
    if not names:
        return sql.SQL("PUBLIC")
    return sql.SQL(", ").join(Ident(n) for n in names)


def _dollar_quote(body: str) -> sql.Composable:
    """Dollar-quote `body` with a tag that does not occur in it."""
    tag = "rlskit"
    n = 0
    while f"${tag}$" in body:
        n += 1
        tag = f"rlskit{n}"
    return sql.SQL(f"${tag}$\n{{}}\n${tag}$").format(sql.SQL(body))


@singledispatch
def create(obj: o.DbObject, pg_version: int) -> list[sql.Composable]:
    """Statements that create `obj` on a server of major version `pg_version`."""
    raise TypeError(f"no DDL for {type(obj).__name__}")


@create.register
def _create_schema(obj: o.Schema, pg_version: int) -> list[sql.Composable]:
    return [sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(Ident(obj.name))]


@create.register
def _create_helper_function(obj: o.HelperFunction, pg_version: int) -> list[sql.Composable]:
    if obj.setting is None:
        signature = sql.SQL("{}({})").format(Ident(obj.schema, obj.name), sql.SQL(obj.arguments))
        setting: sql.Composable = sql.SQL("{} || {}").format(
            sql.Literal(obj.settings_prefix + "."), Ident("name")
        )
    else:
        signature = sql.SQL("{}()").format(Ident(obj.schema, obj.name))
        setting = sql.Literal(obj.setting)
    if obj.sealed:  # a value only while the seal verifies for the current role
        read = sql.SQL("{}(CURRENT_USER, {})").format(Ident(obj.schema, VERIFIER), setting)
    else:
        read = sql.SQL("pg_catalog.current_setting({}, true)").format(setting)
    value = sql.SQL("NULLIF({}, '')").format(read)
    if obj.returns != "text":
        value = sql.SQL("CAST({} AS {})").format(value, sql.SQL(obj.returns))
    return [
        sql.SQL(
            "CREATE OR REPLACE FUNCTION {} RETURNS {} LANGUAGE sql STABLE PARALLEL SAFE RETURN {}"
        ).format(signature, sql.SQL(obj.returns), value),
        sql.SQL("COMMENT ON FUNCTION {} IS {}").format(signature, sql.Literal(o.MARKER)),
    ]


@create.register
def _create_context_seal(obj: o.ContextSeal, pg_version: int) -> list[sql.Composable]:
    return create_keystore(obj)


@create.register
def _create_access_store(obj: o.AccessStore, pg_version: int) -> list[sql.Composable]:
    return create_store(obj.schema, obj.settings_prefix, obj.sealed)


@create.register
def _create_role(obj: o.DbRole, pg_version: int) -> list[sql.Composable]:
    attrs = sql.SQL("{} {}").format(
        sql.SQL("LOGIN" if obj.login else "NOLOGIN"),
        sql.SQL("INHERIT" if obj.inherit else "NOINHERIT"),
    )
    create_role = render(sql.SQL("CREATE ROLE {} {}").format(Ident(obj.name), attrs))
    body = sql.SQL(
        "BEGIN\n"
        "  IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = {}) THEN\n"
        "    {};\n"
        "  END IF;\n"
        "END"
    ).format(sql.Literal(obj.name), sql.SQL(create_role))
    # Roles are cluster-wide and outlive a database: create only when missing.
    limit = ([sql.SQL("ALTER ROLE {} CONNECTION LIMIT {}").format(
        Ident(obj.name), sql.Literal(obj.connection_limit))] if obj.connection_limit != -1
        else [])  # an existing role gets its limits too
    return [sql.SQL("DO {}").format(_dollar_quote(body.as_string())), _mark(obj), *limit,
            *_role_settings(obj)]


def _mark(role: o.DbRole) -> sql.Composable:
    """The comment that lets rlskit find a role's grants once the model has dropped it
    (roles are cluster-wide and outlive the model; their grants here are revoked)."""
    return sql.SQL("COMMENT ON ROLE {} IS {}").format(Ident(role.name), sql.Literal(o.MARKER))


def _role_settings(obj: o.DbRole) -> list[sql.Composable]:
    return [sql.SQL("ALTER ROLE {} SET {} = {}").format(Ident(obj.name), Ident(name),
                                                         sql.Literal(value))
            for name, value in obj.settings]


@create.register
def _create_membership(obj: o.Membership, pg_version: int) -> list[sql.Composable]:
    stmt = sql.SQL("GRANT {} TO {}").format(Ident(obj.role), Ident(obj.member))
    if pg_version >= 16:
        stmt = sql.SQL("{} WITH INHERIT {}, SET {}{}").format(
            stmt,
            sql.SQL("TRUE" if obj.inherit else "FALSE"),
            sql.SQL("TRUE" if obj.set else "FALSE"),
            sql.SQL(", ADMIN TRUE" if obj.admin else ""),
        )
    elif obj.admin:
        stmt = sql.SQL("{} WITH ADMIN OPTION").format(stmt)
    return [stmt]


@create.register
def _create_function_grant(obj: o.FunctionGrant, pg_version: int) -> list[sql.Composable]:
    return [sql.SQL("GRANT EXECUTE ON FUNCTION {} TO {}").format(
        Ident(obj.schema, obj.function), Ident(obj.role))]


@create.register
def _create_schema_usage(obj: o.SchemaUsage, pg_version: int) -> list[sql.Composable]:
    return [sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(Ident(obj.schema), Ident(obj.role))]


def _privileges(privileges: tuple[Privilege, ...]) -> sql.Composable:
    return sql.SQL(", ").join(
        sql.SQL("{} ({})").format(sql.SQL(p.name), sql.SQL(", ").join(Ident(c) for c in p.columns))
        if p.columns
        else sql.SQL(p.name)
        for p in privileges
    )


def _grant(obj: o.TableGrant, privileges: tuple[Privilege, ...]) -> sql.Composable:
    return sql.SQL("GRANT {} ON TABLE {} TO {}").format(
        _privileges(privileges), Ident(obj.schema, obj.table), Ident(obj.role))


def _revoke(obj: o.TableGrant, privileges: tuple[Privilege, ...]) -> sql.Composable:
    return sql.SQL("REVOKE {} ON TABLE {} FROM {}").format(
        _privileges(privileges), Ident(obj.schema, obj.table), Ident(obj.role))


@create.register
def _create_table_grant(obj: o.TableGrant, pg_version: int) -> list[sql.Composable]:
    return [_grant(obj, obj.privileges)]


@create.register
def _create_table_owner(obj: o.TableOwner, pg_version: int) -> list[sql.Composable]:
    return [sql.SQL("ALTER TABLE {} OWNER TO {}").format(Ident(obj.schema, obj.table),
                                                         Ident(obj.owner))]


@create.register
def _create_distribution(obj: o.Distribution, pg_version: int) -> list[sql.Composable]:
    table = sql.Literal(f"{quote(obj.schema)}.{quote(obj.table)}")
    if obj.column is None:
        return [sql.SQL("SELECT create_reference_table({})").format(table)]
    colocate: sql.Composable = sql.SQL("")
    if obj.colocate_with is not None:
        colocate = sql.SQL(", colocate_with => {}").format(sql.Literal(obj.colocate_with))
    return [sql.SQL("SELECT create_distributed_table({}, {}{})").format(
        table, sql.Literal(obj.column), colocate)]


@create.register
def _create_row_security(obj: o.RowSecurity, pg_version: int) -> list[sql.Composable]:
    table = Ident(obj.schema, obj.table)
    stmts: list[sql.Composable] = [
        sql.SQL("ALTER TABLE {} ENABLE ROW LEVEL SECURITY").format(table)
    ]
    if obj.force:
        stmts.append(sql.SQL("ALTER TABLE {} FORCE ROW LEVEL SECURITY").format(table))
    return stmts


@create.register
def _create_policy(obj: o.DbPolicy, pg_version: int) -> list[sql.Composable]:
    stmt = sql.SQL("CREATE POLICY {} ON {} AS {} FOR {} TO {}").format(
        Ident(obj.name),
        Ident(obj.schema, obj.table),
        sql.SQL("PERMISSIVE" if obj.permissive else "RESTRICTIVE"),
        sql.SQL(obj.command),
        _roles(obj.roles),
    )
    if obj.using is not None:
        stmt = sql.SQL("{} USING ({})").format(stmt, sql.SQL(obj.using))
    if obj.with_check is not None:
        stmt = sql.SQL("{} WITH CHECK ({})").format(stmt, sql.SQL(obj.with_check))
    return [stmt, sql.SQL("COMMENT ON POLICY {} ON {} IS {}").format(
        Ident(obj.name), Ident(obj.schema, obj.table), sql.Literal(o.MARKER))]


@create.register
def _create_view(obj: o.DbView, pg_version: int) -> list[sql.Composable]:
    return _view(obj, "CREATE")


def _view(obj: o.DbView, verb: str) -> list[sql.Composable]:
    name: sql.Composable = Ident(obj.schema, obj.name)
    if obj.columns:
        name = sql.SQL("{} ({})").format(
            name, sql.SQL(", ").join(Ident(c) for c in obj.columns)
        )
    options = sql.SQL(", ").join(
        sql.SQL("{} = {}").format(Ident(k), sql.SQL(v)) for k, v in obj.options
    )
    return [
        sql.SQL("{} VIEW {} WITH ({}) AS {}").format(sql.SQL(verb), name, options,
                                                    sql.SQL(obj.query)),
        sql.SQL("COMMENT ON VIEW {} IS {}").format(Ident(obj.schema, obj.name),
                                                    sql.Literal(o.MARKER)),
    ]


# -- drop: the exact reverse of create ------------------------------------------------------


@singledispatch
def drop(obj: o.DbObject, pg_version: int) -> list[sql.Composable]:
    """Statements that remove `obj` (the reverse of `create`)."""
    raise TypeError(f"no DDL for {type(obj).__name__}")


@drop.register
def _drop_schema(obj: o.Schema, pg_version: int) -> list[sql.Composable]:
    return [sql.SQL("DROP SCHEMA IF EXISTS {}").format(Ident(obj.name))]


@drop.register
def _drop_helper_function(obj: o.HelperFunction, pg_version: int) -> list[sql.Composable]:
    return [sql.SQL("DROP FUNCTION IF EXISTS {}({})").format(Ident(obj.schema, obj.name),
                                                              sql.SQL(obj.arguments))]


@drop.register
def _drop_context_seal(obj: o.ContextSeal, pg_version: int) -> list[sql.Composable]:
    return drop_keystore(obj)


@drop.register
def _drop_access_store(obj: o.AccessStore, pg_version: int) -> list[sql.Composable]:
    return drop_store(obj.schema)


@drop.register
def _drop_role(obj: o.DbRole, pg_version: int) -> list[sql.Composable]:
    return [sql.SQL("DROP ROLE IF EXISTS {}").format(Ident(obj.name))]


@drop.register
def _drop_membership(obj: o.Membership, pg_version: int) -> list[sql.Composable]:
    return [sql.SQL("REVOKE {} FROM {}").format(Ident(obj.role), Ident(obj.member))]


@drop.register
def _drop_function_grant(obj: o.FunctionGrant, pg_version: int) -> list[sql.Composable]:
    return [sql.SQL("REVOKE EXECUTE ON FUNCTION {} FROM {}").format(
        Ident(obj.schema, obj.function), Ident(obj.role))]


@drop.register
def _drop_schema_usage(obj: o.SchemaUsage, pg_version: int) -> list[sql.Composable]:
    return [sql.SQL("REVOKE USAGE ON SCHEMA {} FROM {}").format(Ident(obj.schema),
                                                                 Ident(obj.role))]


@drop.register
def _drop_table_grant(obj: o.TableGrant, pg_version: int) -> list[sql.Composable]:
    return [_revoke(obj, obj.privileges)]


@drop.register
def _drop_table_owner(obj: o.TableOwner, pg_version: int) -> list[sql.Composable]:
    """Back to whoever runs the migration (the table's creator, as before rlskit)."""
    return [sql.SQL("ALTER TABLE {} OWNER TO CURRENT_USER").format(
        Ident(obj.schema, obj.table))]


@drop.register
def _drop_distribution(obj: o.Distribution, pg_version: int) -> list[sql.Composable]:
    """Back to a plain table on the coordinator, its rows with it. Citus undistributes a
    table together with the tables its foreign keys connect it to (never one alone), so
    a table an earlier drop brought back already is left as it is."""
    table = sql.Literal(f"{quote(obj.schema)}.{quote(obj.table)}")
    return [sql.SQL("SELECT undistribute_table(logicalrelid, cascade_via_foreign_keys => true) "
                    "FROM pg_dist_partition WHERE logicalrelid = {}::regclass").format(table)]


@drop.register
def _drop_row_security(obj: o.RowSecurity, pg_version: int) -> list[sql.Composable]:
    table = Ident(obj.schema, obj.table)
    stmts: list[sql.Composable] = []
    if obj.force:
        stmts.append(sql.SQL("ALTER TABLE {} NO FORCE ROW LEVEL SECURITY").format(table))
    stmts.append(sql.SQL("ALTER TABLE {} DISABLE ROW LEVEL SECURITY").format(table))
    return stmts


@drop.register
def _drop_policy(obj: o.DbPolicy, pg_version: int) -> list[sql.Composable]:
    return [sql.SQL("DROP POLICY {} ON {}").format(Ident(obj.name),
                                                   Ident(obj.schema, obj.table))]


@drop.register
def _drop_view(obj: o.DbView, pg_version: int) -> list[sql.Composable]:
    return [sql.SQL("DROP VIEW {}").format(Ident(obj.schema, obj.name))]


# -- alter: change `old` into `new` in place, or None when it must be dropped and created ---


def alter(old: o.DbObject, new: o.DbObject, pg_version: int) -> list[sql.Composable] | None:
    """Statements turning `old` into `new` (same key), or None if only drop + create will do.

    A grant change revokes, then grants (see `privilege_delta`); run it in one transaction
    and no session sees the moment between.
    """
    if isinstance(new, o.TableGrant) and isinstance(old, o.TableGrant):
        return [(drop if step == "revoke" else create)(grant, pg_version)[0]
                for step, grant in grant_steps(old, new)]
    if isinstance(new, o.DbPolicy) and isinstance(old, o.DbPolicy):
        clauses = policy_delta(old, new)
        return None if clauses is None else [alter_policy(new, **clauses)]
    if isinstance(new, o.DbView) and isinstance(old, o.DbView) and new.columns and \
            new.columns != old.columns:
        # CREATE OR REPLACE VIEW can add columns at the end but never take them away, so
        # a change of columns (which its downgrade would have to undo) drops and creates.
        return None
    if isinstance(new, o.HelperFunction) and isinstance(old, o.HelperFunction) and \
            new.returns != old.returns:
        return None  # CREATE OR REPLACE FUNCTION cannot change the result type
    if isinstance(new, o.Distribution) and isinstance(old, o.Distribution) and \
            None in (new.column, old.column):
        return None  # a reference table becomes distributed (or back) by drop + create
    if update.dispatch(type(new)) is update.registry[object]:
        return None  # no in-place form for this kind
    return update(new, pg_version)


def privilege_delta(old: o.TableGrant, new: o.TableGrant
                    ) -> tuple[tuple[Privilege, ...], tuple[Privilege, ...]]:
    """What turns `old` into `new`: the privileges to revoke, then those to grant, compared
    per (privilege, column) so that an unchanged column keeps its privilege throughout.

    Revoking a table-wide privilege revokes its column privileges too. So a privilege whose
    table-wide form comes or goes while it also has columns (in `old` or `new`) is restated
    whole: revoked as `old` has it, granted as `new` has it. The same rule run from `new`
    to `old` is then the exact reverse (the downgrade).
    """
    before, after = _atoms(old.privileges), _atoms(new.privileges)
    restated = {name for name, column in before ^ after if column is None
                and any(n == name and c is not None for n, c in before | after)}
    revoke = {a for a in before if a not in after or a[0] in restated}
    grant = {a for a in after if a not in before or a[0] in restated}
    return _grouped(old.privileges, revoke), _grouped(new.privileges, grant)


def grant_steps(old: o.TableGrant, new: o.TableGrant
                ) -> list[tuple[str, o.TableGrant]]:
    """``("revoke", …)`` then ``("grant", …)``: the grants that turn `old` into `new`, in
    the order they run (see `privilege_delta`)."""
    revoked, granted = privilege_delta(old, new)
    return [(step, dataclasses.replace(new, privileges=privileges))
            for step, privileges in (("revoke", revoked), ("grant", granted)) if privileges]


def _atoms(privileges: tuple[Privilege, ...]) -> set[tuple[str, str | None]]:
    """(privilege, column) pairs; the column None for the table-wide privilege."""
    return {(p.name, column) for p in privileges for column in (p.columns or (None,))}


def _grouped(privileges: tuple[Privilege, ...], atoms: set[tuple[str, str | None]]
             ) -> tuple[Privilege, ...]:
    """`atoms` as privilege lists, in the order `privileges` declares them: one entry per
    privilege and form (``SELECT (a), SELECT (b)`` -> ``SELECT (a, b)``)."""
    kept: dict[tuple[str, bool], tuple[str, ...]] = {}  # (name, by column) -> columns
    for p in privileges:
        if not p.columns and (p.name, None) in atoms:
            kept.setdefault((p.name, False), ())
        columns = tuple(c for c in p.columns if (p.name, c) in atoms)
        if columns:
            kept[(p.name, True)] = kept.get((p.name, True), ()) + columns
    return tuple(Privilege(name, columns) for (name, _), columns in kept.items())


def policy_delta(old: o.DbPolicy, new: o.DbPolicy) -> dict[str, Any] | None:
    """The clauses (``roles``, ``using``, ``with_check``) of `new` that differ from `old`,
    or None when ALTER POLICY cannot make the change (command, permissive/restrictive, or
    a clause that appears or disappears, which ALTER could not undo)."""
    if (old.command, old.permissive) != (new.command, new.permissive):
        return None
    if (old.using is None) != (new.using is None) or \
            (old.with_check is None) != (new.with_check is None):
        return None
    clauses: dict[str, Any] = {}
    if sorted(new.roles) != sorted(old.roles):
        clauses["roles"] = new.roles
    for clause in ("using", "with_check"):
        if getattr(new, clause) != getattr(old, clause):
            clauses[clause] = getattr(new, clause)
    return clauses


def alter_policy(policy: o.DbPolicy, roles: tuple[str, ...] | None = None,
                 using: str | None = None, with_check: str | None = None) -> sql.Composable:
    """``ALTER POLICY`` of `policy` (by name and table) setting the clauses given."""
    stmt = sql.SQL("ALTER POLICY {} ON {}").format(Ident(policy.name),
                                                  Ident(policy.schema, policy.table))
    if roles is not None:
        stmt = sql.SQL("{} TO {}").format(stmt, _roles(roles))
    if using is not None:
        stmt = sql.SQL("{} USING ({})").format(stmt, sql.SQL(using))
    if with_check is not None:
        stmt = sql.SQL("{} WITH CHECK ({})").format(stmt, sql.SQL(with_check))
    return stmt


# -- update: restate an object in place, whatever state it was in -------------------------


@singledispatch
def update(obj: o.DbObject, pg_version: int) -> list[sql.Composable]:
    """Statements that put an existing `obj` into the state given, in place."""
    raise TypeError(f"{type(obj).__name__} cannot be changed in place")


@update.register
def _update_role(obj: o.DbRole, pg_version: int) -> list[sql.Composable]:
    return [sql.SQL("ALTER ROLE {} WITH {} {} {} CONNECTION LIMIT {}").format(
        Ident(obj.name), sql.SQL("LOGIN" if obj.login else "NOLOGIN"),
        sql.SQL("INHERIT" if obj.inherit else "NOINHERIT"),
        sql.SQL("BYPASSRLS" if obj.bypassrls else "NOBYPASSRLS"),
        sql.Literal(obj.connection_limit)),
        sql.SQL("ALTER ROLE {} RESET ALL").format(Ident(obj.name)), _mark(obj),
        *_role_settings(obj)]


@update.register
def _update_distribution(obj: o.Distribution, pg_version: int) -> list[sql.Composable]:
    """Shard by another column (Citus moves the rows)."""
    if obj.column is None:
        raise ValueError("a reference table has no distribution column to change")
    return [sql.SQL("SELECT alter_distributed_table({}, distribution_column => {})").format(
        sql.Literal(f"{quote(obj.schema)}.{quote(obj.table)}"), sql.Literal(obj.column))]


@update.register
def _update_row_security(obj: o.RowSecurity, pg_version: int) -> list[sql.Composable]:
    return [sql.SQL("ALTER TABLE {} {} ROW LEVEL SECURITY").format(
        Ident(obj.schema, obj.table), sql.SQL("FORCE" if obj.force else "NO FORCE"))]


@update.register
def _update_view(obj: o.DbView, pg_version: int) -> list[sql.Composable]:
    return _view(obj, "CREATE OR REPLACE")


@update.register
def _update_membership(obj: o.Membership, pg_version: int) -> list[sql.Composable]:
    """GRANT with the options; GRANT can add the admin option but only REVOKE removes it."""
    revoke = [] if obj.admin else [sql.SQL("REVOKE ADMIN OPTION FOR {} FROM {}").format(
        Ident(obj.role), Ident(obj.member))]
    return [*create(obj, pg_version), *revoke]


@update.register(o.HelperFunction)
@update.register(o.AccessStore)
@update.register(o.ContextSeal)
@update.register(o.TableOwner)
def _update_by_replacing(obj: o.DbObject, pg_version: int) -> list[sql.Composable]:
    return create(obj, pg_version)  # CREATE OR REPLACE
