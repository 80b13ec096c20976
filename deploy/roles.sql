-- Roles for rlsworker, shaped like the ones in Neon's guide "Row-Level
-- Security with Drizzle" (https://neon.tech/docs/guides/rls-drizzle).
--
-- Run once per cluster as a superuser (roles are cluster-wide), with psql:
--
--   psql -v ON_ERROR_STOP=1 \
--        -v owner_password=... -v authenticated_password=... \
--        -v moderator_password=... -v admin_backend_password=... \
--        -f deploy/roles.sql
--
-- deploy/local-pg.sh does this for you with generated passwords. Running it
-- again is safe: missing roles are created, existing ones get the attributes
-- and passwords below again.
--
-- The per-database part of the guide (GRANT USAGE ON SCHEMA public, the table
-- grants and ALTER DEFAULT PRIVILEGES) runs as the owner inside each app
-- database: see deploy/demo/schema.sql.

\set ON_ERROR_STOP on
set password_encryption = 'scram-sha-256';

-- neondb_owner: the app's administrative role. It owns the database and the
-- tables, and has BYPASSRLS like Neon's neondb_owner, but is not a superuser.
-- rlsworker uses it as DATABASE_URL: to migrate schema rlsworker, claim jobs
-- and run system tasks.
select 'create role neondb_owner'
where not exists (select from pg_roles where rolname = 'neondb_owner') \gexec
alter role neondb_owner with login bypassrls nosuperuser nocreaterole nocreatedb
    password :'owner_password';

-- authenticated_backend: Neon's "authenticated" role as used from a backend.
-- LOGIN, no BYPASSRLS, never a superuser. rlsworker uses it as
-- DATABASE_AUTHENTICATED_URL and runs user-scoped jobs there, after
-- set_config('request.jwt.claims', <claims>, true) in the job's transaction.
select 'create role authenticated_backend'
where not exists (select from pg_roles where rolname = 'authenticated_backend') \gexec
alter role authenticated_backend with login nobypassrls nosuperuser nocreaterole
    nocreatedb password :'authenticated_password';

-- moderator_backend and admin_backend: the guide's extra restricted roles,
-- each with its own policies (moderators read every row, admins also modify
-- every row). rlsworker maps them to URLs in its config for `run_as: <role>`.
select 'create role moderator_backend'
where not exists (select from pg_roles where rolname = 'moderator_backend') \gexec
alter role moderator_backend with login nobypassrls nosuperuser nocreaterole
    nocreatedb password :'moderator_password';

select 'create role admin_backend'
where not exists (select from pg_roles where rolname = 'admin_backend') \gexec
alter role admin_backend with login nobypassrls nosuperuser nocreaterole
    nocreatedb password :'admin_backend_password';
