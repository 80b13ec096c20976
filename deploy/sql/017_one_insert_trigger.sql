-- 017_one_insert_trigger: an insert into rlsworker.jobs fires one row
-- trigger, without a WHEN clause.
--
-- 011 left two BEFORE INSERT row triggers with WHEN clauses
-- (jobs_before_insert: register a named queue, wake the workers;
-- jobs_check_run_as: refuse a bad run_as). PostgreSQL reads a trigger's
-- WHEN clause back from its stored text and prepares it again for every
-- statement, and every add_job call is its own INSERT: the two clauses took
-- about a fifth of a per-row add_job (docs/benchmarks.md, "Enqueue"). Now
-- one trigger without WHEN does both, in the same order for each row as
-- before: run_as first, then the
-- queue and the wake-up, each remembered in transaction-local settings as
-- 011 did. jobs_check_run_as stays for updates of run_as only.
--
-- rlsworker.refuse_run_as(v) is 011's check_run_as body (its newest
-- definition) as a plain function, so both triggers call it;
-- check_run_as() becomes a wrapper. Messages, SQLSTATEs and hints are
-- unchanged.
create function rlsworker.refuse_run_as(v text) returns void
language plpgsql set search_path = pg_catalog, pg_temp as $$
declare
    r pg_roles;
    why text;
    code text;
begin
    if v is null or v in ('user', 'system') then
        return;
    end if;
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
    -- 001's jobs_run_as_check, which 011 moved into the trigger: an existing
    -- role whose name is not a plain identifier (a quoted "my role")
    if v !~ '^[A-Za-z_][A-Za-z0-9_$-]*$' or length(v) > 63 then
        raise exception using errcode = '23514', schema = 'rlsworker', table = 'jobs',
            constraint = 'jobs_run_as_check',
            message = 'new row for relation "jobs" violates check constraint "jobs_run_as_check"';
    end if;
end $$;

revoke execute on function rlsworker.refuse_run_as(text) from public;

create or replace function rlsworker.check_run_as() returns trigger
language plpgsql set search_path = pg_catalog, pg_temp as $$
begin
    perform rlsworker.refuse_run_as(new.run_as);
    return new;
end $$;

create or replace function rlsworker.jobs_before_insert() returns trigger
language plpgsql set search_path = pg_catalog, pg_temp as $$
begin
    if new.run_as is not null and new.run_as <> 'user' and new.run_as <> 'system' then
        perform rlsworker.refuse_run_as(new.run_as);
    end if;
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

drop trigger jobs_before_insert on rlsworker.jobs;
create trigger jobs_before_insert before insert on rlsworker.jobs
    for each row execute function rlsworker.jobs_before_insert();

drop trigger jobs_check_run_as on rlsworker.jobs;
create trigger jobs_check_run_as before update of run_as on rlsworker.jobs
    for each row when (new.run_as is not null and new.run_as not in ('user', 'system'))
    execute function rlsworker.check_run_as();
