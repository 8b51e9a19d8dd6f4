-- Revision 1faa6ee621af: seal the request context
-- Revises: 1a6f855f7b9a
-- Summary: +1 context seal, ~4 helpers, +6 grants
-- The exact SQL of 1faa6ee621af_seal_the_request_context.py for PostgreSQL 18, for review; apply the revision with `rlskit migrate`.

-- ==== upgrade ====
BEGIN;

-- Running upgrade 1a6f855f7b9a -> 1faa6ee621af

DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'rlskit_keys') THEN
    CREATE ROLE rlskit_keys NOLOGIN NOINHERIT;
  END IF;
END
$$;

GRANT USAGE
  ON SCHEMA rlskit
  TO rlskit_keys;

CREATE TABLE IF NOT EXISTS rlskit.context_key (
    id text PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9_-]{1,40}$')
  , inner_pad bytea CHECK (octet_length(inner_pad) = 64)
  , outer_pad bytea CHECK (octet_length(outer_pad) = 64)
  , created_at timestamptz NOT NULL DEFAULT now()
  , retired_at timestamptz
  , CHECK ((retired_at IS NULL) = (inner_pad IS NOT NULL
                               AND outer_pad IS NOT NULL))
);

ALTER TABLE rlskit.context_key OWNER TO rlskit_keys;

REVOKE ALL PRIVILEGES
  ON TABLE rlskit.context_key
  FROM PUBLIC;

COMMENT ON TABLE rlskit.context_key
  IS 'managed by rlskit: context keys';

CREATE OR REPLACE FUNCTION rlskit.sealed_setting(caller name
                                               , setting text)
RETURNS text
LANGUAGE plpgsql STABLE PARALLEL safe SECURITY DEFINER SET search_path TO 'pg_catalog', 'pg_temp'
AS $$
DECLARE
  seal text := current_setting('rlskit.seal', true);  -- <kid>:<10-digit expiry>:<64-hex mac>:<body>
  body jsonb;
BEGIN
  SELECT substr(seal, length(k.id) + 78) INTO body FROM rlskit.context_key k
   WHERE k.id = split_part(seal, ':', 1) AND k.retired_at IS NULL
     AND substr(seal, length(k.id) + 2, 10)
         > extract(epoch FROM statement_timestamp())::bigint::text
     AND encode(sha256(k.outer_pad || sha256(k.inner_pad || convert_to(
           overlay(seal placing '' from length(k.id) + 13 for 65), 'UTF8'))), 'hex')
         = substr(seal, length(k.id) + 13, 64);
  RETURN CASE WHEN body ->> 'role' = caller THEN body ->> setting END;
END
$$;

CREATE OR REPLACE FUNCTION rlskit.context_key_status(kid text
                                                   , probe text)
RETURNS text
LANGUAGE sql STABLE SECURITY DEFINER SET search_path TO 'pg_catalog', 'pg_temp'
AS $$
SELECT coalesce((SELECT CASE WHEN k.retired_at IS NOT NULL THEN 'retired'
    WHEN encode(sha256(k.outer_pad || sha256(k.inner_pad || convert_to('rlskit key check', 'UTF8'))),
                'hex') = probe THEN 'ok'
    ELSE 'mismatch' END FROM rlskit.context_key k WHERE k.id = kid), 'unknown')
$$;

ALTER FUNCTION rlskit.sealed_setting (caller name, setting text) OWNER TO rlskit_keys;

REVOKE ALL PRIVILEGES
  ON FUNCTION rlskit.sealed_setting (caller name, setting text)
  FROM PUBLIC;

ALTER FUNCTION rlskit.context_key_status (kid text, probe text) OWNER TO rlskit_keys;

REVOKE ALL PRIVILEGES
  ON FUNCTION rlskit.context_key_status (kid text, probe text)
  FROM PUBLIC;

CREATE OR REPLACE FUNCTION rlskit.tenant_id()
RETURNS uuid
LANGUAGE sql STABLE PARALLEL safe
RETURN CAST(NULLIF(rlskit.sealed_setting(CURRENT_USER
                                       , 'app.tenant_id')
                 , '') AS uuid);

COMMENT ON FUNCTION rlskit.tenant_id ()
  IS 'managed by rlskit';

CREATE OR REPLACE FUNCTION rlskit.user_id()
RETURNS uuid
LANGUAGE sql STABLE PARALLEL safe
RETURN CAST(NULLIF(rlskit.sealed_setting(CURRENT_USER
                                       , 'app.user_id')
                 , '') AS uuid);

