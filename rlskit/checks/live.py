"""Read `Facts` from a live database: every user schema, not only what the model manages."""

from __future__ import annotations

import psycopg

from .. import objects as o
from ..catalog import POLICY_COMMANDS, has_citus
from ..model import Model
from .facts import PUBLIC, Facts, FunctionFacts, Grant, Relation, RoleFacts, Scope, SessionDefault

__all__ = ["read_facts"]

_USER_SCHEMAS = """n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\\_toast%%' AND n.nspname NOT LIKE 'pg\\_temp\\_%%'"""

_RELATIONS = f"""
SELECT n.nspname, c.relname, c.relkind, pg_catalog.pg_get_userbyid(c.relowner),
       c.relrowsecurity, c.relforcerowsecurity,
       ARRAY(SELECT a.attname::text FROM pg_catalog.pg_attribute a
             WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped),
       ARRAY(SELECT a.attname::text FROM pg_catalog.pg_index i
             JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid
                                           AND a.attnum = i.indkey[0]
             WHERE i.indrelid = c.oid),
       (SELECT pn.nspname || '.' || p.relname FROM pg_catalog.pg_inherits h
        JOIN pg_catalog.pg_class p ON p.oid = h.inhparent
        JOIN pg_catalog.pg_namespace pn ON pn.oid = p.relnamespace
        WHERE h.inhrelid = c.oid AND c.relispartition),
       COALESCE(c.reloptions, '{{}}'),
       ARRAY(SELECT DISTINCT rn.nspname || '.' || r.relname
             FROM pg_catalog.pg_rewrite w
             JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_rewrite'::regclass
                                        AND d.objid = w.oid
                                        AND d.refclassid = 'pg_catalog.pg_class'::regclass
             JOIN pg_catalog.pg_class r ON r.oid = d.refobjid AND r.oid <> c.oid
             JOIN pg_catalog.pg_namespace rn ON rn.oid = r.relnamespace
             WHERE w.ev_class = c.oid AND c.relkind IN ('v', 'm')),
       ARRAY(SELECT a.attname::text FROM pg_catalog.pg_attribute a
             WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
               AND NOT a.attnotnull),
       ARRAY(SELECT pg_catalog.array_to_string(ARRAY(
                      SELECT a.attname FROM unnest(i.indkey) WITH ORDINALITY u(num, pos)
                      JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid
                                                    AND a.attnum = u.num
                      ORDER BY u.pos), chr(31))
             FROM pg_catalog.pg_index i
             WHERE i.indrelid = c.oid AND i.indisunique AND NOT i.indisprimary
             ORDER BY 1)
FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND {_USER_SCHEMAS}"""

_KINDS = {"v": "view", "m": "materialized view", "f": "foreign table"}  # else "table"

_GRANTS = f"""
SELECT n.nspname || '.' || c.relname, acl.grantee, acl.privilege_type, NULL::text
FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace,
     pg_catalog.aclexplode(c.relacl) acl
WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND {_USER_SCHEMAS}
  AND acl.grantee <> c.relowner
UNION ALL
SELECT n.nspname || '.' || c.relname, acl.grantee, acl.privilege_type, a.attname::text
FROM pg_catalog.pg_attribute a
JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace,
     pg_catalog.aclexplode(a.attacl) acl
WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND {_USER_SCHEMAS} AND a.attnum > 0
  AND NOT a.attisdropped"""

_POLICIES = f"""
SELECT n.nspname, c.relname, p.polname, p.polpermissive, p.polcmd,
       ARRAY(SELECT r.rolname::text FROM pg_catalog.pg_roles r
             WHERE r.oid = ANY(p.polroles) ORDER BY 1),
       pg_catalog.pg_get_expr(p.polqual, p.polrelid),
       pg_catalog.pg_get_expr(p.polwithcheck, p.polrelid)
FROM pg_catalog.pg_policy p
JOIN pg_catalog.pg_class c ON c.oid = p.polrelid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE {_USER_SCHEMAS}
ORDER BY 1, 2, 3"""

_ROLES = ("SELECT r.oid, r.rolname, r.rolsuper, r.rolbypassrls, r.rolcreaterole, r.rolcanlogin, "
          "(SELECT count(*) FROM pg_catalog.pg_auth_members m WHERE m.roleid = r.oid)::int "
          "FROM pg_catalog.pg_roles r")

# Who may use whose privileges (USAGE: inherited) and become whom (MEMBER), for the roles
# that hold grants or belong to the application.
_MEMBERSHIP = """
SELECT m.rolname, r.rolname, pg_catalog.pg_has_role(m.oid, r.oid, 'USAGE')
FROM pg_catalog.pg_roles m, pg_catalog.pg_roles r
WHERE m.oid = ANY(%s) AND pg_catalog.pg_has_role(m.oid, r.oid, 'MEMBER')"""

