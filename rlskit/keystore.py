"""The database side of the sealed context: the key table, the verifier, key management.

One managed object (`objects.ContextSeal`) creates, in the helpers schema:

- ``context_key``: key ids with HMAC-SHA256's inner and outer pads (never the secret in a
  revision: rows come from `rotate`), owned by a NOLOGIN key owner role that alone can
  read it (no grant to PUBLIC, to the application roles or to the authenticator);
- ``sealed_setting(caller, setting)``: ``SECURITY DEFINER`` (owned by the key owner,
  ``search_path`` pinned): when ``rlskit.seal`` is an unexpired seal by a live key whose
  signed body names `caller` as its role, the value of `setting` in that body; NULL
  otherwise, never an error. The values come from the signed body, not from the session's
  settings, so changing a setting inside a request changes nothing. The helpers call it
  with ``CURRENT_USER``, once per statement (their calls are InitPlans); a setting the
  body lacks (an application that predates a new claim) reads NULL;
- ``context_key_status(kid, probe)``: what the start-up check asks (``ok``, ``unknown``,
  ``retired``, ``mismatch``) so a misconfigured application stops before its first request.

Who may run the functions is granted separately (`objects.FunctionGrant`): the verifier
to the model's group roles, the status to its authenticators; never to PUBLIC.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import psycopg
from pglast.stream import maybe_double_quote_name as quote
from psycopg import errors, sql

from .errors import ConfigError
from .objects import ContextSeal
from .render import Ident, dollar_quoted
from .rows import one
from .seal import KEY_CHECK, SEAL_SETTING, ContextKey
from .sqltext import SEALED_READER

__all__ = [
    "KEYSTORE_COMMENT",
    "KEY_STATUS",
    "KEY_TABLE",
    "VERIFIER",
    "KeyRow",
    "create_keystore",
    "drop_keystore",
    "has_key_table",
    "key_status",
    "list_keys",
    "retire",
    "rotate",
    "sync_workers",
    "verifier_source",
]

KEY_TABLE = "context_key"
VERIFIER = SEALED_READER
KEY_STATUS = "context_key_status"
KEYSTORE_COMMENT = "managed by rlskit: context keys"
_DEFINER = sql.SQL("SECURITY DEFINER SET search_path = pg_catalog, pg_temp")
# Citus: the workers' verifier reads the keys from a table of their own, kept in step with
# the coordinator's by rlskit (a Citus table would make every read a distributed query,
# run as the verifier's owner, from inside the shard's query)
EVERY_NODE = "; on every node"
_ON_WORKERS = """
DECLARE
  failed text;
BEGIN
  SELECT string_agg(nodename || ':' || nodeport || ': ' || result, '; ') INTO failed
  FROM run_command_on_workers({command}) WHERE NOT success;
  IF failed IS NOT NULL THEN
    RAISE EXCEPTION 'on the Citus workers: %', failed;
  END IF;
END
"""


def on_workers(statement: sql.Composable, conn: psycopg.Connection | None = None
               ) -> sql.Composed:
    """`statement` (quoted for `conn`'s server when given) run on every Citus worker by
    the coordinator; raises if one of them fails."""
    command = sql.Literal(statement.as_string(conn))
    return sql.SQL("DO {}").format(sql.SQL(dollar_quoted(
        _ON_WORKERS.format(command=command.as_string(conn)))))

_TABLE = """CREATE TABLE IF NOT EXISTS {table} (
    id text PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9_-]{{1,40}}$'),
    inner_pad bytea CHECK (octet_length(inner_pad) = 64),
    outer_pad bytea CHECK (octet_length(outer_pad) = 64),
    created_at timestamptz NOT NULL DEFAULT now(),
    retired_at timestamptz,
    CHECK ((retired_at IS NULL) = (inner_pad IS NOT NULL AND outer_pad IS NOT NULL)))"""

_VERIFIER = """
DECLARE
  seal text := current_setting({seal}, true);  -- <kid>:<10-digit expiry>:<64-hex mac>:<body>
  body jsonb;
BEGIN
  SELECT substr(seal, length(k.id) + 78) INTO body FROM {table} k
   WHERE k.id = split_part(seal, ':', 1) AND k.retired_at IS NULL
     AND substr(seal, length(k.id) + 2, 10)
         > extract(epoch FROM statement_timestamp())::bigint::text
     AND encode(sha256(k.outer_pad || sha256(k.inner_pad || convert_to(
           overlay(seal placing '' from length(k.id) + 13 for 65), 'UTF8'))), 'hex')
         = substr(seal, length(k.id) + 13, 64);
  RETURN CASE WHEN body ->> 'role' = caller THEN body ->> setting END;
END
"""

_STATUS = """CREATE OR REPLACE FUNCTION {status}(kid text, probe text) RETURNS text
LANGUAGE sql STABLE {definer} AS {body}"""
_STATUS_BODY = """
SELECT coalesce((SELECT CASE WHEN k.retired_at IS NOT NULL THEN 'retired'
    WHEN encode(sha256(k.outer_pad || sha256(k.inner_pad || convert_to({check}, 'UTF8'))),
                'hex') = probe THEN 'ok'
    ELSE 'mismatch' END FROM {table} k WHERE k.id = kid), 'unknown')
