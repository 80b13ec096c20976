-- Bench-only: the hot completion paths of the newest migrations WITHOUT their
-- job_history insert, so tests/bench/bench.sh (HISTORY="on off") measures what
-- recording history costs, on one cluster in one run. Never apply this to a
-- real database: finished runs would leave no history.
-- Keep each body equal to its newest migration's minus the history insert:
-- rlsworker.complete_held (022, with 019's plan_cache_mode;
-- rlsworker.complete_jobs and the group's rlsworker_api.complete_jobs both
-- call it) and rlsworker_api.complete_job (022).

create or replace function rlsworker.complete_held(p_worker text, p_ids bigint[], p_tokens uuid[])
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
            returning j.id, j.queue, j.locked_by
        ), a as (   -- what the history's columns and ids took is gone with it
            select array_agg(d.queue) filter (where d.queue is not null) as qs,
                   min(d.locked_by) as worker,
                   count(*) as n
            from d
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
            returning j.queue, j.locked_by
        )
        select d.queue, d.locked_by into v_queue, v_worker from d;
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
