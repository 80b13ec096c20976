-- 012_history_batches: the runs a worker completes together are recorded
-- together. complete_jobs (the batched completion of C tasks such as noop,
-- up to claim_batch jobs in one statement) wrote one job_history row per job:
-- a heap tuple, an index entry and their WAL for each, which doubled the
-- server's work per completed job. It now writes ONE row per call into
-- job_history_batches, holding the runs as parallel arrays, in the same
-- statement as the delete, so the history still cannot disagree with the
-- queue. Every other outcome (failed attempts, dead, cancelled, lost, and
-- the per-job completion of SQL tasks) still writes job_history rows.
--
-- Read finished runs from the view rlsworker.job_runs: one row per run, from
-- both tables, with the columns job_history has (duration computed).
-- complete_jobs is redefined from its newest definition (007); prune_history
-- (007) now prunes both tables. Below: job_history's checks as domains.

-- job_history itself gets cheaper to insert into: PostgreSQL reads a table's
-- CHECK constraints and stored generated columns back from their text and
-- plans them again for every INSERT, which cost a SQL task's completion
-- (rlsworker_api.complete_job, one row per job) about a third of its server
-- time. The two checks become domains with the same names (checked with a
-- plan kept for the session), and `duration` is computed by the view below
-- instead of being stored. Rewrites job_history once.
alter table rlsworker.job_history drop column duration;
alter table rlsworker.job_history drop constraint job_history_outcome_check;
alter table rlsworker.job_history drop constraint job_history_error_check;
create domain rlsworker.run_outcome as text
    constraint job_history_outcome_check
    check (value in ('succeeded', 'failed', 'dead', 'cancelled'));
create domain rlsworker.run_error as text
    constraint job_history_error_check check (value is null or length(value) <= 2000);
alter table rlsworker.job_history
    alter column outcome type rlsworker.run_outcome,
    alter column error type rlsworker.run_error;

create table rlsworker.job_history_batches (
    finished_at timestamptz not null default clock_timestamp(),
    worker_id   text,
    -- one element per run, in the same order in every array; ids come from
    -- job_history's identity sequence, so a run's id is unique across both tables
    ids         bigint[] not null,
    job_ids     bigint[] not null,
    tasks       text[] not null,
    queues      text[] not null,
    subjects    text[] not null,
    run_ases    text[] not null,
    attempts    int[] not null,
    created_ats timestamptz[] not null,
    started_ats timestamptz[] not null,
    check (cardinality(job_ids) = cardinality(ids) and cardinality(tasks) = cardinality(ids))
);
comment on table rlsworker.job_history_batches is
    'succeeded runs completed together by complete_jobs, one row per call; read them through rlsworker.job_runs';
create index job_history_batches_finished_idx on rlsworker.job_history_batches (finished_at);
-- A batch of 100 runs is about 4.5 kB: kept inline and uncompressed (the
-- default target of 2 kB would pglz-compress every batch row as it is written).
alter table rlsworker.job_history_batches set (toast_tuple_target = 8160);

-- The runs of each table as the same columns; job_runs shows both.
create view rlsworker.job_runs_single as
    select h.id, h.job_id, h.task, h.queue, h.subject, h.run_as, h.attempts,
           h.outcome::text as outcome, h.worker_id, h.error::text as error, h.created_at,
           h.started_at, h.finished_at, h.finished_at - h.started_at as duration
    from rlsworker.job_history h;
create view rlsworker.job_runs_batched as
    select r.id, r.job_id, r.task, r.queue, r.subject, r.run_as, r.attempts,
           'succeeded'::text as outcome, b.worker_id, null::text as error, r.created_at,
           r.started_at, b.finished_at, b.finished_at - r.started_at as duration
    from rlsworker.job_history_batches b,
         unnest(b.ids, b.job_ids, b.tasks, b.queues, b.subjects, b.run_ases, b.attempts,
                b.created_ats, b.started_ats)
           as r(id, job_id, task, queue, subject, run_as, attempts, created_at, started_at);
create view rlsworker.job_runs as
    select * from rlsworker.job_runs_single
    union all
    select * from rlsworker.job_runs_batched;
comment on view rlsworker.job_runs is
    'every finished run (succeeded, failed, dead, cancelled), one row each, newest kept for history_retention';