_FUNCTIONS = f"""
SELECT n.nspname, p.proname, pg_catalog.pg_get_function_identity_arguments(p.oid),
       p.prosecdef,
       EXISTS (SELECT 1 FROM unnest(p.proconfig) s WHERE s LIKE 'search\\_path=%%'),
       CASE WHEN n.nspname = %s AND p.prokind = 'f' THEN pg_catalog.pg_get_functiondef(p.oid)
       END,
       p.proacl IS NULL OR EXISTS (SELECT 1 FROM pg_catalog.aclexplode(p.proacl) a
                                   WHERE a.grantee = 0 AND a.privilege_type = 'EXECUTE'),
       (SELECT substr(s, 13) FROM unnest(p.proconfig) s WHERE s LIKE 'search\\_path=%%'),
       p.proleakproof,
       ARRAY(SELECT r.rolname::text FROM pg_catalog.pg_roles r
             WHERE r.rolname = ANY(%s)
               AND pg_catalog.has_function_privilege(r.oid, p.oid, 'EXECUTE') ORDER BY 1)
FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
WHERE {_USER_SCHEMAS}
  AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                  WHERE d.classid = 'pg_catalog.pg_proc'::regclass AND d.objid = p.oid
                    AND d.deptype = 'e')"""

_DEFAULTS = """
SELECT r.rolname, d.datname, s.setting
FROM pg_catalog.pg_db_role_setting rs
LEFT JOIN pg_catalog.pg_roles r ON r.oid = rs.setrole
LEFT JOIN pg_catalog.pg_database d ON d.oid = rs.setdatabase,
     unnest(rs.setconfig) s(setting)
WHERE s.setting LIKE %s
  AND (rs.setrole = 0 OR r.rolname = ANY(%s))
  AND (rs.setdatabase = 0 OR d.datname = pg_catalog.current_database())"""

_PUBLIC_WRITABLE = """
SELECT n.nspname FROM pg_catalog.pg_namespace n
WHERE pg_catalog.has_schema_privilege('public', n.oid, 'CREATE')"""

_EXPOSED = f"""
SELECT n.nspname FROM pg_catalog.pg_namespace n
WHERE {_USER_SCHEMAS}
  AND (pg_catalog.has_schema_privilege('public', n.oid, 'USAGE')
       OR EXISTS (SELECT 1 FROM pg_catalog.pg_roles r
                  WHERE r.rolname = ANY(%s)
                    AND pg_catalog.has_schema_privilege(r.oid, n.oid, 'USAGE')))"""

# Serial columns (not identity ones) need USAGE on their sequence for INSERT to work.
_BLOCKED_INSERTS = f"""
SELECT n.nspname || '.' || c.relname, g.rolname, s.seq
FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0
                               AND NOT a.attisdropped AND a.attidentity = ''
CROSS JOIN LATERAL (SELECT pg_catalog.pg_get_serial_sequence(
    pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(c.relname),
    a.attname) AS seq) s
JOIN pg_catalog.pg_roles g ON g.rolname = ANY(%s)
WHERE c.relkind IN ('r', 'p') AND {_USER_SCHEMAS} AND s.seq IS NOT NULL
  AND pg_catalog.has_table_privilege(g.oid, c.oid, 'INSERT')
  AND NOT pg_catalog.has_sequence_privilege(g.oid, s.seq, 'USAGE')
ORDER BY 1, 2"""


_FOREIGN_KEYS = f"""
SELECT n.nspname || '.' || c.relname, a.attname::text,
       fn.nspname || '.' || f.relname
FROM pg_catalog.pg_constraint k
JOIN pg_catalog.pg_class c ON c.oid = k.conrelid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
JOIN pg_catalog.pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = k.conkey[1]
JOIN pg_catalog.pg_class f ON f.oid = k.confrelid
JOIN pg_catalog.pg_namespace fn ON fn.oid = f.relnamespace
WHERE k.contype = 'f' AND {_USER_SCHEMAS}
ORDER BY 1, 2"""

# A Citus table's policies as each shard holds them, beside the table's own
_POLICY_SUMMARY = ("SELECT coalesce(string_agg(polname || ':' || polpermissive::text || ':' "
                   "|| polcmd::text, ',' ORDER BY polname), '') FROM pg_catalog.pg_policy "
                   "WHERE polrelid = {}::regclass")
_SHARD_POLICIES = """
SELECT p.logicalrelid::regclass::text, s.shardid::text, s.result, ({table})
FROM pg_dist_partition p,
     LATERAL run_command_on_placements(p.logicalrelid, %s) s
WHERE s.success
ORDER BY 1, 2"""