COMMENT ON FUNCTION rlskit.user_id ()
  IS 'managed by rlskit';

CREATE OR REPLACE FUNCTION rlskit.department()
RETURNS text
LANGUAGE sql STABLE PARALLEL safe
RETURN NULLIF(rlskit.sealed_setting(CURRENT_USER
                                  , 'app.department')
            , '');

COMMENT ON FUNCTION rlskit.department ()
  IS 'managed by rlskit';

CREATE OR REPLACE FUNCTION rlskit.claim(name text)
RETURNS text
LANGUAGE sql STABLE PARALLEL safe
RETURN NULLIF(rlskit.sealed_setting(CURRENT_USER
                                  , 'app.' || name)
            , '');

COMMENT ON FUNCTION rlskit.claim (name text)
  IS 'managed by rlskit';

GRANT USAGE
  ON SCHEMA rlskit
  TO app_authenticator;

GRANT EXECUTE
  ON FUNCTION rlskit.sealed_setting
  TO read_only;

GRANT EXECUTE
  ON FUNCTION rlskit.sealed_setting
  TO member;

GRANT EXECUTE
  ON FUNCTION rlskit.sealed_setting
  TO tenant_admin;

GRANT EXECUTE
  ON FUNCTION rlskit.sealed_setting
  TO runner;

GRANT EXECUTE
  ON FUNCTION rlskit.context_key_status
  TO app_authenticator;

UPDATE alembic_version SET version_num='1faa6ee621af' WHERE alembic_version.version_num = '1a6f855f7b9a';

COMMIT;


-- ==== downgrade ====
BEGIN;

-- Running downgrade 1faa6ee621af -> 1a6f855f7b9a

REVOKE EXECUTE
  ON FUNCTION rlskit.context_key_status
  FROM app_authenticator;

REVOKE EXECUTE
  ON FUNCTION rlskit.sealed_setting
  FROM runner;

REVOKE EXECUTE
  ON FUNCTION rlskit.sealed_setting
  FROM tenant_admin;

REVOKE EXECUTE
  ON FUNCTION rlskit.sealed_setting
  FROM member;

REVOKE EXECUTE
  ON FUNCTION rlskit.sealed_setting
  FROM read_only;

REVOKE USAGE
  ON SCHEMA rlskit
  FROM app_authenticator;

CREATE OR REPLACE FUNCTION rlskit.tenant_id()
RETURNS uuid
LANGUAGE sql STABLE PARALLEL safe
RETURN CAST(NULLIF(pg_catalog.current_setting('app.tenant_id', TRUE)
                 , '') AS uuid);

COMMENT ON FUNCTION rlskit.tenant_id ()
  IS 'managed by rlskit';

CREATE OR REPLACE FUNCTION rlskit.user_id()
RETURNS uuid
LANGUAGE sql STABLE PARALLEL safe
RETURN CAST(NULLIF(pg_catalog.current_setting('app.user_id', TRUE)
                 , '') AS uuid);

COMMENT ON FUNCTION rlskit.user_id ()
  IS 'managed by rlskit';

CREATE OR REPLACE FUNCTION rlskit.department()
RETURNS text
LANGUAGE sql STABLE PARALLEL safe
RETURN NULLIF(pg_catalog.current_setting('app.department', TRUE)
            , '');

COMMENT ON FUNCTION rlskit.department ()
  IS 'managed by rlskit';

CREATE OR REPLACE FUNCTION rlskit.claim(name text)
RETURNS text
LANGUAGE sql STABLE PARALLEL safe
RETURN NULLIF(pg_catalog.current_setting('app.' || name
                                       , TRUE)
            , '');

COMMENT ON FUNCTION rlskit.claim (name text)
  IS 'managed by rlskit';

DROP FUNCTION IF EXISTS rlskit.sealed_setting (caller name, setting text);

DROP FUNCTION IF EXISTS rlskit.context_key_status (kid text, probe text);

DROP TABLE IF EXISTS rlskit.context_key;

REVOKE USAGE
  ON SCHEMA rlskit
  FROM rlskit_keys;

DROP ROLE IF EXISTS rlskit_keys;

UPDATE alembic_version SET version_num='1a6f855f7b9a' WHERE alembic_version.version_num = '1faa6ee621af';

COMMIT;

