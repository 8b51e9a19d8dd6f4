"""The grants store: who holds which data-product role, as data in the helpers schema.

Two tables — ``access_grant`` (one row per grant to a user, a group or an attribute rule)
and ``access_log`` (every grant and revoke: who, when, why) — and the functions that are
the only way to read and write them:

- ``holds(role)``: does the caller hold `role`? A login that natively inherits it does;
  otherwise a grant must match the request context (``<prefix>.user_id``,
  ``<prefix>.groups``, ``<prefix>.<attribute>``) — for a sealed model only a context
  whose seal verifies for `role` itself, so a forged setting or a role switched inside a
  request holds nothing. Product tables carry a restrictive policy calling it, so a grant
  or revoke counts from the next statement, without a deploy.
- ``roles_held()``: the product roles the request context holds (what the runtime reads).
- ``grant_access(...)`` / ``revoke_access(...)``: checked in the database — the role must
  exist, the session user must hold it WITH ADMIN (the product owner does), an attribute
  must be one of the model's context helpers. A grant to a user who is a database login
  is mirrored as a real ``GRANT role TO login``, so ``psql`` works too.
- ``access_grants()`` and ``access_history()``: the grants and the log of the roles the
  session user administers.

Nothing here names a role, so one revision serves every environment's role prefix; no
function is executable by PUBLIC (who may run which is `objects.FunctionGrant`s: the
model's roles, so logins reach them through their memberships). The tables stay private.
"""

from __future__ import annotations

from psycopg import sql

from ..objects import MARKER
from ..render import Ident, dollar_quoted
from ..sqltext import SEALED_READER

__all__ = ["FUNCTIONS", "GRANT_KINDS", "RUNTIME_FUNCTIONS", "SEALED_SUFFIX", "STORE_COMMENT",
           "create_store", "drop_store"]

GRANT_KINDS = ("user", "group", "attribute")
STORE_COMMENT = "managed by rlskit: access grants, settings prefix "
SEALED_SUFFIX = ", sealed"  # the comment's tail when the store reads the sealed context
FUNCTIONS = {  # name -> identity arguments, as pg_get_function_identity_arguments prints
    "access_history": "",
    "access_grants": "",
    "revoke_access": "target name, kind text, subject text, value text, reason text",
    "grant_access": "target name, kind text, subject text, value text, reason text",
    "holds": "target name",
    "roles_held": "",
}
RUNTIME_FUNCTIONS = ("holds", "roles_held")  # what policies and the runtime call
_DEFINER = "SECURITY DEFINER SET search_path = pg_catalog, pg_temp"
# Who may grant `role`, as PostgreSQL's own GRANT decides or narrower: a superuser session,
# or one that has the privileges (an INHERIT chain, not a SET-only membership: that is what
# the authenticator has) of a role holding `role` WITH ADMIN OPTION.
_ADMINISTERS = """(EXISTS (SELECT FROM pg_catalog.pg_roles s
                WHERE s.rolname = session_user AND s.rolsuper)
        OR EXISTS (SELECT FROM pg_catalog.pg_auth_members m
                   JOIN pg_catalog.pg_roles r ON r.oid = m.roleid
                   WHERE r.rolname = {role} AND m.admin_option
                     AND pg_catalog.pg_has_role(session_user, m.member, 'USAGE')))"""

_TABLES = """
CREATE TABLE IF NOT EXISTS {grants} (
    role name NOT NULL,
    kind text NOT NULL CHECK (kind IN ('user', 'group', 'attribute')),
    subject text NOT NULL CHECK (subject <> ''),
    value text NOT NULL DEFAULT '',
    granted_by name NOT NULL DEFAULT session_user,
    granted_at timestamptz NOT NULL DEFAULT now(),
    reason text NOT NULL CHECK (reason <> ''),
    PRIMARY KEY (role, kind, subject, value))
;CREATE TABLE IF NOT EXISTS {log} (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at timestamptz NOT NULL DEFAULT now(),
    actor name NOT NULL DEFAULT session_user,
    action text NOT NULL CHECK (action IN ('grant', 'revoke')),
    role name NOT NULL,
    kind text NOT NULL,
    subject text NOT NULL,
    value text NOT NULL,
    reason text NOT NULL)
;REVOKE ALL ON {grants}, {log} FROM PUBLIC
;GRANT USAGE ON SCHEMA {schema} TO PUBLIC
;COMMENT ON TABLE {grants} IS {comment}"""

