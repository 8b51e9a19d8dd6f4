-- Revision 5fb1d6533171: initial: tenants, users, memberships, flows
-- Revises: (base)
-- Summary: +4 tables, ~2 tables, +1 schema, +4 helpers, +4 roles, +5 memberships, +16 grants, +4 row security, +13 policies, +1 view
-- The exact SQL of 5fb1d6533171_initial_tenants_users_memberships_flows.py for PostgreSQL 18, for review; apply the revision with `rlskit migrate`.

-- ==== upgrade ====
BEGIN;

CREATE TABLE alembic_version (
    version_num VARCHAR(32) NOT NULL, 
    CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num)
);

-- Running upgrade  -> 5fb1d6533171

CREATE TABLE tenant (
    id UUID DEFAULT gen_random_uuid() NOT NULL, 
    name VARCHAR NOT NULL, 
    PRIMARY KEY (id)
);

CREATE TABLE users (
    id UUID DEFAULT gen_random_uuid() NOT NULL, 
    email VARCHAR NOT NULL, 
    first_name VARCHAR NOT NULL, 
    last_name VARCHAR NOT NULL, 
    password_hash VARCHAR DEFAULT '' NOT NULL, 
    PRIMARY KEY (id), 
    UNIQUE (email)
);

CREATE TABLE flow (
    id UUID DEFAULT gen_random_uuid() NOT NULL, 
    tenant_id UUID NOT NULL, 
    name VARCHAR NOT NULL, 
    status VARCHAR DEFAULT 'draft' NOT NULL, 
    created_at TIMESTAMP WITHOUT TIME ZONE DEFAULT now() NOT NULL, 
    PRIMARY KEY (id), 
    FOREIGN KEY(tenant_id) REFERENCES tenant (id)
);

CREATE INDEX flow_tenant_created ON flow (tenant_id, created_at);

CREATE TABLE membership (
    tenant_id UUID NOT NULL, 
    user_id UUID NOT NULL, 
    role VARCHAR DEFAULT 'member' NOT NULL, 
    PRIMARY KEY (tenant_id, user_id), 
    FOREIGN KEY(tenant_id) REFERENCES tenant (id), 
    FOREIGN KEY(user_id) REFERENCES users (id)
);

CREATE INDEX ix_membership_user_id ON membership (user_id);

CREATE SCHEMA IF NOT EXISTS rlskit;

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

DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'read_only') THEN
    CREATE ROLE read_only WITH NOLOGIN
                           INHERIT;
  END IF;
END
$$;

COMMENT ON ROLE read_only
  IS 'managed by rlskit';

DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'member') THEN
    CREATE ROLE member WITH NOLOGIN
                        INHERIT;
  END IF;
END
$$;

COMMENT ON ROLE member
  IS 'managed by rlskit';

DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'tenant_admin') THEN
    CREATE ROLE tenant_admin WITH NOLOGIN
                              INHERIT;
  END IF;
END
$$;

COMMENT ON ROLE tenant_admin
  IS 'managed by rlskit';

DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'app_authenticator') THEN
    CREATE ROLE app_authenticator WITH LOGIN
                                   NOINHERIT;
  END IF;
END
$$;

COMMENT ON ROLE app_authenticator
  IS 'managed by rlskit';

GRANT read_only TO member WITH INHERIT TRUE
                             , SET FALSE;

GRANT member TO tenant_admin WITH INHERIT TRUE
                                , SET FALSE;

GRANT read_only TO app_authenticator WITH INHERIT FALSE
                                        , SET TRUE;

GRANT member TO app_authenticator WITH INHERIT FALSE
                                     , SET TRUE;

GRANT tenant_admin TO app_authenticator WITH INHERIT FALSE
                                           , SET TRUE;

GRANT USAGE
  ON SCHEMA rlskit
  TO read_only;

GRANT USAGE
  ON SCHEMA rlskit
  TO member;

GRANT USAGE
  ON SCHEMA rlskit
  TO tenant_admin;

GRANT USAGE
  ON SCHEMA public
  TO read_only;

GRANT USAGE
  ON SCHEMA public
  TO member;

GRANT USAGE
  ON SCHEMA public
  TO tenant_admin;

GRANT SELECT
  ON TABLE public.tenant
  TO read_only;

GRANT UPDATE (name)
  ON TABLE public.tenant
  TO tenant_admin;

GRANT SELECT (id, email, first_name, last_name)
  ON TABLE public.users
  TO read_only;

GRANT SELECT
  ON TABLE public.membership
  TO read_only;

GRANT SELECT
    , DELETE
  ON TABLE public.membership
  TO member;

