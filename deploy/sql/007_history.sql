-- 007_history: a row per finished run (succeeded, failed attempt, dead,
-- cancelled), written by the same statement that records the outcome, so
-- the history cannot disagree with the queue. Claims are never copied here:
-- only the subject. Rows older than history_retention are pruned by the
-- workers' sweep (rlsworker.prune_history), a bounded batch per run.

create table rlsworker.job_history (
    id          bigint generated always as identity,
    job_id      bigint not null,
    task        text not null,
    queue       text,
    subject     text,
    run_as      text,
    attempts    int not null,
    outcome     text not null check (outcome in ('succeeded', 'failed', 'dead', 'cancelled')),
    worker_id   text,
    error       text check (error is null or length(error) <= 2000),
    created_at  timestamptz not null,
    started_at  timestamptz,
    finished_at timestamptz not null default clock_timestamp(),
    duration    interval generated always as (finished_at - started_at) stored
);

comment on table rlsworker.job_history is
    'one row per finished run; pruned after history_retention (default 7 days)';
comment on column rlsworker.job_history.outcome is
    'succeeded | failed (an attempt that will be retried) | dead | cancelled';
comment on column rlsworker.job_history.started_at is
    'when the attempt was claimed; null for a queued job cancelled before it ran';

-- The one index: recent runs, time ranges, keyset paging and pruning.
create index job_history_finished_idx on rlsworker.job_history (finished_at, id);

-- Succeeded jobs leave the queue and enter the history in one statement.
create or replace function rlsworker.complete_jobs(p_worker text, p_ids bigint[])
returns int
language plpgsql set search_path = pg_catalog, pg_temp as $$
declare
    qs text[];
    n int;
begin
    with d as (
        delete from rlsworker.jobs j
        where j.id = any (p_ids) and j.locked_by = p_worker and j.state = 'running'
        -- only what the history keeps: never the payload or claims
        returning j.id, j.task, j.queue, j.subject, j.run_as, j.attempts, j.locked_by,
                  j.created_at, j.locked_at
    ), h as (
        insert into rlsworker.job_history (job_id, task, queue, subject, run_as, attempts,
                                           outcome, worker_id, created_at, started_at)
        select d.id, d.task, d.queue, d.subject, d.run_as, d.attempts, 'succeeded',
               d.locked_by, d.created_at, d.locked_at
        from d
    )
    select array_agg(queue) filter (where queue is not null), count(*) into qs, n from d;
    if qs is not null then
        perform rlsworker.unlock_queues(p_worker, qs);
    end if;
    return n;
end $$;

-- Failed attempts: recorded (failed, dead, or cancelled when an operator's
-- cancel stopped it), then back to the queue after a delay, or dead. The
-- rows are locked by the insert, so the update finds them as recorded.
create or replace function rlsworker.fail_jobs(p_worker text, p_ids bigint[], p_errors text[],
                                               p_delays_ms bigint[], p_dead boolean[])
returns int
language plpgsql set search_path = pg_catalog, pg_temp as $$
declare
    qs text[];
    n int;
begin
    insert into rlsworker.job_history (job_id, task, queue, subject, run_as, attempts,
                                       outcome, worker_id, error, created_at, started_at)
    select j.id, j.task, j.queue, j.subject, j.run_as, j.attempts,
           case when not f.dead then 'failed'
                when j.cancel_requested then 'cancelled'
                else 'dead' end,
           j.locked_by, left(f.err, 2000), j.created_at, j.locked_at
    from rlsworker.jobs j
    join unnest(p_ids, p_errors, p_dead) as f(id, err, dead) on f.id = j.id
    where j.locked_by = p_worker and j.state = 'running'
    for update of j;

    with f as (
        select * from unnest(p_ids, p_errors, p_delays_ms, p_dead) as t(id, err, delay_ms, dead)
    ), u as (
        update rlsworker.jobs j set
            state = case when f.dead then 'dead' else 'queued' end,
            run_at = case when f.dead then j.run_at
                          else now() + f.delay_ms * interval '1 millisecond' end,
            last_error = left(f.err, 4000),
            locked_by = null, locked_at = null, lock_token = null,
            cancel_requested = false, updated_at = now()
        from f
        where j.id = f.id and j.locked_by = p_worker and j.state = 'running'
        returning j.queue
    )
    select array_agg(queue) filter (where queue is not null), count(*) into qs, n from u;
    if qs is not null then
        perform rlsworker.unlock_queues(p_worker, qs);
    end if;
    return n;
end $$;

-- Lost workers' jobs: each lost attempt is recorded as failed.
create or replace function rlsworker.sweep_lost(p_timeout_s int) returns int
language plpgsql set search_path = pg_catalog, pg_temp as $$
declare
    ids bigint[];
    n int;
