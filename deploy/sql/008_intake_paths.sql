-- 008_intake_paths: every way a job comes in works as documented (issue 15).

-- Cron lines for a user: a user task's line gets the claims {"sub": subject}
-- (the crontab is the operator's, a trusted path; docs/cron.md). Same as
-- 002's cron_fire plus p_claims; 002's ten-argument form stays for workers
-- of an older version.
create function rlsworker.cron_fire(
    p_id           text,
    p_tick         timestamptz,
    p_task         text,
    p_payload      jsonb,
    p_backfilled   boolean,
    p_queue        text,
    p_priority     int,
    p_max_attempts int,
    p_run_as       text,
    p_subject      text,
    p_claims       jsonb
) returns bigint
language plpgsql set search_path = pg_catalog, pg_temp as $$
declare
    v_ts text := to_char(p_tick at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"');
    v_job bigint;
begin
    if p_id is null or p_tick is null or p_task is null then
        raise exception 'rlsworker.cron_fire: id, tick and task must not be null';
    end if;
    if p_payload is not null and jsonb_typeof(p_payload) <> 'object' then
        raise exception 'rlsworker.cron_fire: payload must be a JSON object';
    end if;
    insert into rlsworker.cron_state as s (id, last_tick, task)
    values (p_id, p_tick, p_task)
    on conflict (id) do update
        set last_tick = excluded.last_tick, task = excluded.task, updated_at = now()
        where s.last_tick < excluded.last_tick;
    if not found then
        return null;
    end if;
    v_job := rlsworker.add_job(
        task => p_task,
        payload => coalesce(p_payload, '{}'::jsonb) || jsonb_build_object(
            '_cron', jsonb_build_object('ts', v_ts, 'backfilled', coalesce(p_backfilled, false))),
        queue => p_queue,
        job_key => 'cron:' || p_id || ':' || v_ts,
        priority => coalesce(p_priority, 0),
        max_attempts => p_max_attempts,
        claims => p_claims,
        subject => p_subject,
        run_as => p_run_as,
        job_key_mode => 'keep');
    update rlsworker.cron_state set job_id = v_job where id = p_id;
    return v_job;
end $$;

revoke execute on function rlsworker.cron_fire(text, timestamptz, text, jsonb, boolean,
    text, int, int, text, text, jsonb) from public;

-- Webhooks for a subject: a source may name where its subject comes from
-- (webhook.<source>.subject, a JSON pointer into the body); a user task's job
-- then gets the claims {"sub": subject}. Same as 004's add_webhook_job plus
-- p_subject and p_claims; the seen row and the job still commit together, so
-- a delivery whose job could not be stored is not remembered.
create function rlsworker.add_webhook_job(p_source text, p_webhook_id text, p_task text,
                                          p_payload jsonb, p_subject text, p_claims jsonb,
                                          out job_id bigint, out replay boolean)
language plpgsql set search_path = pg_catalog, pg_temp as $$
begin
    delete from rlsworker.webhook_seen s where s.seen_at < now() - interval '7 days';
    insert into rlsworker.webhook_seen (source, webhook_id)
    values (p_source, p_webhook_id)
    on conflict do nothing;
    if not found then
        select s.job_id into job_id from rlsworker.webhook_seen s
        where s.source = p_source and s.webhook_id = p_webhook_id;
        replay := true;
        return;
    end if;
    job_id := rlsworker.add_job(task => p_task, payload => p_payload, subject => p_subject,
                                claims => p_claims);
    update rlsworker.webhook_seen s set job_id = add_webhook_job.job_id
    where s.source = p_source and s.webhook_id = p_webhook_id;
    replay := false;
end $$;

revoke execute on function rlsworker.add_webhook_job(text, text, text, jsonb, text, jsonb)
    from public;

-- Cancelled is not dead: an operator's cancel ends a job in its own state,
-- kept (like dead) until `jobs retry` puts it back or it is deleted.
alter table rlsworker.jobs drop constraint jobs_state_check;
alter table rlsworker.jobs add constraint jobs_state_check
    check (state in ('queued', 'running', 'dead', 'cancelled'));

-- Each failed attempt's error, newest last, at most the last 10, each at
-- most 1024 characters: {"attempt": N, "at": timestamptz, "error": text}.
-- last_error stays the newest one.
alter table rlsworker.jobs add column errors jsonb not null default '[]'
    check (jsonb_typeof(errors) = 'array');
comment on column rlsworker.jobs.errors is
    'the last 10 attempts'' errors (each at most 1024 characters), oldest first';

create function rlsworker.push_error(p_errors jsonb, p_attempt int, p_error text)
returns jsonb
language sql stable set search_path = pg_catalog, pg_temp as $$
    select coalesce(jsonb_agg(e order by n), '[]'::jsonb) from (
        select e, n from jsonb_array_elements(
            coalesce(p_errors, '[]'::jsonb) || jsonb_build_array(jsonb_build_object(
                'attempt', p_attempt, 'at', now(), 'error', left(p_error, 1024))))
            with ordinality as t(e, n)
        order by n desc limit 10) x;
$$;

-- Runs when a running job stops running (fail_jobs, sweep_lost,
-- release_jobs), whichever version of those functions is installed (007
-- replaces them): a failed or lost attempt (attempts unchanged, an error
-- set) is added to errors; a job an operator asked to cancel that ends dead
-- ends cancelled. A job_key replace (add_job clears last_error) starts a
-- new story.
create function rlsworker.jobs_before_update() returns trigger
language plpgsql set search_path = pg_catalog, pg_temp as $$
begin
    if old.state = 'running' and new.state <> 'running' then
        if new.attempts = old.attempts and new.last_error is not null then
            new.errors := rlsworker.push_error(old.errors, new.attempts, new.last_error);
        end if;
        if new.state = 'dead' and old.cancel_requested then
            new.state := 'cancelled';
        end if;
    elsif new.last_error is null and old.last_error is not null then
        new.errors := '[]';
    end if;
    return new;
end $$;

create trigger jobs_before_update before update on rlsworker.jobs
    for each row
    when ((old.state = 'running' and new.state <> 'running')
          or (new.last_error is null and old.last_error is not null))
    execute function rlsworker.jobs_before_update();

-- Cancels the given queued jobs at once; records each in the history when
-- migration 007's rlsworker.job_history exists. Returns how many.
create function rlsworker.cancel_queued(p_ids bigint[]) returns int
language plpgsql set search_path = pg_catalog, pg_temp as $$
declare
    v_ids bigint[];
begin
    with u as (
        update rlsworker.jobs j set state = 'cancelled', last_error = 'cancelled by operator',
            updated_at = now()
        where j.id = any (p_ids) and j.state = 'queued'
        returning j.id
    )
    select coalesce(array_agg(id), '{}') into v_ids from u;
    if cardinality(v_ids) > 0 and to_regclass('rlsworker.job_history') is not null then
        execute 'insert into rlsworker.job_history (job_id, task, queue, subject, run_as,'
            ' attempts, outcome, error, created_at)'
            ' select id, task, queue, subject, run_as, attempts, ''cancelled'','
            ' ''cancelled by operator'', created_at from rlsworker.jobs where id = any ($1)'
            using v_ids;
    end if;
    return cardinality(v_ids);
end $$;

-- One job: a queued job is cancelled at once, a running one is flagged and
-- its worker told to stop it (it then ends cancelled).
create or replace function rlsworker.cancel_job(p_id bigint) returns text
language plpgsql set search_path = pg_catalog, pg_temp as $$
declare
    v_state text;
begin
    select state into v_state from rlsworker.jobs where id = p_id for update;
    if not found then
        return 'not found';
    end if;
    if v_state = 'queued' then
        perform rlsworker.cancel_queued(array[p_id]);
        return 'cancelled';
    elsif v_state = 'running' then
        update rlsworker.jobs set cancel_requested = true, updated_at = now() where id = p_id;
        perform pg_notify('rlsworker_cancel', p_id::text);
        return 'cancelling';
    elsif v_state = 'cancelled' then
        return 'already cancelled';
    end if;
    return 'already dead';
end $$;

-- The jobs a bulk action picks: every filter given must match (a null
-- filter matches all); at least one must be given.
create function rlsworker.jobs_matching(p_task text, p_queue text, p_state text,
                                        p_subject text, p_key_prefix text,
                                        p_states text[])
returns setof bigint
language plpgsql stable set search_path = pg_catalog, pg_temp as $$
begin
    if p_task is null and p_queue is null and p_state is null and p_subject is null
       and p_key_prefix is null then
        raise exception 'give at least one filter (task, queue, state, subject, key_prefix)';
    end if;
    if p_state is not null and not (p_state = any (p_states)) then
        raise exception 'state must be one of %, got "%"', array_to_string(p_states, ', '),
            p_state;
    end if;
    return query
        select j.id from rlsworker.jobs j
        where j.state = any (case when p_state is null then p_states else array[p_state] end)
          and (p_task is null or j.task = p_task)
          and (p_queue is null or j.queue = p_queue)
          and (p_subject is null or j.subject = p_subject)
          and (p_key_prefix is null or left(j.job_key, length(p_key_prefix)) = p_key_prefix)
        order by j.id;
end $$;

-- Bulk cancel: queued jobs are cancelled at once, running ones are asked to
-- stop. Returns how many of each.
create function rlsworker.cancel_jobs(task text default null, queue text default null,
                                      state text default null, subject text default null,
                                      key_prefix text default null,
                                      out cancelled int, out cancelling int)
language plpgsql set search_path = pg_catalog, pg_temp as $$
declare
    v_ids bigint[];
    v_running bigint[];
begin
    select coalesce(array_agg(id), '{}') into v_ids from (
        select j.id from rlsworker.jobs j
        where j.id in (select rlsworker.jobs_matching(cancel_jobs.task, cancel_jobs.queue,
                           cancel_jobs.state, cancel_jobs.subject, cancel_jobs.key_prefix,
                           array['queued', 'running']))
        for update) l;
    cancelled := rlsworker.cancel_queued(v_ids);
    with u as (
        update rlsworker.jobs j set cancel_requested = true, updated_at = now()
        where j.id = any (v_ids) and j.state = 'running'
        returning j.id
    )
    select coalesce(array_agg(id), '{}') into v_running from u;
    perform pg_notify('rlsworker_cancel', r::text) from unnest(v_running) r;
    cancelling := cardinality(v_running);
end $$;

-- Bulk retry: dead and cancelled jobs (or state => 'queued' to run waiting
-- ones now) go back to the queue with attempts reset. Returns how many.
create function rlsworker.retry_jobs(task text default null, queue text default null,
                                     state text default null, subject text default null,
                                     key_prefix text default null)
returns int
language plpgsql set search_path = pg_catalog, pg_temp as $$
declare
    n int;
begin
    update rlsworker.jobs j set state = 'queued', attempts = 0, run_at = now(),
        cancel_requested = false, updated_at = now()
    where j.id in (select rlsworker.jobs_matching(retry_jobs.task, retry_jobs.queue,
                       retry_jobs.state, retry_jobs.subject, retry_jobs.key_prefix,
                       array['dead', 'cancelled', 'queued']));
    get diagnostics n = row_count;
    if n > 0 then
        perform pg_notify('rlsworker_jobs', '');
    end if;
    return n;
end $$;

revoke execute on all functions in schema rlsworker from public;