GRANT SELECT
    , INSERT
    , UPDATE
    , DELETE
  ON TABLE public.membership
  TO tenant_admin;

GRANT SELECT
  ON TABLE public.flow
  TO read_only;

GRANT SELECT
    , INSERT
    , UPDATE
  ON TABLE public.flow
  TO member;

GRANT SELECT
    , INSERT
    , UPDATE
    , DELETE
  ON TABLE public.flow
  TO tenant_admin;

ALTER TABLE public.tenant ENABLE ROW LEVEL SECURITY;

ALTER TABLE public.tenant FORCE ROW LEVEL SECURITY;

ALTER TABLE public.users ENABLE ROW LEVEL SECURITY;

ALTER TABLE public.users FORCE ROW LEVEL SECURITY;

ALTER TABLE public.membership ENABLE ROW LEVEL SECURITY;

ALTER TABLE public.membership FORCE ROW LEVEL SECURITY;

ALTER TABLE public.flow ENABLE ROW LEVEL SECURITY;

ALTER TABLE public.flow FORCE ROW LEVEL SECURITY;

CREATE POLICY tenant_isolation ON public.tenant AS RESTRICTIVE FOR all TO PUBLIC USING (id = (SELECT rlskit.tenant_id())) WITH CHECK (id = (SELECT rlskit.tenant_id()));

COMMENT ON POLICY tenant_isolation ON public.tenant
  IS 'managed by rlskit';

CREATE POLICY read_only_select ON public.tenant AS PERMISSIVE FOR select TO read_only USING (TRUE);

COMMENT ON POLICY read_only_select ON public.tenant
  IS 'managed by rlskit';

CREATE POLICY tenant_admin_update ON public.tenant AS PERMISSIVE FOR update TO tenant_admin USING (TRUE) WITH CHECK (TRUE);

COMMENT ON POLICY tenant_admin_update ON public.tenant
  IS 'managed by rlskit';

CREATE POLICY fellow_members ON public.users AS PERMISSIVE FOR select TO read_only USING (EXISTS (SELECT 1
                                                                                                  FROM membership AS m
                                                                                                  WHERE m.user_id = users.id));

COMMENT ON POLICY fellow_members ON public.users
  IS 'managed by rlskit';

CREATE POLICY tenant_isolation ON public.membership AS RESTRICTIVE FOR all TO PUBLIC USING (tenant_id = (SELECT rlskit.tenant_id())) WITH CHECK (tenant_id = (SELECT rlskit.tenant_id()));

COMMENT ON POLICY tenant_isolation ON public.membership
  IS 'managed by rlskit';

CREATE POLICY leave_tenant ON public.membership AS PERMISSIVE FOR delete TO member USING (user_id = (SELECT rlskit.user_id())
                                                                                      AND role = 'member');

COMMENT ON POLICY leave_tenant ON public.membership
  IS 'managed by rlskit';

CREATE POLICY admin_remove ON public.membership AS PERMISSIVE FOR all TO tenant_admin USING (TRUE);

COMMENT ON POLICY admin_remove ON public.membership
  IS 'managed by rlskit';

CREATE POLICY read_only_select ON public.membership AS PERMISSIVE FOR select TO read_only USING (TRUE);

COMMENT ON POLICY read_only_select ON public.membership
  IS 'managed by rlskit';

CREATE POLICY tenant_isolation ON public.flow AS RESTRICTIVE FOR all TO PUBLIC USING (tenant_id = (SELECT rlskit.tenant_id())) WITH CHECK (tenant_id = (SELECT rlskit.tenant_id()));

COMMENT ON POLICY tenant_isolation ON public.flow
  IS 'managed by rlskit';

CREATE POLICY read_only_select ON public.flow AS PERMISSIVE FOR select TO read_only USING (TRUE);

COMMENT ON POLICY read_only_select ON public.flow
  IS 'managed by rlskit';

CREATE POLICY member_insert ON public.flow AS PERMISSIVE FOR insert TO member WITH CHECK (TRUE);

COMMENT ON POLICY member_insert ON public.flow
  IS 'managed by rlskit';

CREATE POLICY member_update ON public.flow AS PERMISSIVE FOR update TO member USING (TRUE) WITH CHECK (TRUE);

COMMENT ON POLICY member_update ON public.flow
  IS 'managed by rlskit';

CREATE POLICY tenant_admin_delete ON public.flow AS PERMISSIVE FOR delete TO tenant_admin USING (TRUE);

COMMENT ON POLICY tenant_admin_delete ON public.flow
  IS 'managed by rlskit';

