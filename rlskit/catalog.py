"""Read the live state of everything a model manages, in bulk, as `objects` values.

Scope: the model's roles (by name), memberships among them, their privileges on the
model's schemas, tables and views, row security of the model's tables, policies on those
tables that rlskit created (comment marker) or the model names, and likewise views and
helper functions. Anything else is never read, so it is never reported or dropped.
"""

from __future__ import annotations

import psycopg

from . import objects as o
from .access.store import FUNCTIONS, SEALED_SUFFIX, STORE_COMMENT
from .keystore import EVERY_NODE, KEY_STATUS, KEY_TABLE, KEYSTORE_COMMENT, VERIFIER
from .model import TABLE_PRIVILEGES, Model
from .rows import one
from .sqltext import Privilege, setting_read

__all__ = ["POLICY_COMMANDS", "has_citus", "read_catalog"]

# pg_policy.polcmd -> the command as a policy names it
POLICY_COMMANDS = {"r": "SELECT", "a": "INSERT", "w": "UPDATE", "d": "DELETE", "*": "ALL"}

_ROLES = """
SELECT r.rolname, r.rolcanlogin, r.rolinherit, r.rolbypassrls,
       ARRAY(SELECT c FROM pg_catalog.pg_db_role_setting s, unnest(s.setconfig) c
             WHERE s.setrole = r.oid AND s.setdatabase = 0 ORDER BY c),
       r.rolconnlimit
FROM pg_catalog.pg_roles r WHERE r.rolname = ANY(%(model_roles)s) ORDER BY r.rolname"""

# Roles rlskit created (the marker) under the model's prefix: the model may have dropped
# them, but their grants and memberships here are still rlskit's to revoke.
_MARKED_ROLES = """
SELECT r.rolname FROM pg_catalog.pg_roles r
WHERE pg_catalog.shobj_description(r.oid, 'pg_authid') = %(marker)s
  AND starts_with(r.rolname, %(prefix)s) ORDER BY 1"""

# Membership options (INHERIT, SET) exist from PostgreSQL 16; before, report them as true.
_MEMBERSHIPS = """
SELECT r.rolname, m.rolname, {options}, a.admin_option
FROM pg_catalog.pg_auth_members a
JOIN pg_catalog.pg_roles r ON r.oid = a.roleid
JOIN pg_catalog.pg_roles m ON m.oid = a.member
WHERE r.rolname = ANY(%(roles)s) AND m.rolname = ANY(%(roles)s)
  AND (r.rolname = ANY(%(model_roles)s) OR m.rolname = ANY(%(model_roles)s))
ORDER BY 1, 2"""

_USAGE = """
SELECT n.nspname, g.rolname
FROM pg_catalog.pg_namespace n, pg_catalog.aclexplode(n.nspacl) acl
JOIN pg_catalog.pg_roles g ON g.oid = acl.grantee
WHERE n.nspname = ANY(%(schemas)s) AND acl.privilege_type = 'USAGE'
  AND g.rolname = ANY(%(roles)s)
ORDER BY 1, 2"""

_RELATIONS = """
SELECT c.oid, n.nspname, c.relname, c.relkind, c.relrowsecurity, c.relforcerowsecurity,
       pg_catalog.obj_description(c.oid, 'pg_class') = %(marker)s AS marked,
       pg_catalog.pg_get_userbyid(c.relowner)
FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = ANY(%(schemas)s) AND c.relkind IN ('r', 'p', 'v')"""

_TABLE_GRANTS = """
SELECT n.nspname, c.relname, g.rolname, acl.privilege_type, NULL::text
FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace,
     pg_catalog.aclexplode(c.relacl) acl JOIN pg_catalog.pg_roles g ON g.oid = acl.grantee
WHERE c.oid = ANY(%(oids)s) AND g.rolname = ANY(%(roles)s) AND acl.grantee <> c.relowner
UNION ALL
SELECT n.nspname, c.relname, g.rolname, acl.privilege_type, a.attname
FROM pg_catalog.pg_attribute a
JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace,
     pg_catalog.aclexplode(a.attacl) acl JOIN pg_catalog.pg_roles g ON g.oid = acl.grantee
WHERE c.oid = ANY(%(oids)s) AND g.rolname = ANY(%(roles)s) AND a.attnum > 0
  AND NOT a.attisdropped AND acl.grantee <> c.relowner
ORDER BY 1, 2, 3, 4, 5"""

_POLICIES = """
SELECT n.nspname, c.relname, p.polname, p.polpermissive, p.polcmd,
       ARRAY(SELECT r.rolname FROM pg_catalog.pg_roles r WHERE r.oid = ANY(p.polroles)
             ORDER BY 1),
       pg_catalog.pg_get_expr(p.polqual, p.polrelid),
       pg_catalog.pg_get_expr(p.polwithcheck, p.polrelid),
       pg_catalog.obj_description(p.oid, 'pg_policy') = %(marker)s AS marked
FROM pg_catalog.pg_policy p
JOIN pg_catalog.pg_class c ON c.oid = p.polrelid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.oid = ANY(%(oids)s)
   OR (n.nspname = ANY(%(schemas)s)  -- made for a table the model no longer declares
       AND pg_catalog.obj_description(p.oid, 'pg_policy') = %(marker)s)
ORDER BY 1, 2, 3"""