begin
    delete from rlsworker.workers
    where heartbeat_at < now() - make_interval(secs => p_timeout_s);
    with h as (
        insert into rlsworker.job_history (job_id, task, queue, subject, run_as, attempts,
                                           outcome, worker_id, error, created_at, started_at)
        select j.id, j.task, j.queue, j.subject, j.run_as, j.attempts, 'failed', j.locked_by,
               left(format('worker %s was lost (no heartbeat for %s s) while running this job',
                           j.locked_by, p_timeout_s), 2000),
               j.created_at, j.locked_at
        from rlsworker.jobs j
        where j.state = 'running'
          and not exists (select 1 from rlsworker.workers w where w.id = j.locked_by)
        for update of j skip locked
        returning job_id
    )
    select coalesce(array_agg(job_id), '{}') into ids from h;
    -- only what was recorded (and is locked by now): rows another sweeper
    -- holds are its to move
    update rlsworker.jobs j set
        state = 'queued', run_at = now(),
        last_error = format('worker %s was lost (no heartbeat for %s s) while running this job',
                            j.locked_by, p_timeout_s),
        locked_by = null, locked_at = null, lock_token = null, updated_at = now()
    where j.id = any (ids);
    get diagnostics n = row_count;
    update rlsworker.queues q set locked_by = null, locked_at = null
    where q.locked_by is not null
      and not exists (select 1 from rlsworker.workers w where w.id = q.locked_by);
    if n > 0 then
        perform pg_notify('rlsworker_jobs', '');
    end if;
    return n;
end $$;

-- Operator cancel: a queued job is cancelled at once (dead, recorded as
-- cancelled); a running one is flagged and its worker told to stop it (its
-- worker records the outcome).
create or replace function rlsworker.cancel_job(p_id bigint) returns text
language plpgsql set search_path = pg_catalog, pg_temp as $$
declare
    v rlsworker.jobs;
begin
    select * into v from rlsworker.jobs where id = p_id for update;
    if not found then
        return 'not found';
    end if;
    if v.state = 'queued' then
        update rlsworker.jobs set state = 'dead', last_error = 'cancelled by operator',
            updated_at = now() where id = p_id;
        insert into rlsworker.job_history (job_id, task, queue, subject, run_as, attempts,
                                           outcome, error, created_at)
        values (v.id, v.task, v.queue, v.subject, v.run_as, v.attempts, 'cancelled',
                'cancelled by operator', v.created_at);
        return 'cancelled';
    elsif v.state = 'running' then
        update rlsworker.jobs set cancel_requested = true, updated_at = now() where id = p_id;
        perform pg_notify('rlsworker_cancel', p_id::text);
        return 'cancelling';
    end if;
    return 'already dead';
end $$;

-- Operator delete (console): only a dead job may be deleted; its runs stay
-- in the history.
create function rlsworker.delete_job(p_id bigint) returns text
language plpgsql set search_path = pg_catalog, pg_temp as $$
declare
    v_state text;
begin
    select state into v_state from rlsworker.jobs where id = p_id for update;
    if not found then
        return 'not found';
    end if;
    if v_state <> 'dead' then
        return v_state;
    end if;
    delete from rlsworker.jobs where id = p_id;
    return 'deleted';
end $$;

-- Removes up to p_limit runs older than p_retention_s seconds, oldest first.
-- Several workers may prune at once: each skips the rows another holds.
create function rlsworker.prune_history(p_retention_s int, p_limit int) returns int
language plpgsql set search_path = pg_catalog, pg_temp as $$
declare
    n int;
begin
    delete from rlsworker.job_history h
    where h.ctid = any (array(
        select x.ctid from rlsworker.job_history x
        where x.finished_at < now() - make_interval(secs => p_retention_s)
        order by x.finished_at, x.id
        limit p_limit
        for update skip locked));
    get diagnostics n = row_count;
    return n;
end $$;

-- Deletes the job in the caller's transaction and records the success in
-- the same statement, so a SQL task's effects, its completion and its
-- history row commit together.
create or replace function rlsworker_api.complete_job(p_id bigint, p_token uuid)
returns void
language plpgsql security definer set search_path = pg_catalog, pg_temp as $$
declare
    v_queue text;
    v_worker text;
begin
    with d as (
        delete from rlsworker.jobs
        where id = p_id and lock_token = p_token and state = 'running'
        returning id, task, queue, subject, run_as, attempts, locked_by, created_at, locked_at
    ), h as (
        insert into rlsworker.job_history (job_id, task, queue, subject, run_as, attempts,
                                           outcome, worker_id, created_at, started_at)
        select d.id, d.task, d.queue, d.subject, d.run_as, d.attempts, 'succeeded',
               d.locked_by, d.created_at, d.locked_at
        from d
    )
    select d.queue, d.locked_by into v_queue, v_worker from d;
    if not found then
        raise exception using errcode = 'RW001',
            message = format('job %s is no longer held by this worker', p_id);
    end if;
    if v_queue is not null then
        update rlsworker.queues set locked_by = null, locked_at = null
        where name = v_queue and locked_by = v_worker;
    end if;
end $$;

revoke execute on all functions in schema rlsworker from public;
revoke all on function rlsworker_api.complete_job(bigint, uuid) from public;
grant execute on function rlsworker_api.complete_job(bigint, uuid) to public;
