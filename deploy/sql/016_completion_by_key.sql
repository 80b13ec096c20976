-- 016_completion_by_key: a completion finds each job by its primary key,
-- and a group's completion checks the tokens in the same statement.
--
-- rlsworker.complete_jobs (012) deleted `where j.id = any (p_ids) and
-- j.locked_by = p_worker and j.state = 'running'`, and
-- rlsworker_api.complete_jobs (014) first counted the held jobs with a
-- similar query. Both run as cached generic plans, which do not know how
-- many ids the array holds, and chose jobs_running_idx: the delete walked
-- every job the worker held (its prefetch, up to 1000) and tested each
-- against the array, the count walked every running job of every worker.
-- A completion's cost grew with the prefetch: in a 20 000-job user drain
-- the count took as long as the delete (pg_stat_statements).
--
-- Now each id is looked up alone through jobs_pkey (a lateral subquery that
-- names nothing but the id, so no partial index applies), the conditions
-- are tested on the row found, and the delete names the row versions that
-- passed by ctid. A row that changed in between (lock recovery) has a new
-- version under another ctid, so it is not deleted, and the count tells.
-- The group's completion (rlsworker_api.complete_jobs) passes the tokens
-- into that one statement instead of counting first. A job run alone
-- (rlsworker_api.complete_job, 007) had the same plan for its one id: it
-- now finds its row through jobs_pkey too, and keeps its own history row.
--
-- rlsworker.complete_jobs(worker, ids) keeps its signature (the worker's
-- outcome batches call it) and becomes rlsworker.complete_held without
-- tokens. complete_held repeats 012's history-batch insert: create or
-- replace needs the whole body, and the history must commit with the
-- delete.
create function rlsworker.complete_held(p_worker text, p_ids bigint[], p_tokens uuid[])
returns int
language plpgsql
set search_path = pg_catalog, pg_temp
set enable_seqscan = off set enable_bitmapscan = off as $$
declare
    qs text[];
    n int;
begin
    with held as (
        select x.ctid
        from unnest(p_ids, p_tokens) as t(id, token)     -- no tokens: null each
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
        select coalesce(p_worker, a.worker), a.ids, a.job_ids, a.tasks, a.queues, a.subjects,
               a.run_ases, a.attempts, a.created_ats, a.started_ats
        from a where a.n > 0
    )
    select a.qs, a.n, coalesce(p_worker, a.worker) into qs, n, p_worker from a;
    if qs is not null then
        perform rlsworker.unlock_queues(p_worker, qs);
    end if;
    return n;
end $$;

revoke all on function rlsworker.complete_held(text, bigint[], uuid[]) from public;

create or replace function rlsworker.complete_jobs(p_worker text, p_ids bigint[])
returns int
language plpgsql set search_path = pg_catalog, pg_temp as $$
begin
    return rlsworker.complete_held(p_worker, p_ids, null);
end $$;

create or replace function rlsworker_api.complete_jobs(p_ids bigint[], p_tokens uuid[])
returns void
language plpgsql security definer
set search_path = pg_catalog, pg_temp set plan_cache_mode = auto as $$
declare
    v_done int;
begin
    if cardinality(p_ids) is distinct from cardinality(p_tokens) then
        raise exception using errcode = '22023',
            message = 'rlsworker_api.complete_jobs: pass one lock token per job id';
    end if;
    if cardinality(p_ids) = 0 then
        return;
    end if;
    -- each id with its own token: a token only the worker that claimed the
    -- job knows, so no other session of the role can complete a job. When
    -- one is not held, the exception undoes the other deletes with it.
    v_done := rlsworker.complete_held(null, p_ids, p_tokens);
    if v_done <> cardinality(p_ids) then
        raise exception using errcode = 'RW001',
            message = format('%s of the %s jobs completed together are no longer held by this worker',
                             cardinality(p_ids) - v_done, cardinality(p_ids));
    end if;
end $$;

create or replace function rlsworker_api.complete_job(p_id bigint, p_token uuid)
returns void
language plpgsql security definer set search_path = pg_catalog, pg_temp as $$
declare
    v_queue text;
    v_worker text;
begin
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
    if not found then
        raise exception using errcode = 'RW001',
            message = format('job %s is no longer held by this worker', p_id);
    end if;
    if v_queue is not null then
        update rlsworker.queues set locked_by = null, locked_at = null
        where name = v_queue and locked_by = v_worker;
    end if;
end $$;

-- A failure and a release named their rows the same way (`j.id = any
-- (p_ids) and j.locked_by = p_worker and j.state = 'running'`, 013 and 001),
-- with the same generic plan through every job the worker holds. They now
-- find each id through jobs_pkey too: fail_jobs locks the rows it found
-- (so its history rows and its update see the same ones), release_jobs
-- updates the row versions it found by ctid.
create or replace function rlsworker.fail_jobs(p_worker text, p_ids bigint[], p_errors text[],
                                               p_delays_ms bigint[], p_dead boolean[])
returns int
language plpgsql set search_path = pg_catalog, pg_temp
set enable_seqscan = off set enable_bitmapscan = off as $$
declare
    qs text[];
    n int;
    tids tid[];
begin
    select array_agg(x.ctid) into tids
    from unnest(p_ids) as t(id)
    cross join lateral (
        select j.ctid, j.state, j.locked_by from rlsworker.jobs j
        where j.id = t.id limit 1 for update) x
    where x.state = 'running' and x.locked_by = p_worker;
    if tids is null then
        return 0;
    end if;

    insert into rlsworker.job_history (job_id, task, queue, subject, run_as, attempts,
                                       outcome, worker_id, error, created_at, started_at)
    select j.id, j.task, j.queue, j.subject, j.run_as, j.attempts,
           case when not f.dead then 'failed'
                when j.cancel_requested then 'cancelled'
                else 'dead' end,
           j.locked_by, left(f.err, 2000), j.created_at, j.locked_at
    from rlsworker.jobs j
    join unnest(p_ids, p_errors, p_dead) as f(id, err, dead) on f.id = j.id
    where j.ctid = any (tids);

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
        where j.ctid = any (tids) and j.id = f.id
        returning j.queue
    )
    select array_agg(queue) filter (where queue is not null), count(*) into qs, n from u;
    if qs is not null then
        perform rlsworker.unlock_queues(p_worker, qs);
    end if;
    return n;
end $$;

create or replace function rlsworker.release_jobs(p_worker text, p_ids bigint[])
returns int
language plpgsql set search_path = pg_catalog, pg_temp
set enable_seqscan = off set enable_bitmapscan = off as $$
declare
    qs text[];
    n int;
begin
    with u as (
        update rlsworker.jobs j set
            state = 'queued', attempts = greatest(j.attempts - 1, 0),
            locked_by = null, locked_at = null, lock_token = null, updated_at = now()
        where j.ctid = any (array(
            select x.ctid from unnest(p_ids) as t(id)
            cross join lateral (
                select j2.ctid, j2.state, j2.locked_by from rlsworker.jobs j2
                where j2.id = t.id limit 1) x
            where x.state = 'running' and x.locked_by = p_worker))
        returning j.queue
    )
    select array_agg(queue) filter (where queue is not null), count(*) into qs, n from u;
    if qs is not null then
        perform rlsworker.unlock_queues(p_worker, qs);
    end if;
    if n > 0 then
        perform pg_notify('rlsworker_jobs', '');
    end if;
    return n;
end $$;
