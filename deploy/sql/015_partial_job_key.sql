-- 015_partial_job_key: the job key's uniqueness is a partial unique index.
--
-- jobs_job_key_key was a UNIQUE constraint, so its btree held an entry for
-- every job, NULL keys included, and PostgreSQL inserts a new entry into it
-- each time a job's row changes (a claim, a failure or release: none of them
-- can be a HOT update, the state is in the partial indexes' predicates). Most
-- jobs have no key. A unique index on the keys alone (where job_key is not
-- null) enforces the same rule, jobs with a key unique among themselves,
-- and skips the others: a claim of 100 no-op jobs took a fifth less server
-- time (docs/benchmarks.md). Lookups by key (add_job's `j.job_key = $1`) use
-- it, as `=` never holds for a NULL.
--
-- chain_job named the constraint in its ON CONFLICT; it is redefined from its
-- newest definition (006) with the index's columns and predicate instead.
create unique index jobs_job_key_idx on rlsworker.jobs (job_key) where job_key is not null;
alter table rlsworker.jobs drop constraint jobs_job_key_key;

create or replace function rlsworker_api.chain_job(task text, payload jsonb default '{}',
                                                   run_at timestamptz default null,
                                                   job_key text default null)
returns bigint
language plpgsql security definer set search_path = pg_catalog, pg_temp as $$
-- the ON CONFLICT's job_key is the table's column, not the parameter
#variable_conflict use_column
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
    on conflict (job_key) where job_key is not null do nothing
    returning id into v_id;
    if v_id is null then
        select j.id into v_id from rlsworker.jobs j where j.job_key = v_key;
    end if;
    return v_id;
end $$;
