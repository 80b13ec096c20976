-- 010: an operator may delete a cancelled job as well as a dead one.
-- 007 (history) added delete_job for dead jobs; 008 gave cancellation its own
-- state, kept for `jobs retry` like dead. Both are finished-but-retryable
-- rows, so both may be deleted; a queued or running job still may not (cancel
-- it first). Starts from 007's definition.
create or replace function rlsworker.delete_job(p_id bigint) returns text
language plpgsql set search_path = pg_catalog, pg_temp as $$
declare
    v_state text;
begin
    select state into v_state from rlsworker.jobs where id = p_id for update;
    if not found then
        return 'not found';
    end if;
    if v_state not in ('dead', 'cancelled') then
        return v_state;
    end if;
    delete from rlsworker.jobs where id = p_id;
    return 'deleted';
end $$;