_VIEWS = """
SELECT c.oid, pg_catalog.pg_get_viewdef(c.oid, true),
       ARRAY(SELECT a.attname FROM pg_catalog.pg_attribute a WHERE a.attrelid = c.oid
             AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum),
       COALESCE(c.reloptions, '{}')
FROM pg_catalog.pg_class c WHERE c.oid = ANY(%(oids)s)"""

_FUNCTIONS = """
SELECT n.nspname, p.proname, pg_catalog.pg_get_function_result(p.oid),
       pg_catalog.pg_get_function_identity_arguments(p.oid),
       pg_catalog.pg_get_functiondef(p.oid)
FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname = %(helpers)s
  AND (p.proname = ANY(%(helper_names)s)
       OR pg_catalog.obj_description(p.oid, 'pg_proc') = %(marker)s)
ORDER BY 2"""


_CONTEXT_SEAL = """
SELECT pg_catalog.obj_description(c.oid, 'pg_class'), pg_catalog.pg_get_userbyid(c.relowner),
       (SELECT p.prosrc FROM pg_catalog.pg_proc p
        WHERE p.pronamespace = c.relnamespace AND p.proname = %(verifier)s)
FROM pg_catalog.pg_class c
WHERE c.oid = pg_catalog.to_regclass(pg_catalog.format('%%I.%%I', %(helpers)s::text,
                                                       %(key_table)s::text))"""

_FUNCTION_GRANTS = """
SELECT n.nspname, p.proname, g.rolname
FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace,
     pg_catalog.aclexplode(p.proacl) acl JOIN pg_catalog.pg_roles g ON g.oid = acl.grantee
WHERE n.nspname = %(helpers)s AND p.proname = ANY(%(functions)s)
  AND acl.privilege_type = 'EXECUTE' AND g.rolname = ANY(%(roles)s)
ORDER BY 1, 2, 3"""

_STORE_FUNCTIONS = """
SELECT DISTINCT p.proname FROM pg_catalog.pg_proc p
JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname = %(helpers)s AND p.proname = ANY(%(functions)s)"""

_ACCESS_STORE = """
SELECT pg_catalog.obj_description(
    pg_catalog.to_regclass(pg_catalog.format('%%I.access_grant', %(helpers)s::text)), 'pg_class')"""


def privilege_key(priv: Privilege) -> tuple[int, tuple[str, ...]]:
    """Canonical order of privileges: as in TABLE_PRIVILEGES, table-wide before columns."""
    return TABLE_PRIVILEGES.index(priv.name), priv.columns


def has_citus(conn: psycopg.Connection) -> bool:
    """Does the database `conn` is connected to have the Citus extension?"""
    return conn.execute("SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'citus'"
                        ).fetchone() is not None

# partmethod 'h': hash-distributed; 'n' with replication model 't': a reference table
# (a Citus local table is 'n' too, with model 's': not one rlskit makes)
_DISTRIBUTIONS = """
SELECT n.nspname, c.relname,
       CASE WHEN p.partmethod = 'h'
            THEN pg_catalog.column_to_column_name(p.logicalrelid, p.partkey) END
FROM pg_dist_partition p
JOIN pg_catalog.pg_class c ON c.oid = p.logicalrelid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.oid = ANY(%(oids)s) AND (p.partmethod = 'h' OR p.repmodel = 't')
ORDER BY 1, 2"""


def _distributions(conn: psycopg.Connection, oids: list[int]) -> list[o.Distribution]:
    """The model's tables that Citus distributes, when the database has Citus."""
    if not has_citus(conn):
        return []
    return [o.Distribution(*row) for row in conn.execute(_DISTRIBUTIONS, {"oids": oids})]


def _grants(rows: list[tuple]) -> list[o.TableGrant]:
    grouped: dict[tuple[str, str, str], dict[str, list[str]]] = {}
    for schema, table, role, privilege, column in rows:
        cols = grouped.setdefault((schema, table, role), {}).setdefault(privilege, [])
        if column is not None:
            cols.append(column)
        elif "*" not in cols:
            cols.insert(0, "*")
    out = []
    for (schema, table, role), privs in grouped.items():
        items = []
        for name, cols in privs.items():
            if "*" in cols:
                items.append(Privilege(name))
                cols = [c for c in cols if c != "*"]
            if cols:
                items.append(Privilege(name, tuple(sorted(cols))))
        out.append(o.TableGrant(schema, table, role, tuple(sorted(items, key=privilege_key))))
    return out


