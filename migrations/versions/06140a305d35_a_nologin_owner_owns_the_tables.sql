-- Revision 06140a305d35: a NOLOGIN owner owns the tables
-- Revises: 1faa6ee621af
-- Summary: +1 role, +4 owners
-- The exact SQL of 06140a305d35_a_nologin_owner_owns_the_tables.py for PostgreSQL 18, for review; apply the revision with `rlskit migrate`.

-- ==== upgrade ====
BEGIN;

-- Running upgrade 1faa6ee621af -> 06140a305d35

DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'owner') THEN
    CREATE ROLE owner WITH NOLOGIN
                       INHERIT;
  END IF;
END
$$;

COMMENT ON ROLE owner
  IS 'managed by rlskit';

ALTER TABLE public.tenant OWNER TO owner;

ALTER TABLE public.users OWNER TO owner;

ALTER TABLE public.membership OWNER TO owner;

ALTER TABLE public.flow OWNER TO owner;

UPDATE alembic_version SET version_num='06140a305d35' WHERE alembic_version.version_num = '1faa6ee621af';

COMMIT;


-- ==== downgrade ====
BEGIN;

-- Running downgrade 06140a305d35 -> 1faa6ee621af

ALTER TABLE public.flow OWNER TO CURRENT_USER;

ALTER TABLE public.membership OWNER TO CURRENT_USER;

ALTER TABLE public.users OWNER TO CURRENT_USER;

ALTER TABLE public.tenant OWNER TO CURRENT_USER;

DROP ROLE IF EXISTS owner;

UPDATE alembic_version SET version_num='1faa6ee621af' WHERE alembic_version.version_num = '06140a305d35';

COMMIT;

