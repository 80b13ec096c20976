-- 014_group_completion: a group of user jobs completes in one statement.
--
-- A group (docs/guarantees.md, "Group commit") runs several SQL jobs of one
-- restricted role in one transaction, each in its own savepoint. Each job
-- used to end with rlsworker_api.complete_job, which deletes the job and
-- writes one job_history row: per job one more statement to parse and plan,
-- one delete and one history row with its index entry. The worker now ends
-- the group's transaction, after the last job's savepoint is released, with
-- one call of rlsworker_api.complete_jobs naming every job whose effects are
-- in the transaction, with its lock token. It deletes them and records them
-- as ONE job_history_batches row (rlsworker.complete_jobs, 012), so the
-- effects, the completions and the history still commit together.
--
-- When any of the jobs is no longer held under its token (lock recovery
-- gave it to another worker), the call raises RW001 and the whole
-- transaction rolls back: no job's effects commit without its completion.
-- The worker puts the group's jobs back in the queue without counting the
-- attempt (the one that was taken from it is not its to put back).
--
-- plan_cache_mode: the group's jobs set force_custom_plan with their claims
-- (so each is planned for its own user); these statements depend on no
-- claims, and may keep a plan from one group to the next.
create function rlsworker_api.complete_jobs(p_ids bigint[], p_tokens uuid[])
returns void
language plpgsql security definer
set search_path = pg_catalog, pg_temp set plan_cache_mode = auto as $$
declare
    v_worker text;
    v_held int;
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
    -- job knows, so no other session of the role can complete a job
    select count(*), min(j.locked_by) into v_held, v_worker
    from rlsworker.jobs j
    where j.id = any (p_ids) and j.state = 'running'
      and j.lock_token = p_tokens[array_position(p_ids, j.id)];
    if v_held = cardinality(p_ids) then
        v_done := rlsworker.complete_jobs(v_worker, p_ids);
    end if;
    if v_done is distinct from cardinality(p_ids) then
        raise exception using errcode = 'RW001',
            message = format('%s of the %s jobs completed together are no longer held by this worker',
                             cardinality(p_ids) - coalesce(v_done, v_held), cardinality(p_ids));
    end if;
end $$;

revoke all on function rlsworker_api.complete_jobs(bigint[], uuid[]) from public;
grant execute on function rlsworker_api.complete_jobs(bigint[], uuid[]) to public;