_MATCHING = """
  SELECT DISTINCT g.role FROM {grants} g
  WHERE (g.kind = 'user' AND g.subject = {read}({caller}{user}{tail}))
     OR (g.kind = 'group' AND g.subject = ANY (CAST(NULLIF(
           {read}({caller}{groups}{tail}), '') AS text[])))
     OR (g.kind = 'attribute' AND g.value = {read}({caller}{prefix} || g.subject{tail}))"""

_ROLES_HELD = """
CREATE OR REPLACE FUNCTION {schema}.roles_held() RETURNS SETOF name
LANGUAGE sql STABLE {definer}
BEGIN ATOMIC
  {matching}
  ORDER BY 1;
END"""

_HOLDS = """
CREATE OR REPLACE FUNCTION {schema}.holds(target name) RETURNS boolean
LANGUAGE sql STABLE {definer}
RETURN pg_catalog.pg_has_role(session_user, target, 'USAGE')
    OR target IN ({matching})"""

_ACCESS_GRANTS = """
CREATE OR REPLACE FUNCTION {schema}.access_grants()
RETURNS TABLE (role name, kind text, subject text, value text, granted_by name,
               granted_at timestamptz, reason text)
LANGUAGE sql STABLE {definer}
BEGIN ATOMIC
  SELECT g.role, g.kind, g.subject, g.value, g.granted_by, g.granted_at, g.reason
  FROM {grants} g WHERE {administers_granted} ORDER BY 1, 2, 3, 4;
END"""

_ACCESS_HISTORY = """
CREATE OR REPLACE FUNCTION {schema}.access_history()
RETURNS TABLE (at timestamptz, actor name, action text, role name, kind text, subject text,
               value text, reason text)
LANGUAGE sql STABLE {definer}
BEGIN ATOMIC
  SELECT l.at, l.actor, l.action, l.role, l.kind, l.subject, l.value, l.reason
  FROM {log} l
  WHERE {administers_logged}
  ORDER BY l.id;
END"""

_CHANGE_ACCESS = """
CREATE OR REPLACE FUNCTION {schema}.{name}(
    target name, kind text, subject text, value text, reason text) RETURNS boolean
LANGUAGE plpgsql VOLATILE {definer}
AS {body}"""

_CHECKS = """
#variable_conflict use_variable
BEGIN
  IF pg_catalog.to_regrole(pg_catalog.quote_ident(target)) IS NULL THEN
    RAISE EXCEPTION 'role % does not exist', target USING ERRCODE = 'undefined_object';
  END IF;
  IF NOT {administers_target} THEN
    RAISE EXCEPTION '% may not {verb} %: that takes ADMIN on the role (its product''s '
      'owner role has it)', session_user, target USING ERRCODE = 'insufficient_privilege';
  END IF;
  IF kind IS NULL OR kind NOT IN ('user', 'group', 'attribute') THEN
    RAISE EXCEPTION 'a grant is to a user, a group or an attribute, not %', kind
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF kind = 'attribute' AND NOT EXISTS (
      SELECT FROM pg_catalog.pg_proc p
      WHERE p.pronamespace = CAST({schema_name} AS regnamespace) AND p.proname = subject
        AND p.pronargs = 0 AND pg_catalog.obj_description(p.oid, 'pg_proc') = {marker}) THEN
    RAISE EXCEPTION 'unknown attribute %: the model declares no such context', subject
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF kind <> 'attribute' AND value <> '' THEN
    RAISE EXCEPTION 'only an attribute rule has a value' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF kind = 'attribute' AND value = '' THEN  -- '' is what an absent attribute reads as
    RAISE EXCEPTION 'an attribute rule needs a value' USING ERRCODE = 'invalid_parameter_value';
  END IF;
"""

_CHANGE_BODY = _CHECKS + """
  {change}
  IF NOT FOUND THEN
    RETURN false;
  END IF;
  INSERT INTO {log} (action, role, kind, subject, value, reason)
  VALUES ('{verb}', target, kind, subject, value, reason);
  IF kind = 'user' AND EXISTS (SELECT FROM pg_catalog.pg_roles
                               WHERE rolname = subject AND rolcanlogin) THEN
    {membership}
  END IF;
  RETURN true;
END"""