def _shard_policies(conn: psycopg.Connection) -> list[tuple[str, str, str, str]]:
    """(table, shard, the shard's policies, the table's) for every placement of a Citus
    table, each as "name:permissive:command,…"."""
    table = _POLICY_SUMMARY.format("p.logicalrelid").replace("%", "%%")
    per_shard = _POLICY_SUMMARY.format("'%s'")  # run_command_on_placements names the shard
    return [tuple(row) for row in conn.execute(_SHARD_POLICIES.format(table=table),
                                               [per_shard])]


_UNDISTRIBUTED_HELPERS = """
SELECT p.oid::regprocedure::text FROM pg_catalog.pg_proc p
JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname = %s AND NOT EXISTS (
  SELECT FROM pg_catalog.pg_dist_object d
  WHERE d.classid = 'pg_catalog.pg_proc'::regclass AND d.objid = p.oid)
ORDER BY 1"""


def _function(row: tuple) -> FunctionFacts:
    (schema, name, arguments, definer, fixed, definition, public, search_path, leakproof,
     executors) = row
    return FunctionFacts(schema, name, arguments, definer, fixed, definition, public,
                         search_path, leakproof, tuple(executors))


def read_facts(conn: psycopg.Connection, model: Model) -> Facts:
    """Everything the lint rules need from the database `conn` is connected to."""
    scope = Scope.of(model)
    relations = {}
    for (schema, name, kind, owner, rls, force, columns, indexed, parent, options,
         reads, nullable, unique_keys) in conn.execute(_RELATIONS):
        relations[f"{schema}.{name}"] = Relation(
            schema, name, _KINDS.get(kind, "table"), owner=owner, rls=rls,
            force=force, columns=frozenset(columns), indexed=frozenset(indexed),
            parent=parent, security_invoker=any(
                opt.lower() in ("security_invoker=true", "security_invoker=on",
                                "security_invoker=1", "security_invoker=yes")
                for opt in options),
            reads=tuple(sorted(reads)), nullable=frozenset(nullable),
            unique_keys=tuple(tuple(key.split(chr(31))) for key in unique_keys))
    roles = {oid: RoleFacts(*row) for oid, *row in conn.execute(_ROLES)}
    grants = [Grant(rel, PUBLIC if grantee == 0 else roles[grantee].name, privilege, column)
              for rel, grantee, privilege, column in conn.execute(_GRANTS)]
    oid_of = {r.name: oid for oid, r in roles.items()}
    wanted = {g.grantee for g in grants} | scope.app_roles
    privileges_of: dict[str, set[str]] = {}
    member_of: dict[str, set[str]] = {}
    for member, role, usage in conn.execute(
            _MEMBERSHIP, [[oid_of[r] for r in wanted if r in oid_of]]):
        member_of.setdefault(member, set()).add(role)
        if usage:
            privileges_of.setdefault(member, set()).add(role)
    policies = [o.DbPolicy(schema, table, name, permissive, POLICY_COMMANDS[cmd], tuple(pol_roles),
                         using, check)
                for schema, table, name, permissive, cmd, pol_roles, using, check
                in conn.execute(_POLICIES)]
    defaults = []
    for role, database, setting in conn.execute(
            _DEFAULTS, [scope.settings_prefix + ".%", sorted(scope.app_roles)]):
        name, _, value = setting.partition("=")
        defaults.append(SessionDefault(name, value, role, database))
    exposed = {s for (s,) in conn.execute(_EXPOSED, [sorted(scope.app_roles)])}
    citus = has_citus(conn)
    return Facts(
        scope=scope,
        relations=relations,
        policies=policies,
        grants=grants,
        roles={r.name: r for r in roles.values()},
        privileges_of={k: frozenset(v) for k, v in privileges_of.items()},
        member_of={k: frozenset(v) for k, v in member_of.items()},
        functions=[_function(row) for row in conn.execute(
            _FUNCTIONS, [scope.helpers_schema, sorted(scope.app_roles)])],
        defaults=defaults,
        blocked_inserts=[tuple(row) for row in conn.execute(
            _BLOCKED_INSERTS, [sorted(scope.app_roles)])],
        exposed_schemas=frozenset(exposed),
        public_writable=frozenset(s for (s,) in conn.execute(_PUBLIC_WRITABLE)),
        server_version=conn.info.server_version,
        shard_policies=_shard_policies(conn) if citus else [],
        citus=citus,
        undistributed_helpers=tuple(f for (f,) in conn.execute(
            _UNDISTRIBUTED_HELPERS, [scope.helpers_schema])) if citus else (),
        foreign_keys=[tuple(row) for row in conn.execute(_FOREIGN_KEYS)],
    )