def _context_seal(conn: psycopg.Connection, model: Model) -> list[o.ContextSeal]:
    row = conn.execute(_CONTEXT_SEAL, {"helpers": model.helpers_schema, "key_table": KEY_TABLE,
                                       "verifier": VERIFIER}).fetchone()
    if row is None or row[0] not in (KEYSTORE_COMMENT, KEYSTORE_COMMENT + EVERY_NODE):
        return []
    comment, owner, source = row
    return [o.ContextSeal(model.helpers_schema, owner, definition=source or "",
                          citus=comment.endswith(EVERY_NODE))]


def read_catalog(conn: psycopg.Connection, model: Model) -> list[o.DbObject]:
    """Everything of `model`'s that exists in the database `conn` is connected to."""
    version = conn.info.server_version // 10000
    roles = [model.role_name(r) for r in model.roles.values()]
    if model.owner_name is not None:
        roles.append(model.owner_name)
    schemas = sorted({model.helpers_schema} | {s for s, _ in model.tables}
                     | {s for s, _ in model.views} | {s for s, _ in model.distributions})
    dropped = [name for (name,) in conn.execute(
        _MARKED_ROLES, {"marker": o.MARKER, "prefix": model.role_prefix}) if name not in roles]
    params = {"roles": roles + dropped, "model_roles": roles, "schemas": schemas,
              "marker": o.MARKER,
              "helpers": model.helpers_schema, "helper_names": [*model.claims, "claim"],
              "functions": [VERIFIER, KEY_STATUS, *FUNCTIONS]}
    out: list[o.DbObject] = []

    if conn.execute("SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = %(helpers)s",
                    params).fetchone():
        out.append(o.Schema(model.helpers_schema))
    out += _context_seal(conn, model)
    for schema, name, returns, args, definition in conn.execute(_FUNCTIONS, params):
        setting, prefix, sealed = setting_read(definition) or (None, "", False)
        out.append(o.HelperFunction(schema, name, returns, setting, prefix,
                                    definition=definition, arguments=args, sealed=sealed))
    (comment,) = one(conn.execute(_ACCESS_STORE, params))
    if comment is not None and comment.startswith(STORE_COMMENT):
        prefix = comment[len(STORE_COMMENT):]
        sealed = prefix.endswith(SEALED_SUFFIX)
        present = conn.execute(_STORE_FUNCTIONS, {**params, "functions": list(FUNCTIONS)})
        out.append(o.AccessStore(model.helpers_schema, prefix.removesuffix(SEALED_SUFFIX),
                                 sealed, functions=tuple(sorted(n for (n,) in present))))
    out += [o.DbRole(name, login, inherit, bypass,
                   tuple(sorted(tuple(c.split("=", 1)) for c in settings)), limit)
            for name, login, inherit, bypass, settings, limit in conn.execute(_ROLES, params)]
    options = "a.inherit_option, a.set_option" if version >= 16 else "true, true"
    out += [o.Membership(*row)
            for row in conn.execute(_MEMBERSHIPS.format(options=options), params)]
    out += [o.SchemaUsage(*row) for row in conn.execute(_USAGE, params)]
    out += [o.FunctionGrant(*row) for row in conn.execute(_FUNCTION_GRANTS, params)]

    relations = conn.execute(_RELATIONS, params).fetchall()
    tables = {(s, n): oid for oid, s, n, kind, *_ in relations
              if kind in "rp" and (s, n) in model.tables}
    views = {(s, n): oid for oid, s, n, kind, _, _, marked, _ in relations
             if kind == "v" and ((s, n) in model.views or marked)}
    params["oids"] = list(tables.values()) + list(views.values())
    out += _grants(conn.execute(_TABLE_GRANTS, params).fetchall())
    if model.owner_name is not None:  # a table owned by anyone else is to be given to it
        out += [o.TableOwner(s, n, owner) for _, s, n, _, _, _, _, owner in relations
                if (s, n) in tables and owner == model.owner_name]
    if model.citus:  # a Citus model manages the distribution of all its tables
        out += _distributions(conn, [oid for oid, s, n, kind, *_ in relations if kind in "rp"
                                     and ((s, n) in model.distributions or (s, n) in tables)])
    out += [o.RowSecurity(s, n, force) for _, s, n, kind, rls, force, _, _ in relations
            if (s, n) in tables and rls]
    declared = {(t.schema, t.name, p.name) for t in model.tables.values() for p in t.policies}
    for schema, table, name, permissive, cmd, pol_roles, using, check, marked in conn.execute(
            _POLICIES, params):
        if marked or (schema, table, name) in declared:
            out.append(o.DbPolicy(schema, table, name, permissive, POLICY_COMMANDS[cmd],
                                tuple(pol_roles), using, check))
    view_rows = {oid: rest for oid, *rest in conn.execute(_VIEWS, {"oids": list(views.values())})}
    for (schema, name), oid in views.items():
        query, columns, options = view_rows[oid]
        opts = tuple(tuple(opt.split("=", 1)) for opt in options)
        out.append(o.DbView(schema, name, query, tuple(columns), opts))
    return out
