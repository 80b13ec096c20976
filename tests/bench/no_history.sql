-- Bench-only: the hot completion paths of the newest migrations WITHOUT their
-- job_history insert, so tests/bench/bench.sh (HISTORY="on off") measures what
-- recording history costs, on one cluster in one run. Never apply this to a
-- real database: finished runs would leave no history.
-- Keep each body equal to its newest migration's minus the history insert.

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
        returning j.queue
    )
    select array_agg(queue) filter (where queue is not null), count(*) into qs, n from d;
    if qs is not null then
        perform rlsworker.unlock_queues(p_worker, qs);
    end if;
    return n;
end $$;

create or replace function rlsworker_api.complete_job(p_id bigint, p_token uuid)
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
