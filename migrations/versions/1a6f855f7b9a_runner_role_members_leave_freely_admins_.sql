-- Revision 1a6f855f7b9a: runner role, members leave freely, admins remove by DELETE only, directory shows last names
-- Revises: 5fb1d6533171
-- Summary: +1 role, +1 membership, +4 grants, -1 grant, +5 policies, ~1 policy, -1 policy, +1 view, -1 view
-- The exact SQL of 1a6f855f7b9a_runner_role_members_leave_freely_admins_.py for PostgreSQL 18, for review; apply the revision with `rlskit migrate`.

-- ==== upgrade ====
BEGIN;

-- Running upgrade 5fb1d6533171 -> 1a6f855f7b9a

REVOKE SELECT
  ON TABLE public.member_directory
  FROM member;

DROP POLICY admin_remove ON public.membership;

DROP VIEW public.member_directory;

DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'runner') THEN
    CREATE ROLE runner WITH NOLOGIN
                        INHERIT;
  END IF;
END
$$;

COMMENT ON ROLE runner
  IS 'managed by rlskit';

GRANT runner TO app_authenticator WITH INHERIT FALSE
                                     , SET TRUE;

GRANT USAGE
  ON SCHEMA rlskit
  TO runner;

GRANT USAGE
  ON SCHEMA public
  TO runner;

GRANT SELECT
    , UPDATE (status)
  ON TABLE public.flow
  TO runner;

ALTER POLICY leave_tenant ON public.membership USING (user_id = (SELECT rlskit.user_id()));

CREATE POLICY admin_remove ON public.membership AS PERMISSIVE FOR delete TO tenant_admin USING (TRUE);

COMMENT ON POLICY admin_remove ON public.membership
  IS 'managed by rlskit';

CREATE POLICY tenant_admin_insert ON public.membership AS PERMISSIVE FOR insert TO tenant_admin WITH CHECK (TRUE);

COMMENT ON POLICY tenant_admin_insert ON public.membership
  IS 'managed by rlskit';

CREATE POLICY tenant_admin_update ON public.membership AS PERMISSIVE FOR update TO tenant_admin USING (TRUE) WITH CHECK (TRUE);

COMMENT ON POLICY tenant_admin_update ON public.membership
  IS 'managed by rlskit';

CREATE POLICY runner_select ON public.flow AS PERMISSIVE FOR select TO runner USING (TRUE);

COMMENT ON POLICY runner_select ON public.flow
  IS 'managed by rlskit';

CREATE POLICY runner_update ON public.flow AS PERMISSIVE FOR update TO runner USING (TRUE) WITH CHECK (TRUE);

COMMENT ON POLICY runner_update ON public.flow
  IS 'managed by rlskit';

CREATE VIEW public.member_directory
  WITH (security_invoker = true
      , security_barrier = true)
  AS SELECT u.id
          , u.email
          , u.first_name
          , u.last_name
     FROM users AS u
          INNER JOIN membership AS m ON m.user_id = u.id;

COMMENT ON VIEW public.member_directory
  IS 'managed by rlskit';

GRANT SELECT
  ON TABLE public.member_directory
  TO member;

UPDATE alembic_version SET version_num='1a6f855f7b9a' WHERE alembic_version.version_num = '5fb1d6533171';

COMMIT;


-- ==== downgrade ====
BEGIN;

-- Running downgrade 1a6f855f7b9a -> 5fb1d6533171

REVOKE SELECT
  ON TABLE public.member_directory
  FROM member;

DROP VIEW public.member_directory;

DROP POLICY runner_update ON public.flow;

DROP POLICY runner_select ON public.flow;

DROP POLICY tenant_admin_update ON public.membership;

DROP POLICY tenant_admin_insert ON public.membership;

DROP POLICY admin_remove ON public.membership;

ALTER POLICY leave_tenant ON public.membership USING (user_id = (SELECT rlskit.user_id() AS user_id)
                                                  AND CAST(role AS text) = CAST('member' AS text));

REVOKE SELECT
     , UPDATE (status)
  ON TABLE public.flow
  FROM runner;

REVOKE USAGE
  ON SCHEMA public
  FROM runner;

REVOKE USAGE
  ON SCHEMA rlskit
  FROM runner;

REVOKE runner FROM app_authenticator;

DROP ROLE IF EXISTS runner;

CREATE VIEW public.member_directory (id, email, first_name)
  WITH (security_invoker = true
      , security_barrier = true)
  AS SELECT u.id
          , u.email
          , u.first_name
     FROM users AS u
          INNER JOIN membership AS m ON m.user_id = u.id;

COMMENT ON VIEW public.member_directory
  IS 'managed by rlskit';

CREATE POLICY admin_remove ON public.membership AS PERMISSIVE FOR all TO tenant_admin USING (TRUE);

COMMENT ON POLICY admin_remove ON public.membership
  IS 'managed by rlskit';

GRANT SELECT
  ON TABLE public.member_directory
  TO member;

UPDATE alembic_version SET version_num='5fb1d6533171' WHERE alembic_version.version_num = '1a6f855f7b9a';

COMMIT;

