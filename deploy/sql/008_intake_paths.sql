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
