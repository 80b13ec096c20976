-- 011_fast_enqueue: enqueueing costs what the row costs (issue 11).
--
-- Every add_job call is its own INSERT statement, and before this migration
-- each statement paid for (docs/benchmarks.md, "Enqueue"):
--   * 001's statement trigger jobs_after_insert: a transition table of the
--     new rows and two queries over it (named queues, ready rows);
--   * the nine check constraints of 001 and 008: a table's check constraints
--     are read back from their stored text and planned again by every INSERT
--     or UPDATE statement (with the trigger gone, 40 % of what a call cost);
--   * jobs_task_check's pattern, whose bounded repetition {1,128} costs about
--     10 us a row in the regex engine (most of a set-based insert's cost).
-- What it keeps: the same row rules under the same constraint names
-- (SQLSTATE 23514), add_job's and add_jobs' messages, 006's run_as trigger
-- answering first, a named queue's row once a job names it, and one
-- notification on 'rlsworker_jobs' when a transaction that queued a ready
-- job commits (none when it rolls back).
-- Starting points: add_jobs is 005's definition (its only one); the trigger
-- jobs_before_update is re-created as 008 made it; check_run_as is 006's
-- definition plus 001's run_as pattern; add_job (001) and
-- jobs_before_update() (008) are not changed; jobs_after_insert (001) is
-- dropped.

-- Eight row rules become domains, whose checks are planned once a session.
-- The ninth, run_as's pattern, moves into 006's trigger check_run_as, after
-- its own checks, so a bad run_as is still refused first with the trigger's
-- message and hint (run_as null, user and system never needed either). The
-- task and run_as patterns lose their bounded repetition; the lengths are
-- checked apart, with the same limits. A violation's message now names the
-- domain ('value for domain rlsworker.job_task violates check constraint
-- "jobs_task_check"'), is raised before the BEFORE triggers run, and no
-- longer prints the failing row (which held the claims). Changing the column
-- types rewrites rlsworker.jobs once (an exclusive lock while it is copied).
create domain rlsworker.job_task as text
    constraint jobs_task_check check (value ~ '^[A-Za-z0-9_.:-]+$' and length(value) <= 128);
create domain rlsworker.job_queue as text
    constraint jobs_queue_check check (length(value) between 1 and 128);
create domain rlsworker.job_payload as jsonb
    constraint jobs_payload_check check (jsonb_typeof(value) = 'object');
create domain rlsworker.job_claims as jsonb
    constraint jobs_claims_check check (jsonb_typeof(value) = 'object');
create domain rlsworker.job_subject as text
    constraint jobs_subject_check check (length(value) between 1 and 255);
create domain rlsworker.job_max_attempts as int
    constraint jobs_max_attempts_check check (value between 1 and 1000);
create domain rlsworker.job_state as text
    constraint jobs_state_check check (value in ('queued', 'running', 'dead', 'cancelled'));
create domain rlsworker.job_errors as jsonb
    constraint jobs_errors_check check (jsonb_typeof(value) = 'array');

-- A trigger whose WHEN names a column must go while its type changes; it
-- comes back as 008 made it.
drop trigger jobs_before_update on rlsworker.jobs;

alter table rlsworker.jobs
    drop constraint jobs_task_check,
    drop constraint jobs_queue_check,
    drop constraint jobs_payload_check,
    drop constraint jobs_claims_check,
    drop constraint jobs_subject_check,
    drop constraint jobs_run_as_check,
    drop constraint jobs_max_attempts_check,
    drop constraint jobs_state_check,
    drop constraint jobs_errors_check,
    alter column task type rlsworker.job_task,
    alter column queue type rlsworker.job_queue,
    alter column payload type rlsworker.job_payload,
    alter column claims type rlsworker.job_claims,
    alter column subject type rlsworker.job_subject,
    alter column max_attempts type rlsworker.job_max_attempts,
    alter column state type rlsworker.job_state,
    alter column errors type rlsworker.job_errors;

create trigger jobs_before_update before update on rlsworker.jobs
    for each row
    when ((old.state = 'running' and new.state <> 'running')
          or (new.last_error is null and old.last_error is not null))
    execute function rlsworker.jobs_before_update();

-- 006's check_run_as (its only definition) with the pattern check after it.
-- The trigger fires for every run_as but null, user and system.
create or replace function rlsworker.check_run_as() returns trigger
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
    -- 001's jobs_run_as_check, which 011 moved here: an existing role whose
    -- name is not a plain identifier (a quoted "my role")
    if v !~ '^[A-Za-z_][A-Za-z0-9_$-]*$' or length(v) > 63 then
        raise exception using errcode = '23514', schema = 'rlsworker', table = 'jobs',
            constraint = 'jobs_run_as_check',
            message = 'new row for relation "jobs" violates check constraint "jobs_run_as_check"';
    end if;
    return new;
end $$;

-- New rows, whichever way they come in (add_job, add_jobs, chain_job, cron,
-- a plain INSERT): register a named queue, wake the workers when a row is
-- ready. A row trigger whose WHEN clause is false for nearly every row:
-- within one transaction the first ready row sends the notification (all
-- the workers need: it is delivered at commit) and the first row of a named
-- queue registers it; transaction-local settings remember both, so later
-- rows skip the call. The settings share the fate of what they record: a
-- rolled-back savepoint undoes the notification, the queue row and the
-- setting together. A BEFORE trigger also runs for a row that ON CONFLICT DO
-- NOTHING then skips (chain_job with a taken key): at worst one needless
-- wake-up. The settings are plain custom settings: SQL in the same
-- transaction that sets rlsworker.enqueue_notified delays the wake-up of
-- that transaction's jobs to a worker's next poll; one that sets
-- rlsworker.enqueue_queue to a queue's name before a job of that new queue
-- is inserted in the same transaction would leave the queue unregistered.
-- Restricted roles reach rlsworker.jobs only through chain_job, which sets
-- no queue.
drop trigger jobs_after_insert on rlsworker.jobs;
drop function rlsworker.jobs_after_insert();

create function rlsworker.jobs_before_insert() returns trigger
language plpgsql set search_path = pg_catalog, pg_temp as $$
begin
    if new.queue is not null
       and new.queue is distinct from current_setting('rlsworker.enqueue_queue', true) then
        insert into rlsworker.queues (name) values (new.queue) on conflict do nothing;
        perform set_config('rlsworker.enqueue_queue', new.queue, true);
    end if;
    if new.run_at <= now()
       and current_setting('rlsworker.enqueue_notified', true) is distinct from 'on' then
        perform pg_notify('rlsworker_jobs', '');
        perform set_config('rlsworker.enqueue_notified', 'on', true);
    end if;
    return new;
end $$;

create trigger jobs_before_insert before insert on rlsworker.jobs
    for each row
    when ((new.queue is not null
           and new.queue is distinct from current_setting('rlsworker.enqueue_queue', true))
          or (new.run_at <= now()
              and current_setting('rlsworker.enqueue_notified', true) is distinct from 'on'))
    execute function rlsworker.jobs_before_insert();

revoke execute on function rlsworker.jobs_before_insert() from public;

-- add_jobs, from 005 (its only definition): the same checks, messages and
-- result. The unkeyed jobs draw their ids from the identity's sequence in
-- array order while the array is read, so the (idx, id) pairs need no
-- second pass (005 numbered the inserted ids and the positions with two
-- window sorts and joined them); one pass finds the first invalid element,
-- and unknown keys are found by removing the known ones rather than by a
-- subquery per element. Drawing the ids needs USAGE on rlsworker.jobs_id_seq
-- (the queue's owner has it; a role granted add_jobs and INSERT on the jobs
-- table would need it too).
create or replace function rlsworker.add_jobs(jobs jsonb)
returns table (idx bigint, id bigint)
language plpgsql set search_path = pg_catalog, pg_temp as $$
declare
    bad record;
    v_seq regclass := pg_get_serial_sequence('rlsworker.jobs', 'id')::regclass;
begin
    if jobs is null or jsonb_typeof(jobs) <> 'array' then
        raise exception 'rlsworker.add_jobs: jobs must be a JSON array of job objects';
    end if;
    select v.ord, v.why into bad
    from (
        select t.ord, case
            when jsonb_typeof(t.j) <> 'object' then 'it is not a JSON object'
            when jsonb_typeof(t.j->'task') is distinct from 'string' then 'task must be a string'
            when t.j - array['task', 'payload', 'run_at', 'queue', 'job_key', 'priority',
                             'max_attempts', 'claims', 'subject', 'run_as'] <> '{}'::jsonb
                then 'it has a key add_job does not take'
            when t.j ? 'payload' and jsonb_typeof(t.j->'payload') <> 'object'
                then 'payload must be a JSON object'
            when t.j ? 'claims' and jsonb_typeof(t.j->'claims') <> 'object'
                then 'claims must be a JSON object'
            when octet_length((t.j->'claims')::text) > 8192
                then 'claims are more than the 8192 bytes allowed'
            when t.j->'claims' ? 'sub' and jsonb_typeof(t.j->'claims'->'sub') <> 'string'
                then 'claims.sub must be a string'
            when t.j ? 'subject' and t.j->'claims' ? 'sub'
                 and t.j->>'subject' <> t.j->'claims'->>'sub'
                then 'subject differs from claims.sub'
            end as why
        from jsonb_array_elements(jobs) with ordinality as t(j, ord)
    ) v
    where v.why is not null
    order by v.ord
    limit 1;
    if found then
        raise exception 'rlsworker.add_jobs: job % is invalid: %', bad.ord, bad.why;
    end if;

    return query
    with specs as materialized (
        select t.ord, t.j, nextval(v_seq) as id
        from jsonb_array_elements(jobs) with ordinality as t(j, ord)
        where not t.j ? 'job_key' or t.j->'job_key' = 'null'::jsonb
    ), ins as (
        insert into rlsworker.jobs (id, task, payload, run_at, queue, priority, max_attempts,
                                    claims, subject, claims_verified_at, run_as)
        overriding system value
        select s.id, s.j->>'task', coalesce(s.j->'payload', '{}'),
               coalesce((s.j->>'run_at')::timestamptz, now()), s.j->>'queue',
               coalesce((s.j->>'priority')::int, 0), (s.j->>'max_attempts')::int,
               s.j->'claims', coalesce(s.j->>'subject', s.j->'claims'->>'sub'),
               case when s.j ? 'claims' then now() end, s.j->>'run_as'
        from specs s
    )
    select s.ord, s.id from specs s order by s.ord;

    return query
    select t.ord, rlsworker.add_job(
        task => t.j->>'task', payload => coalesce(t.j->'payload', '{}'),
        run_at => (t.j->>'run_at')::timestamptz, queue => t.j->>'queue',
        job_key => t.j->>'job_key', priority => coalesce((t.j->>'priority')::int, 0),
        max_attempts => (t.j->>'max_attempts')::int, claims => t.j->'claims',
        subject => t.j->>'subject', run_as => t.j->>'run_as')
    from jsonb_array_elements(jobs) with ordinality as t(j, ord)
    where t.j ? 'job_key' and t.j->'job_key' <> 'null'::jsonb
    order by t.ord;
end $$;

revoke execute on function rlsworker.add_jobs(jsonb) from public;
