-- 013_stable_plans: the claim and the failure paths find their rows through
-- the primary key whatever the table's statistics say.
--
-- A queue is often empty when autovacuum analyzes it, so rlsworker.jobs is
-- then recorded with 0 rows. claim_jobs joined the rows it picked back to the
-- table (update ... from picked where j.id = picked.id); planned for a table of
-- one row, that join became a nested loop over the whole table for every
-- picked row: after a burst of 100 000 jobs into a queue analyzed empty, one
-- claim of 100 took 2 to 7 s, until the next autoanalyze. fail_jobs joined an
-- unnest the same way. Both now name their rows as `id = any (array)`, which
-- is an index lookup at any estimate (0.3 ms for the same claim).
--
-- claim_jobs is redefined from 001 (its only definition), fail_jobs from 007
-- (its newest); only those joins change, and the claimed rows come back in
-- claim order (priority, run_at, id), which the join used to give by chance.

-- The pick itself must walk jobs_claim_idx in order and stop after p_max:
-- with the table recorded empty, the planner preferred a bitmap scan of every
-- ready job and a sort (35 ms at 20 000 queued, growing with the queue), so
-- the function plans without sequential and bitmap scans.
create or replace function rlsworker.claim_jobs(p_worker text, p_max int)
returns setof rlsworker.jobs
language plpgsql
set search_path = pg_catalog, pg_temp
set enable_seqscan = off
set enable_bitmapscan = off as $$
declare
    r record;
    ids bigint[] := '{}';
begin
    if not exists (select 1 from rlsworker.jobs j
                   where j.state = 'queued' and j.queue is not null and j.run_at <= now()) then
        -- in claim order: the worker starts them in the order they come
        return query
        with u as (
            update rlsworker.jobs j set
                state = 'running', locked_by = p_worker, locked_at = now(),
                attempts = j.attempts + 1, lock_token = gen_random_uuid(), updated_at = now()
            where j.id = any (array(
                select p.id from rlsworker.jobs p
                where p.state = 'queued' and p.run_at <= now()
                order by p.priority, p.run_at, p.id
                limit p_max
                for update skip locked))
            returning j.*
        )
        select * from u order by u.priority, u.run_at, u.id;
        return;
    end if;
    for r in
        select j.id, j.queue from rlsworker.jobs j
        where j.state = 'queued' and j.run_at <= now()
          and (j.queue is null or not exists (
                select 1 from rlsworker.queues q
                where q.name = j.queue and q.locked_by is not null))
        order by j.priority, j.run_at, j.id
        limit p_max
        for update of j skip locked
    loop
        if r.queue is not null then
            -- skip locked: never wait on another claimer, so no deadlock
            perform 1 from rlsworker.queues q
            where q.name = r.queue and q.locked_by is null
            for update skip locked;
            continue when not found;
            update rlsworker.queues q set locked_by = p_worker, locked_at = now()
            where q.name = r.queue;
        end if;
        ids := ids || r.id;
    end loop;
    if cardinality(ids) = 0 then
        return;
    end if;
    return query
    with u as (
        update rlsworker.jobs j set
            state = 'running', locked_by = p_worker, locked_at = now(),
            attempts = j.attempts + 1, lock_token = gen_random_uuid(), updated_at = now()
        where j.id = any (ids)
        returning j.*
    )
    select * from u order by u.priority, u.run_at, u.id;
end $$;

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
    where j.id = any (p_ids) and j.locked_by = p_worker and j.state = 'running'
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
        where j.id = any (p_ids) and j.id = f.id and j.locked_by = p_worker
          and j.state = 'running'
        returning j.queue
    )
    select array_agg(queue) filter (where queue is not null), count(*) into qs, n from u;
    if qs is not null then
        perform rlsworker.unlock_queues(p_worker, qs);
    end if;
    return n;
end $$;

revoke execute on all functions in schema rlsworker from public;
