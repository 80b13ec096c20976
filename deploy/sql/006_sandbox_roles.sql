-- 006_sandbox_roles: a job's run_as can never name a privileged role, and a
-- chained job stays on the restricted role of the job that chained it.
--
-- The worker is the authority on roles: a user-scoped job resolves its role
-- only among the restricted roles the worker is configured with (that table
-- cannot hold the admin connection). This migration refuses what SQL can
-- already tell is wrong, where the job enters the queue.

-- run_as of every new or changed row (add_job, add_jobs, cron, chain_job):
-- null, user, system, or the name of an existing role that could be a
-- restricted role (not superuser, BYPASSRLS or CREATEROLE, not the owner of
-- the queue, not a reserved name).
create function rlsworker.check_run_as() returns trigger
language plpgsql set search_path = pg_catalog, pg_temp as $$
declare
    r pg_roles;
    why text;
    code text;
    v text := new.run_as;
begin
    if lower(v) in ('public', 'none', 'current_user', 'session_user', 'current_role')
       or lower(v) like 'pg\_%' then
        why := 'it is a reserved name';
        code := '42939';
    else
        select * into r from pg_roles where rolname = v;
        if not found then
            why := 'no role of that name exists';
            code := '42704';
        elsif r.rolsuper or r.rolbypassrls or r.rolcreaterole then
            why := 'that role is a superuser or has BYPASSRLS or CREATEROLE, so row-level '
                   'security would not hold';
            code := '42501';
        elsif exists (select 1 from pg_namespace n
                      where n.nspname = 'rlsworker' and n.nspowner = r.oid) then
            why := 'that role owns the queue';
            code := '42501';
        end if;
    end if;
    if why is not null then
        raise exception using errcode = code,
            message = format('run_as "%s" is refused: %s', left(v, 63), why),
            hint = 'use run_as user (the task''s restricted role), system (a task with '
                   '-- run_as: system), or the name of a restricted role the worker is '
                   'configured with (--role NAME=URL)';
    end if;
    return new;
end $$;

create trigger jobs_check_run_as before insert or update of run_as on rlsworker.jobs
    for each row when (new.run_as is not null and new.run_as not in ('user', 'system'))
    execute function rlsworker.check_run_as();

-- A chained job remembers the job that chained it; the worker then runs it
-- only on the role in run_as (the chaining job's login role) and only when
-- its task opted in with `-- chained: allow`.
alter table rlsworker.jobs add column chained_by bigint;
comment on column rlsworker.jobs.chained_by is
    'set by rlsworker_api.chain_job: the id of the job that chained this one';

-- Built-in tasks never accept chained jobs; the worker checks this too (and
-- every task file's opt-in) when the chained job runs. Keep in step with
-- jobs/builtin.c.
create function rlsworker.builtin_task(p_task text) returns boolean
language sql immutable set search_path = pg_catalog, pg_temp as $$
    select p_task in ('noop', 'http', 'purge_dead_jobs');
$$;

-- Enqueues a follow-up job carrying the running job's own stored claims, to
-- run on the same restricted role (session_user: the role the worker's
-- connection logs in as). Callable only inside a job whose task allows
-- chaining: the worker sets rlsworker.chain_token (transaction-local) for
-- those tasks alone. The caller cannot pass claims or a role. A job_key is
-- namespaced by the subject ('c<length>:<subject>:<key>'), so it can never
-- match a cron tick's, an HTTP intake job's or another user's key; when a job
-- with that key exists the first one stays (as job_key_mode => 'keep').
create or replace function rlsworker_api.chain_job(task text, payload jsonb default '{}',
                                                   run_at timestamptz default null,
                                                   job_key text default null)
returns bigint
language plpgsql security definer set search_path = pg_catalog, pg_temp as $$
declare
    v_token uuid;
    v_parent rlsworker.jobs;
    v_role text := session_user;
    v_key text;
    v_id bigint;
begin
    begin
        v_token := nullif(current_setting('rlsworker.chain_token', true), '')::uuid;
    exception when invalid_text_representation then
        v_token := null;
    end;
    if v_token is null then
        raise exception using errcode = '42501',
            message = 'rlsworker_api.chain_job may only be called by a running job whose task has "-- chain: allow"';
    end if;
    select * into v_parent from rlsworker.jobs j
    where j.lock_token = v_token and j.state = 'running';
    if not found or v_parent.claims is null then
        raise exception using errcode = '42501',
            message = 'rlsworker_api.chain_job: no running user job holds this chain token';
    end if;
    if v_parent.claims::text is distinct from
       (nullif(current_setting('request.jwt.claims', true), ''))::jsonb::text then
        raise exception using errcode = '42501',
            message = 'rlsworker_api.chain_job: the current claims are not the running job''s claims';
    end if;
    if exists (select 1 from pg_roles r where r.rolname = v_role
               and (r.rolsuper or r.rolbypassrls or r.rolcreaterole)) then
        raise exception using errcode = '42501',
            message = 'rlsworker_api.chain_job: the calling role is not a restricted role';
    end if;
    if chain_job.task is null or rlsworker.builtin_task(chain_job.task) then
        raise exception using errcode = '42501',
            message = format('rlsworker_api.chain_job: task "%s" cannot be chained to; '
                             'chain to a task file with "-- chained: allow"',
                             left(coalesce(chain_job.task, 'null'), 128));
    end if;
    if payload is null or jsonb_typeof(payload) <> 'object' then
        raise exception 'rlsworker_api.chain_job: payload must be a JSON object';
    end if;
    if chain_job.job_key is not null then
        if v_parent.subject is null then
            raise exception 'rlsworker_api.chain_job: a job_key needs a running job with a subject (claims.sub)';
        end if;
        v_key := 'c' || length(v_parent.subject) || ':' || v_parent.subject || ':'
                 || chain_job.job_key;
    end if;
    insert into rlsworker.jobs (task, payload, run_at, job_key, claims, subject,
                                claims_verified_at, run_as, chained_by)
    values (chain_job.task, chain_job.payload, coalesce(chain_job.run_at, now()),
            v_key, v_parent.claims, v_parent.subject,
            v_parent.claims_verified_at, v_role, v_parent.id)
    on conflict on constraint jobs_job_key_key do nothing
    returning id into v_id;
    if v_id is null then
        select j.id into v_id from rlsworker.jobs j where j.job_key = v_key;
    end if;
    return v_id;
end $$;

revoke execute on function rlsworker.check_run_as() from public;
revoke execute on function rlsworker.builtin_task(text) from public;