CREATE VIEW public.member_directory
  WITH (security_invoker = true
      , security_barrier = true)
  AS SELECT u.id
          , u.email
          , u.first_name
     FROM users AS u
          INNER JOIN membership AS m ON m.user_id = u.id;

COMMENT ON VIEW public.member_directory
  IS 'managed by rlskit';

GRANT SELECT
  ON TABLE public.member_directory
  TO member;

INSERT INTO alembic_version (version_num) VALUES ('5fb1d6533171') RETURNING alembic_version.version_num;

COMMIT;


-- ==== downgrade ====
BEGIN;

-- Running downgrade 5fb1d6533171 -> 

REVOKE SELECT
  ON TABLE public.member_directory
  FROM member;

DROP VIEW public.member_directory;

DROP POLICY tenant_admin_delete ON public.flow;

DROP POLICY member_update ON public.flow;

DROP POLICY member_insert ON public.flow;

DROP POLICY read_only_select ON public.flow;

DROP POLICY tenant_isolation ON public.flow;

DROP POLICY read_only_select ON public.membership;

DROP POLICY admin_remove ON public.membership;

DROP POLICY leave_tenant ON public.membership;

DROP POLICY tenant_isolation ON public.membership;

DROP POLICY fellow_members ON public.users;

DROP POLICY tenant_admin_update ON public.tenant;

DROP POLICY read_only_select ON public.tenant;

DROP POLICY tenant_isolation ON public.tenant;

ALTER TABLE public.flow NO FORCE ROW LEVEL SECURITY;

ALTER TABLE public.flow DISABLE ROW LEVEL SECURITY;

ALTER TABLE public.membership NO FORCE ROW LEVEL SECURITY;

ALTER TABLE public.membership DISABLE ROW LEVEL SECURITY;

ALTER TABLE public.users NO FORCE ROW LEVEL SECURITY;

ALTER TABLE public.users DISABLE ROW LEVEL SECURITY;

ALTER TABLE public.tenant NO FORCE ROW LEVEL SECURITY;

ALTER TABLE public.tenant DISABLE ROW LEVEL SECURITY;

REVOKE SELECT
     , INSERT
     , UPDATE
     , DELETE
  ON TABLE public.flow
  FROM tenant_admin;

REVOKE SELECT
     , INSERT
     , UPDATE
  ON TABLE public.flow
  FROM member;

REVOKE SELECT
  ON TABLE public.flow
  FROM read_only;

REVOKE SELECT
     , INSERT
     , UPDATE
     , DELETE
  ON TABLE public.membership
  FROM tenant_admin;

REVOKE SELECT
     , DELETE
  ON TABLE public.membership
  FROM member;

REVOKE SELECT
  ON TABLE public.membership
  FROM read_only;

REVOKE SELECT (id, email, first_name, last_name)
  ON TABLE public.users
  FROM read_only;

REVOKE UPDATE (name)
  ON TABLE public.tenant
  FROM tenant_admin;

REVOKE SELECT
  ON TABLE public.tenant
  FROM read_only;

REVOKE USAGE
  ON SCHEMA public
  FROM tenant_admin;

REVOKE USAGE
  ON SCHEMA public
  FROM member;

REVOKE USAGE
  ON SCHEMA public
  FROM read_only;

REVOKE USAGE
  ON SCHEMA rlskit
  FROM tenant_admin;

REVOKE USAGE
  ON SCHEMA rlskit
  FROM member;

REVOKE USAGE
  ON SCHEMA rlskit
  FROM read_only;

REVOKE tenant_admin FROM app_authenticator;

REVOKE member FROM app_authenticator;

REVOKE read_only FROM app_authenticator;

REVOKE member FROM tenant_admin;

REVOKE read_only FROM member;

DROP ROLE IF EXISTS app_authenticator;

DROP ROLE IF EXISTS tenant_admin;

DROP ROLE IF EXISTS member;

DROP ROLE IF EXISTS read_only;

DROP FUNCTION IF EXISTS rlskit.tenant_id ();

DROP FUNCTION IF EXISTS rlskit.user_id ();

DROP FUNCTION IF EXISTS rlskit.department ();

DROP FUNCTION IF EXISTS rlskit.claim (name text);

DROP SCHEMA IF EXISTS rlskit;

DROP INDEX ix_membership_user_id;

DROP TABLE membership;

DROP INDEX flow_tenant_created;

DROP TABLE flow;

DROP TABLE users;

DROP TABLE tenant;

DELETE FROM alembic_version WHERE alembic_version.version_num = '5fb1d6533171';

COMMIT;