# verb: the change to the grants table, and to a login's role membership
_CHANGES = {
    "grant": ("""INSERT INTO {grants} (role, kind, subject, value, reason)
  VALUES (target, kind, subject, value, reason) ON CONFLICT DO NOTHING;""",
              "EXECUTE pg_catalog.format('GRANT %I TO %I', target, subject);"),
    "revoke": ("""DELETE FROM {grants} g WHERE (g.role, g.kind, g.subject, g.value)
                             = (target, kind, subject, value);""",
               """IF pg_catalog.pg_has_role(subject, target, 'MEMBER') THEN
      EXECUTE pg_catalog.format('REVOKE %I FROM %I', target, subject);
    END IF;"""),
}


def _matching(names: dict[str, sql.Composable], schema: str, sealed: bool,
              caller: str) -> sql.Composable:
    """The roles granted to the request context; `sealed`: only values whose seal verifies
    for `caller` (the role asked about, or the session's login) count."""
    if sealed:
        read: sql.Composable = sql.SQL("{}.{}").format(Ident(schema),
                                                      sql.Identifier(SEALED_READER))
        who = sql.SQL(f"{caller}, ")
    else:
        read, who = sql.SQL("pg_catalog.current_setting"), sql.SQL("")
    tail = sql.SQL("") if sealed else sql.SQL(", true")
    return sql.SQL(_MATCHING).format(read=read, caller=who, tail=tail, **names)


def create_store(schema: str, settings_prefix: str, sealed: bool = False
                 ) -> list[sql.Composable]:
    """Create the store (tables only if missing, functions replaced): running it again
    keeps every grant, so it also serves as the in-place update."""
    names = {
        "schema": Ident(schema), "grants": Ident(schema, "access_grant"),
        "log": Ident(schema, "access_log"), "definer": sql.SQL(_DEFINER),
        "prefix": sql.Literal(settings_prefix + "."),
        "user": sql.Literal(f"{settings_prefix}.user_id"),
        "groups": sql.Literal(f"{settings_prefix}.groups"),
        "comment": sql.Literal(STORE_COMMENT + settings_prefix
                               + (SEALED_SUFFIX if sealed else "")),
        "schema_name": sql.Literal(schema), "marker": sql.Literal(MARKER),
        "administers_target": sql.SQL(_ADMINISTERS.replace("{role}", "target")),
        "administers_logged": sql.SQL(_ADMINISTERS.replace("{role}", "l.role")),
        "administers_granted": sql.SQL(_ADMINISTERS.replace("{role}", "g.role")),
    }
    out: list[sql.Composable] = [sql.SQL(s).format(**names)
                                 for s in _TABLES.split(";") if s.strip()]
    out += [sql.SQL(_ROLES_HELD).format(
                matching=_matching(names, schema, sealed, "session_user"), **names),
            sql.SQL(_HOLDS).format(matching=_matching(names, schema, sealed, "target"),
                                   **names)]
    out += [sql.SQL(text).format(**names) for text in (_ACCESS_GRANTS, _ACCESS_HISTORY)]
    for verb, (change, membership) in _CHANGES.items():
        body = (_CHANGE_BODY.replace("{change}", change).replace("{membership}", membership)
                .replace("{verb}", verb))
        text = sql.SQL(body).format(**names).as_string()
        out.append(sql.SQL(_CHANGE_ACCESS).format(name=sql.Identifier(f"{verb}_access"),
                                                  body=sql.SQL(dollar_quoted(text)), **names))
    out += [sql.SQL("REVOKE ALL ON FUNCTION {}({}) FROM PUBLIC").format(
        Ident(schema, name), sql.SQL(args)) for name, args in FUNCTIONS.items()]
    return out


def drop_store(schema: str) -> list[sql.Composable]:
    """Drop the store's functions, then its tables (and every grant in them)."""
    out: list[sql.Composable] = [
        sql.SQL("DROP FUNCTION IF EXISTS {}({})").format(Ident(schema, name), sql.SQL(args))
        for name, args in FUNCTIONS.items()]
    out += [sql.SQL("DROP TABLE IF EXISTS {}").format(Ident(schema, table))
            for table in ("access_log", "access_grant")]
    return [*out, sql.SQL("REVOKE USAGE ON SCHEMA {} FROM PUBLIC").format(Ident(schema))]
