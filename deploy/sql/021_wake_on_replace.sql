-- 021_wake_on_replace: a job key that replaces a queued job wakes the
-- workers under the same rule as a new job (020): only while one waits for
-- work, and once per transaction.
--
-- add_job's replace path (001) updates the queued row in place, so the
-- insert trigger does not fire, and it ran pg_notify itself on every call.
-- A transaction that notifies commits alone (020's header), so an
-- application that debounces with job keys lost its group commit while the
-- workers were busy, the case 020 is for. The replace path now asks as the
-- trigger does and marks the transaction notified as the trigger does.

-- 001's add_job (its only definition); the replace path wakes as 020's
-- insert trigger does, instead of notifying on every call
create or replace function rlsworker.add_job(
    task         text,
    payload      jsonb default '{}',
    run_at       timestamptz default null,
    queue        text default null,
    job_key      text default null,
    priority     int default 0,
    max_attempts int default null,
    claims       jsonb default null,
    subject      text default null,
    run_as       text default null,
    job_key_mode text default 'replace'
) returns bigint
language plpgsql set search_path = pg_catalog, pg_temp as $$
declare
    v_subject text := subject;
    v_id bigint;
    v_state text;
begin
    if add_job.task is null then
        raise exception 'rlsworker.add_job: task must not be null';
    end if;
    if payload is null or jsonb_typeof(payload) <> 'object' then
        raise exception 'rlsworker.add_job: payload must be a JSON object, got %',
            coalesce(jsonb_typeof(payload), 'null');
    end if;
    if claims is not null then
        if jsonb_typeof(claims) <> 'object' then
            raise exception 'rlsworker.add_job: claims must be a JSON object';
        end if;
        if octet_length(claims::text) > 8192 then
            raise exception 'rlsworker.add_job: claims are % bytes, more than the 8192 allowed',
                octet_length(claims::text);
        end if;
        if claims ? 'sub' and jsonb_typeof(claims->'sub') <> 'string' then
            raise exception 'rlsworker.add_job: claims.sub must be a string';
        end if;
        if v_subject is null then
            v_subject := claims->>'sub';
        elsif claims ? 'sub' and v_subject <> claims->>'sub' then
            raise exception 'rlsworker.add_job: subject "%" differs from claims.sub', v_subject;
        end if;
    end if;
    if job_key_mode not in ('replace', 'keep') then
        raise exception 'rlsworker.add_job: job_key_mode must be replace or keep, got "%"', job_key_mode;
    end if;

    if job_key is not null then
        select j.id, j.state into v_id, v_state
        from rlsworker.jobs j where j.job_key = add_job.job_key for update;
        if found and v_state <> 'running' then
            if job_key_mode = 'replace' then
                update rlsworker.jobs j set
                    task = add_job.task, payload = add_job.payload,
                    run_at = coalesce(add_job.run_at, now()), queue = add_job.queue,
                    priority = coalesce(add_job.priority, 0),
                    max_attempts = add_job.max_attempts, claims = add_job.claims,
                    subject = v_subject,
                    claims_verified_at = case when add_job.claims is null then null else now() end,
                    run_as = add_job.run_as, state = 'queued', attempts = 0,
                    last_error = null, updated_at = now()
                where j.id = v_id;
                if add_job.queue is not null then
                    insert into rlsworker.queues (name) values (add_job.queue) on conflict do nothing;
                end if;
                if coalesce(add_job.run_at, now()) <= now()
                   and current_setting('rlsworker.enqueue_notified', true)
                       is distinct from 'on' then
                    -- as the insert trigger (020): a role allowed to queue
                    -- but not to ask notifies
                    if not has_function_privilege('rlsworker.wake_needed()', 'execute') then
                        perform pg_notify('rlsworker_jobs', '');
                    elsif rlsworker.wake_needed() then
                        perform pg_notify('rlsworker_jobs', '');
                    end if;
                    perform set_config('rlsworker.enqueue_notified', 'on', true);
                end if;
            end if;
            return v_id;
        elsif found then
            if job_key_mode = 'keep' then
                return v_id;
            end if;
            update rlsworker.jobs j set job_key = null where j.id = v_id;
        end if;
    end if;

    insert into rlsworker.jobs (task, payload, run_at, queue, job_key, priority,
                                max_attempts, claims, subject, claims_verified_at, run_as)
    values (add_job.task, add_job.payload, coalesce(add_job.run_at, now()), add_job.queue,
            add_job.job_key, coalesce(add_job.priority, 0), add_job.max_attempts,
            add_job.claims, v_subject,
            case when add_job.claims is null then null else now() end, add_job.run_as)
    returning id into v_id;
    return v_id;
end $$;
