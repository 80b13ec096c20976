-- 003_api: worker registry and heartbeats (lock recovery), cancellation, and
-- the narrow API restricted roles may call: completing the job they run in
-- the same transaction as its effects, and chaining a follow-up job with the
-- running job's own claims. Both require the job's random lock token, which
-- only the worker holding the job knows.

create function rlsworker.register_worker(p_id text, p_host text, p_pid int)
returns void
language sql set search_path = pg_catalog, pg_temp as $$
    insert into rlsworker.workers (id, host, pid) values (p_id, p_host, p_pid)
    on conflict (id) do update set heartbeat_at = now();
$$;

-- false: this worker was declared lost (its jobs went back to the queue).
create function rlsworker.heartbeat(p_id text) returns boolean
language plpgsql set search_path = pg_catalog, pg_temp as $$
begin
    update rlsworker.workers set heartbeat_at = now() where id = p_id;
    return found;
end $$;

create function rlsworker.deregister_worker(p_id text) returns void
language sql set search_path = pg_catalog, pg_temp as $$
    delete from rlsworker.workers where id = p_id;
$$;

-- Jobs held by workers silent for p_timeout_s go back to the queue. The
-- attempt they used stays counted; the next claimer enforces max_attempts.
-- Safe when several workers sweep at once.
create function rlsworker.sweep_lost(p_timeout_s int) returns int
language plpgsql set search_path = pg_catalog, pg_temp as $$
declare
    n int;
begin
    delete from rlsworker.workers
    where heartbeat_at < now() - make_interval(secs => p_timeout_s);
    update rlsworker.jobs j set
        state = 'queued', run_at = now(),
        last_error = format('worker %s was lost (no heartbeat for %s s) while running this job',
                            j.locked_by, p_timeout_s),
        locked_by = null, locked_at = null, lock_token = null, updated_at = now()
    where j.state = 'running'
      and not exists (select 1 from rlsworker.workers w where w.id = j.locked_by);
    get diagnostics n = row_count;
    update rlsworker.queues q set locked_by = null, locked_at = null
    where q.locked_by is not null
      and not exists (select 1 from rlsworker.workers w where w.id = q.locked_by);
    if n > 0 then
        perform pg_notify('rlsworker_jobs', '');
    end if;
    return n;
end $$;

-- Operator actions (CLI `jobs cancel` / `jobs retry`, dashboards).
-- A queued job is cancelled at once (dead, "cancelled"); a running one is
-- flagged and its worker is told to cancel its query.
create function rlsworker.cancel_job(p_id bigint) returns text
language plpgsql set search_path = pg_catalog, pg_temp as $$
declare
    v_state text;
begin
    select state into v_state from rlsworker.jobs where id = p_id for update;
    if not found then
        return 'not found';
    end if;
    if v_state = 'queued' then
        update rlsworker.jobs set state = 'dead', last_error = 'cancelled by operator',
            updated_at = now() where id = p_id;
        return 'cancelled';
    elsif v_state = 'running' then
        update rlsworker.jobs set cancel_requested = true, updated_at = now() where id = p_id;
        perform pg_notify('rlsworker_cancel', p_id::text);
        return 'cancelling';
    end if;
    return 'already dead';
end $$;

create function rlsworker.retry_job(p_id bigint) returns text
language plpgsql set search_path = pg_catalog, pg_temp as $$
declare
    v_state text;
begin
    select state into v_state from rlsworker.jobs where id = p_id for update;
    if not found then
        return 'not found';
    end if;
    if v_state = 'running' then
        return 'running';
    end if;
    update rlsworker.jobs set state = 'queued', attempts = 0, run_at = now(),
        cancel_requested = false, updated_at = now() where id = p_id;
    perform pg_notify('rlsworker_jobs', '');
    return 'queued';
end $$;

revoke execute on all functions in schema rlsworker from public;

create schema rlsworker_api;
revoke all on schema rlsworker_api from public;
grant usage on schema rlsworker_api to public;

-- Deletes the job in the caller's transaction, so a SQL task's effects and
-- its completion commit together. Fails (rolling the effects back) when the
-- job is no longer held under this token, e.g. after lock recovery.
create function rlsworker_api.complete_job(p_id bigint, p_token uuid)
returns void
language plpgsql security definer set search_path = pg_catalog, pg_temp as $$
declare
    v_queue text;
    v_worker text;
begin
    delete from rlsworker.jobs
    where id = p_id and lock_token = p_token and state = 'running'
    returning queue, locked_by into v_queue, v_worker;
    if not found then
        raise exception using errcode = 'RW001',
            message = format('job %s is no longer held by this worker', p_id);
    end if;
    if v_queue is not null then
        update rlsworker.queues set locked_by = null, locked_at = null
        where name = v_queue and locked_by = v_worker;
    end if;
end $$;

-- Enqueues a follow-up job carrying the running job's own stored claims.
-- Callable only inside a job whose task allows chaining: the worker sets
-- rlsworker.chain_token (transaction-local) for those tasks alone. The
-- caller cannot pass claims; the new job always runs user-scoped.
create function rlsworker_api.chain_job(task text, payload jsonb default '{}',
                                        run_at timestamptz default null,
                                        job_key text default null)
returns bigint
language plpgsql security definer set search_path = pg_catalog, pg_temp as $$
declare
    v_token uuid;
    v_parent rlsworker.jobs;
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
    if payload is null or jsonb_typeof(payload) <> 'object' then
        raise exception 'rlsworker_api.chain_job: payload must be a JSON object';
    end if;
    insert into rlsworker.jobs (task, payload, run_at, job_key, claims, subject,
                                claims_verified_at, run_as)
    values (chain_job.task, chain_job.payload, coalesce(chain_job.run_at, now()),
            chain_job.job_key, v_parent.claims, v_parent.subject,
            v_parent.claims_verified_at, 'user')
    returning id into v_id;
    return v_id;
end $$;

revoke all on function rlsworker_api.complete_job(bigint, uuid) from public;
revoke all on function rlsworker_api.chain_job(text, jsonb, timestamptz, text) from public;
grant execute on function rlsworker_api.complete_job(bigint, uuid) to public;
grant execute on function rlsworker_api.chain_job(text, jsonb, timestamptz, text) to public;
