-- 002_cron: cron ticks. Each cron id remembers the last tick that fired, so a
-- tick runs once across any number of workers and is never re-fired after
-- its job succeeded and left rlsworker.jobs.

create table rlsworker.cron_state (
    id         text primary key check (id ~ '^[A-Za-z0-9_.:-]{1,128}$'),
    last_tick  timestamptz not null,
    task       text not null,
    job_id     bigint,
    updated_at timestamptz not null default now()
);

comment on table rlsworker.cron_state is
    'one row per crontab id: the newest tick fired (it only moves forward)';

-- Fires tick p_tick of cron job p_id: advances last_tick (only forward) and
-- enqueues the job with job_key 'cron:<id>:<tick>' and the payload's _cron
-- member set, in one transaction. Returns the job id, or null when this tick
-- (or a later one) was already fired by some worker.
create function rlsworker.cron_fire(
    p_id           text,
    p_tick         timestamptz,
    p_task         text,
    p_payload      jsonb,
    p_backfilled   boolean,
    p_queue        text default null,
    p_priority     int default 0,
    p_max_attempts int default null,
    p_run_as       text default null,
    p_subject      text default null
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
    -- The row lock serializes workers racing for the same tick; the loser
    -- re-checks the WHERE against the winner's row and updates nothing.
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
        subject => p_subject,
        run_as => p_run_as,
        job_key_mode => 'keep');
    update rlsworker.cron_state set job_id = v_job where id = p_id;
    return v_job;
end $$;

-- What a starting worker needs for backfill: the last fired tick per id, as
-- Unix seconds.
create function rlsworker.cron_last_ticks()
returns table (id text, last_tick bigint)
language sql stable set search_path = pg_catalog, pg_temp as $$
    select s.id, extract(epoch from s.last_tick)::bigint from rlsworker.cron_state s;
$$;

revoke execute on function rlsworker.cron_fire(text, timestamptz, text, jsonb, boolean,
    text, int, int, text, text) from public;
revoke execute on function rlsworker.cron_last_ticks() from public;
