"""A snapshot of everything a migration can change, for "is it exactly as before?" tests.

Role names are shown without the test's role prefix, so two databases migrated for two
prefixes compare equal when they hold the same state; access lists are sorted and a missing
one is shown as the default it stands for (neither the order nor NULL versus the owner's
explicit entry carries meaning, and a revoke followed by a grant changes both).
"""

from __future__ import annotations

import json

import psycopg

_SNAPSHOT_TEMPLATE = """
SELECT json_build_object(
  'relations', (SELECT json_agg(json_build_array(c.oid::regclass::text, c.relkind,
                 c.relrowsecurity, c.relforcerowsecurity, {relacl}, c.reloptions,
                 obj_description(c.oid, 'pg_class'),
                 CASE c.relkind WHEN 'v' THEN pg_get_viewdef(c.oid) END,
                 (SELECT json_agg(json_build_array(a.attname, a.atttypid::regtype::text,
                                                   {attacl}) ORDER BY a.attnum)
                  FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0
                    AND NOT a.attisdropped)) ORDER BY c.oid::regclass::text)
                FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace),
  'policies', (SELECT json_agg(json_build_array(polrelid::regclass::text, polname, polcmd,
                 polpermissive, polroles::regrole[]::text[], pg_get_expr(polqual, polrelid),
                 pg_get_expr(polwithcheck, polrelid), obj_description(oid, 'pg_policy'))
                 ORDER BY polrelid::regclass::text, polname) FROM pg_policy),
  'schemas', (SELECT json_agg(json_build_array(nspname, {nspacl}) ORDER BY nspname)
              FROM pg_namespace WHERE nspname IN ('public', 'rlskit')),
  'functions', (SELECT json_agg(json_build_array(pg_get_functiondef(p.oid), {proacl},
                  obj_description(p.oid, 'pg_proc')) ORDER BY p.proname)
                FROM pg_proc p WHERE p.pronamespace::regnamespace::text = 'rlskit'),
  'roles', (SELECT json_agg(json_build_array(rolname, rolcanlogin, rolinherit, rolbypassrls)
            ORDER BY rolname) FROM pg_roles WHERE starts_with(rolname, %(prefix)s)),
  'memberships', (SELECT json_agg(json_build_array(r.rolname, m.rolname,
                    to_jsonb(a) - 'oid' - 'roleid' - 'member' - 'grantor')
                    ORDER BY r.rolname, m.rolname)
                  FROM pg_auth_members a JOIN pg_roles r ON r.oid = a.roleid
                  JOIN pg_roles m ON m.oid = a.member
                  WHERE starts_with(m.rolname, %(prefix)s))
)
"""




def _acl(column: str, default: str | None = None) -> str:
    """An access list sorted, and a missing one as the default it stands for."""
    value = f"coalesce({column}, {default})" if default else column
    return f"(SELECT array_agg(x ORDER BY x) FROM unnest({value}::text[]) x)"


_SNAPSHOT = _SNAPSHOT_TEMPLATE.format(
    relacl=_acl("c.relacl", "acldefault('r', c.relowner)"), attacl=_acl("a.attacl"),
    nspacl=_acl("nspacl", "acldefault('n', nspowner)"),
    proacl=_acl("p.proacl", "acldefault('f', p.proowner)"))


def snapshot(conn: psycopg.Connection, prefix: str) -> dict:
    """The catalog state a migration manages, with `prefix` taken off role names."""
    state = conn.execute(_SNAPSHOT, {"prefix": prefix}).fetchone()[0]
    return json.loads(json.dumps(state).replace(prefix, "<prefix>"))
