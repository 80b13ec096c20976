-- 005_claim_fast: claim with one set-based statement when no named queue
-- has ready work (the common case); the per-row loop that keeps named
-- queues serial runs only when one does.
create or replace function rlsworker.claim_jobs(p_worker text, p_max int)
returns setof rlsworker.jobs
language plpgsql set search_path = pg_catalog, pg_temp as $$
declare
    r record;
    ids bigint[] := '{}';
begin
    if not exists (select 1 from rlsworker.jobs j
                   where j.state = 'queued' and j.queue is not null and j.run_at <= now()) then
        return query
        with picked as (
            select j.id from rlsworker.jobs j
            where j.state = 'queued' and j.run_at <= now()
            order by j.priority, j.run_at, j.id
            limit p_max
            for update skip locked
        )
        update rlsworker.jobs j set
            state = 'running', locked_by = p_worker, locked_at = now(),
            attempts = j.attempts + 1, lock_token = gen_random_uuid(), updated_at = now()
        from picked where j.id = picked.id
        returning j.*;
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
    update rlsworker.jobs j set
        state = 'running', locked_by = p_worker, locked_at = now(),
        attempts = j.attempts + 1, lock_token = gen_random_uuid(), updated_at = now()
    where j.id = any (ids)
    returning j.*;
end $$;

revoke execute on function rlsworker.claim_jobs(text, int) from public;
