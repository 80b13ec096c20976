-- 022_end_changed_rows: a job whose row changed while it ran still ends.
--
-- 016 made the completions and the release find each job's row version
-- through jobs_pkey, test it, then delete or update that version by ctid
-- in the same statement. A change committed in between makes a new
-- version, and the statement, which waits for the change, then skips the
-- row (its ctid is no longer the one named). 016 meant this for lock
-- recovery, where the job is no longer the worker's. But a running job's
-- row also changes while it stays the worker's: add_job with its job key
-- moves the key to a new job (job_key = null, 001), an operator flags it
-- for cancelling (cancel_requested, 003). Then:
-- - rlsworker.complete_jobs (a worker's batch of built-in jobs) returned
--   fewer rows and the row stayed 'running' after the worker had counted
--   it completed; once that worker was gone, the job was queued and ran
--   again;
-- - rlsworker_api.complete_job and complete_jobs (a SQL job's or a group's
--   own completion) raised "no longer held by this worker": the job's
--   effects rolled back, and it failed and ran again;
-- - rlsworker.release_jobs left the row 'running'.
-- tests/integration/test_changed_while_running.py holds such a change open
-- until the statement waits for it.
--
-- Each now tries the rows it skipped once more, in a statement of its
-- own: that one sees the change (it committed before the skip), finds the
-- row's newest version and tests it again, so a row recovered for another
-- worker is still refused. It tries at most 5 times; a row changed again
-- before each try is left as before (the count tells). fail_jobs locked
-- its rows as it found them (016) and is unchanged. The bodies are 016's
-- (their newest definitions), with complete_held's plan_cache_mode from
-- 019; the skipped rows are the ones found and tested but not deleted or
-- updated.
create or replace function rlsworker.complete_held(p_worker text, p_ids bigint[],
                                                   p_tokens uuid[])
returns int
language plpgsql
set search_path = pg_catalog, pg_temp
set enable_seqscan = off set enable_bitmapscan = off
set plan_cache_mode = force_generic_plan as $$
declare
    v_ids bigint[] := p_ids;
    v_tokens uuid[] := p_tokens;
    v_worker text;
    qs text[];
    n int;
    total int := 0;
begin
    for try in 1..5 loop
        with held as (
            select x.ctid, t.id, t.token
            from unnest(v_ids, v_tokens) as t(id, token)     -- no tokens: null each
            cross join lateral (
                select j.ctid, j.state, j.locked_by, j.lock_token
                from rlsworker.jobs j where j.id = t.id limit 1) x
            where x.state = 'running'
              and (p_worker is null or x.locked_by = p_worker)
              and (p_tokens is null or x.lock_token = t.token)
        ), d as (
            delete from rlsworker.jobs j
            where j.ctid = any (array(select held.ctid from held))
            -- only what the history keeps: never the payload or claims
            returning j.id, j.task, j.queue, j.subject, j.run_as, j.attempts,
                      j.created_at, j.locked_at, j.locked_by
        ), a as (
            select array_agg(d.id) as job_ids, array_agg(d.task) as tasks,
                   array_agg(d.queue) as queues, array_agg(d.subject) as subjects,
                   array_agg(d.run_as) as run_ases, array_agg(d.attempts) as attempts,
                   array_agg(d.created_at) as created_ats, array_agg(d.locked_at) as started_ats,
                   array_agg(nextval('rlsworker.job_history_id_seq')) as ids,
                   array_agg(d.queue) filter (where d.queue is not null) as qs,
                   min(d.locked_by) as worker,
                   count(*) as n
            from d
        ), h as (
            insert into rlsworker.job_history_batches (worker_id, ids, job_ids, tasks, queues,
                                                       subjects, run_ases, attempts,
                                                       created_ats, started_ats)
            select coalesce(p_worker, a.worker), a.ids, a.job_ids, a.tasks, a.queues,
                   a.subjects, a.run_ases, a.attempts, a.created_ats, a.started_ats
            from a where a.n > 0
        ), skipped as (
            select array_agg(held.id) as ids, array_agg(held.token) as tokens
            from held where held.id not in (select d.id from d)
        )
        select a.qs, a.n, coalesce(p_worker, a.worker), skipped.ids, skipped.tokens
        into qs, n, v_worker, v_ids, v_tokens
        from a, skipped;
        if qs is not null then
            perform rlsworker.unlock_queues(v_worker, qs);
        end if;
        total := total + n;
        exit when v_ids is null;
    end loop;
    return total;
end $$;

create or replace function rlsworker_api.complete_job(p_id bigint, p_token uuid)
returns void
language plpgsql security definer set search_path = pg_catalog, pg_temp as $$
declare
    v_queue text;
    v_worker text;
begin
    for try in 1..5 loop
        with d as (
            delete from rlsworker.jobs j
            where j.ctid = (select x.ctid from rlsworker.jobs x
                            where x.id = p_id and x.lock_token = p_token limit 1)
              and j.state = 'running'
            returning j.id, j.task, j.queue, j.subject, j.run_as, j.attempts, j.locked_by,
                      j.created_at, j.locked_at
        ), h as (
            insert into rlsworker.job_history (job_id, task, queue, subject, run_as, attempts,
                                               outcome, worker_id, created_at, started_at)
            select d.id, d.task, d.queue, d.subject, d.run_as, d.attempts, 'succeeded',
                   d.locked_by, d.created_at, d.locked_at
            from d
        )
        select d.queue, d.locked_by into v_queue, v_worker from d;
        -- not deleted: not held, or changed while the delete ran (a new
        -- statement sees the change and tries again)
        exit when found or not exists (
            select 1 from rlsworker.jobs x
            where x.id = p_id and x.lock_token = p_token and x.state = 'running');
    end loop;
    if v_worker is null then
        raise exception using errcode = 'RW001',
            message = format('job %s is no longer held by this worker', p_id);
    end if;
    if v_queue is not null then
        update rlsworker.queues set locked_by = null, locked_at = null
        where name = v_queue and locked_by = v_worker;
    end if;
end $$;

create or replace function rlsworker.release_jobs(p_worker text, p_ids bigint[])
returns int
language plpgsql set search_path = pg_catalog, pg_temp
set enable_seqscan = off set enable_bitmapscan = off as $$
declare
    v_ids bigint[] := p_ids;
    qs text[];
    n int;
    total int := 0;
begin
    for try in 1..5 loop
        with held as (
            select x.ctid, t.id from unnest(v_ids) as t(id)
            cross join lateral (
                select j2.ctid, j2.state, j2.locked_by from rlsworker.jobs j2
                where j2.id = t.id limit 1) x
            where x.state = 'running' and x.locked_by = p_worker
        ), u as (
            update rlsworker.jobs j set
                state = 'queued', attempts = greatest(j.attempts - 1, 0),
                locked_by = null, locked_at = null, lock_token = null, updated_at = now()
            where j.ctid = any (array(select held.ctid from held))
            returning j.id, j.queue
        )
        select array_agg(u.queue) filter (where u.queue is not null), count(*),
               (select array_agg(held.id) from held
                where held.id not in (select u2.id from u u2))
        into qs, n, v_ids
        from u;
        if qs is not null then
            perform rlsworker.unlock_queues(p_worker, qs);
        end if;
        total := total + n;
        exit when v_ids is null;
    end loop;
    if total > 0 then
        perform pg_notify('rlsworker_jobs', '');
    end if;
    return total;
end $$;