"""  # a quoted body, not RETURN …: Citus breaks a SQL-standard body on its coordinator


def _literal(text: str) -> str:
    return sql.Literal(text).as_string()


def verifier_source(obj: ContextSeal) -> str:
    """The verifier's body, exactly as ``pg_proc.prosrc`` keeps it."""
    return _VERIFIER.format(seal=_literal(SEAL_SETTING),
                            table=f"{quote(obj.schema)}.{quote(KEY_TABLE)}")


def _owner_role(owner: str) -> sql.Composable:
    body = (f"\nBEGIN\n  IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = "
            f"{_literal(owner)}) THEN\n    CREATE ROLE {quote(owner)} NOLOGIN "
            "NOINHERIT;\n  END IF;\nEND\n")
    return sql.SQL("DO {}").format(sql.SQL(dollar_quoted(body)))


def _functions(schema: str) -> list[tuple[sql.Composable, sql.Composable]]:
    return [(Ident(schema, VERIFIER), sql.SQL("caller name, setting text")),
            (Ident(schema, KEY_STATUS), sql.SQL("kid text, probe text"))]


def _key_table(schema: str, owner: str, citus: bool) -> list[sql.Composable]:
    """The key table (if missing), its owner, no grants, and the comment that marks it."""
    table = Ident(schema, KEY_TABLE)
    comment = KEYSTORE_COMMENT + (EVERY_NODE if citus else "")
    return [sql.SQL(_TABLE).format(table=table),
            sql.SQL("ALTER TABLE {} OWNER TO {}").format(table, Ident(owner)),
            sql.SQL("REVOKE ALL ON TABLE {} FROM PUBLIC").format(table),
            sql.SQL("COMMENT ON TABLE {} IS {}").format(table, sql.Literal(comment))]


def create_keystore(obj: ContextSeal) -> list[sql.Composable]:
    """Create the key owner (if missing), the key table (if missing: keys survive a
    re-run) and the functions (replaced), with their owner and grants."""
    owner = Ident(obj.owner)
    out: list[sql.Composable] = [
        _owner_role(obj.owner),
        sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(Ident(obj.schema), owner),
        *_key_table(obj.schema, obj.owner, obj.citus),
        sql.SQL("CREATE OR REPLACE FUNCTION {}(caller name, setting text) RETURNS text "
                "LANGUAGE plpgsql STABLE PARALLEL SAFE {} AS {}").format(
            Ident(obj.schema, VERIFIER), _DEFINER,
            sql.SQL(dollar_quoted(verifier_source(obj)))),
        sql.SQL(_STATUS).format(status=Ident(obj.schema, KEY_STATUS), definer=_DEFINER,
                                body=sql.SQL(dollar_quoted(_STATUS_BODY.format(
                                    check=_literal(KEY_CHECK),
                                    table=f"{quote(obj.schema)}.{quote(KEY_TABLE)}")))),
    ]
    for function, args in _functions(obj.schema):
        signature = sql.SQL("{}({})").format(function, args)
        out += [sql.SQL("ALTER FUNCTION {} OWNER TO {}").format(signature, owner),
                sql.SQL("REVOKE ALL ON FUNCTION {} FROM PUBLIC").format(signature)]
    return out


def drop_keystore(obj: ContextSeal) -> list[sql.Composable]:
    """Drop the functions, the key table (and every key in it) and the key owner."""
    out: list[sql.Composable] = [
        sql.SQL("DROP FUNCTION IF EXISTS {}({})").format(function, args)
        for function, args in _functions(obj.schema)]
    drop_table = sql.SQL("DROP TABLE IF EXISTS {}").format(Ident(obj.schema, KEY_TABLE))
    if obj.citus:
        out.append(on_workers(drop_table))
    return [*out, drop_table,
            sql.SQL("REVOKE USAGE ON SCHEMA {} FROM {}").format(Ident(obj.schema),
                                                                 Ident(obj.owner)),
            sql.SQL("DROP ROLE IF EXISTS {}").format(Ident(obj.owner))]


# -- key management (the CLI's `rlskit key`, tests, verify) ----------------------------------


@dataclass(frozen=True)
class KeyRow:
    """A key as `list_keys` shows it (never its secret)."""

    kid: str
    created_at: datetime
    retired_at: datetime | None


def _table(schema: str) -> sql.Composable:
    return Ident(schema, KEY_TABLE)