-- One page of finished runs, newest first, filtered, after the keyset
-- (p_before_ts, p_before_id) when given: what the console and `jobs list
-- --history` read. Each table is read newest first through its finished_at
-- index and stops after p_limit rows, so a page costs the same on a history
-- of a million runs as on one of a hundred.
create function rlsworker.job_runs_page(p_outcome text, p_task text, p_queue text,
                                        p_subject text, p_before_ts timestamptz,
                                        p_before_id bigint, p_limit int)
returns setof rlsworker.job_runs
language sql stable set search_path = pg_catalog, pg_temp as $$
    select * from (
        (select * from rlsworker.job_runs_single h
         where (p_outcome is null or h.outcome = p_outcome)
           and (p_task is null or h.task = p_task)
           and (p_queue is null or h.queue = p_queue)
           and (p_subject is null or h.subject = p_subject)
           and (p_before_ts is null or (h.finished_at, h.id) < (p_before_ts, p_before_id))
         order by h.finished_at desc, h.id desc
         limit p_limit)
        union all
        (select * from rlsworker.job_runs_batched r
         where (p_outcome is null or p_outcome = 'succeeded')
           and (p_task is null or r.task = p_task)
           and (p_queue is null or r.queue = p_queue)
           and (p_subject is null or r.subject = p_subject)
           and (p_before_ts is null or r.finished_at <= p_before_ts)
           and (p_before_ts is null or (r.finished_at, r.id) < (p_before_ts, p_before_id))
         order by r.finished_at desc, r.id desc
         limit p_limit)
    ) u
    order by u.finished_at desc, u.id desc
    limit p_limit
$$;

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
        returning j.id, j.task, j.queue, j.subject, j.run_as, j.attempts,
                  j.created_at, j.locked_at
    ), a as (
        select array_agg(d.id) as job_ids, array_agg(d.task) as tasks,
               array_agg(d.queue) as queues, array_agg(d.subject) as subjects,
               array_agg(d.run_as) as run_ases, array_agg(d.attempts) as attempts,
               array_agg(d.created_at) as created_ats, array_agg(d.locked_at) as started_ats,
               array_agg(nextval('rlsworker.job_history_id_seq')) as ids,
               array_agg(d.queue) filter (where d.queue is not null) as qs,
               count(*) as n
        from d
    ), h as (
        insert into rlsworker.job_history_batches (worker_id, ids, job_ids, tasks, queues,
                                                   subjects, run_ases, attempts,
                                                   created_ats, started_ats)
        select p_worker, a.ids, a.job_ids, a.tasks, a.queues, a.subjects, a.run_ases,
               a.attempts, a.created_ats, a.started_ats
        from a where a.n > 0
    )
    select a.qs, a.n into qs, n from a;
    if qs is not null then
        perform rlsworker.unlock_queues(p_worker, qs);
    end if;
    return n;
end $$;

-- Removes up to p_limit runs older than p_retention_s seconds, oldest first,
-- from both tables (a batch row goes whole; it counts as its runs). Several
-- workers may prune at once: each skips the rows another holds.
create or replace function rlsworker.prune_history(p_retention_s int, p_limit int) returns int
language plpgsql set search_path = pg_catalog, pg_temp as $$
declare
    n int;
    nb int;
begin
    delete from rlsworker.job_history h
    where h.ctid = any (array(
        select x.ctid from rlsworker.job_history x
        where x.finished_at < now() - make_interval(secs => p_retention_s)
        order by x.finished_at, x.id
        limit p_limit
        for update skip locked));
    get diagnostics n = row_count;
    with d as (
        delete from rlsworker.job_history_batches b
        where b.ctid = any (array(
            select x.ctid from rlsworker.job_history_batches x
            where x.finished_at < now() - make_interval(secs => p_retention_s)
            order by x.finished_at
            limit greatest(1, p_limit / 100)
            for update skip locked))
        returning cardinality(b.ids) as runs
    )
    select coalesce(sum(runs), 0) into nb from d;
    return n + nb;
end $$;

revoke all on rlsworker.job_history_batches from public;
revoke all on rlsworker.job_runs, rlsworker.job_runs_single, rlsworker.job_runs_batched
    from public;
revoke execute on all functions in schema rlsworker from public;