def _run(conn: psycopg.Connection, schema: str, query: sql.SQL | sql.Composed,
         params: list | None = None, *, everywhere: bool = False) -> list[tuple]:
    """`query` on the key table; `everywhere`: on a Citus cluster whose key table is on
    every node (see `EVERY_NODE`), on the workers' tables too."""
    try:
        with conn.transaction():
            cur = conn.execute(query, params)
            rows = cur.fetchall() if cur.description else []
            if everywhere and _on_every_node(conn, schema):
                conn.execute(on_workers(query, conn))
            return rows
    except errors.UndefinedTable:
        raise ConfigError(f"the database has no key table {schema}.{KEY_TABLE}: migrate it "
                          "with a sealed model first (rlskit migrate)") from None
    except errors.InsufficientPrivilege:
        raise ConfigError(f"{conn.info.user!r} may not manage the context keys: connect as a "
                          "superuser or a member of the key owner role") from None


def _key_table_of(conn: psycopg.Connection, schema: str) -> tuple[str | None, str | None]:
    """The key table's comment and owner; (None, None) when there is no key table."""
    return one(conn.execute(
        "SELECT pg_catalog.obj_description(c.oid, 'pg_class'), "
        "pg_catalog.pg_get_userbyid(c.relowner) FROM (SELECT pg_catalog.to_regclass(%s) "
        "AS oid) t LEFT JOIN pg_catalog.pg_class c ON c.oid = t.oid",
        [f"{quote(schema)}.{quote(KEY_TABLE)}"]))


def has_key_table(conn: psycopg.Connection, schema: str) -> bool:
    """Does the database hold rlskit's key table (its context is sealed)?"""
    return (_key_table_of(conn, schema)[0] or "").startswith(KEYSTORE_COMMENT)


def _on_every_node(conn: psycopg.Connection, schema: str) -> bool:
    return _key_table_of(conn, schema)[0] == KEYSTORE_COMMENT + EVERY_NODE


_KEYS = "SELECT id, inner_pad, outer_pad, created_at, retired_at FROM {}"
_UPSERT = ("INSERT INTO {} (id, inner_pad, outer_pad, created_at, retired_at) "
           "VALUES ({}, {}, {}, {}, {}) ON CONFLICT (id) DO UPDATE SET "
           "inner_pad = EXCLUDED.inner_pad, outer_pad = EXCLUDED.outer_pad, "
           "retired_at = EXCLUDED.retired_at")


def sync_workers(conn: psycopg.Connection, schema: str) -> int:
    """On a Citus cluster whose key table is on every node: make the workers' key tables
    (where missing) and copy the coordinator's keys into them; the number of keys copied
    (0 elsewhere). Run outside the transaction that created the key table, which the
    workers' own connections cannot see: `rlskit migrate` runs it after committing."""
    comment, owner = _key_table_of(conn, schema)
    if comment != KEYSTORE_COMMENT + EVERY_NODE or owner is None:
        return 0
    with conn.transaction():
        for statement in _key_table(schema, owner, citus=True):
            conn.execute(on_workers(statement, conn))
        keys = conn.execute(sql.SQL(_KEYS).format(_table(schema))).fetchall()
        for row in keys:
            conn.execute(on_workers(sql.SQL(_UPSERT).format(
                _table(schema), *map(sql.Literal, row)), conn))
    return len(keys)


def rotate(conn: psycopg.Connection, schema: str, key: ContextKey | None = None
           ) -> ContextKey:
    """Add a new key (random unless given); every key not retired stays valid, so the
    application can move to the new one before the old is retired."""
    key = key or ContextKey.generate()
    inner, outer = key.pads()
    insert = sql.SQL("INSERT INTO {} (id, inner_pad, outer_pad) VALUES ({}, {}, {})").format(
        _table(schema), sql.Literal(key.kid), sql.Literal(inner), sql.Literal(outer))
    try:
        _run(conn, schema, insert, everywhere=True)
    except errors.UniqueViolation:
        raise ConfigError(f"a context key {key.kid!r} exists already") from None
    return key


def retire(conn: psycopg.Connection, schema: str, kid: str) -> bool:
    """Retire key `kid`: seals by it stop verifying at once and its pads are erased.
    False when no live key has that id."""
    rows = _run(conn, schema, sql.SQL(
        "UPDATE {} SET retired_at = now(), inner_pad = NULL, outer_pad = NULL "
        "WHERE id = {} AND retired_at IS NULL RETURNING id").format(
            _table(schema), sql.Literal(kid)), everywhere=True)
    return bool(rows)


def list_keys(conn: psycopg.Connection, schema: str) -> list[KeyRow]:
    """Every key, oldest first."""
    rows = _run(conn, schema, sql.SQL("SELECT id, created_at, retired_at FROM {} "
                                      "ORDER BY created_at, id").format(_table(schema)))
    return [KeyRow(*row) for row in rows]


def key_status(conn: psycopg.Connection, schema: str, key: ContextKey) -> str:
    """What the database says of the application's key: ``ok``, ``unknown``, ``retired``
    or ``mismatch`` (same id, another secret)."""
    query = sql.SQL("SELECT {}(%s, %s)").format(Ident(schema, KEY_STATUS))
    (status,) = one(conn.execute(query, [key.kid, key.probe()]))
    return status
