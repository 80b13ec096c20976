-- 020_notify_when_idle: a transaction that queues a job notifies the
-- workers only when one of them waits for work.
--
-- A transaction that runs NOTIFY holds one database-wide lock from just
-- before its commit until after its WAL flush (PostgreSQL queues
-- notifications in commit order), so transactions that notify commit one
-- at a time and lose the group commit: ten clients queueing one job per
-- transaction reached 2 468 transactions/s, 4 798 without the notification
-- (docs/benchmarks.md, "Enqueue"). A worker that is busy (its last claim
-- came back full) claims again as soon as a slot frees and needs no
-- notification; only a worker waiting for work does.
--
-- Each worker says which it is in rlsworker.workers.wants_notify (a new
-- row: true). The insert trigger asks rlsworker.wake_needed() at the first
-- ready job of a transaction, as it decided to notify before, and notifies
-- only when it answers true (or when the inserting role may not ask: only
-- the queue's owner may, and restricted roles insert through chain_job,
-- which runs as the owner). What keeps a job from being missed when a
-- worker stops being busy while such a transaction is still open: the
-- transaction that skips its notification holds a shared advisory lock
-- (class 1919710071, 'rlsw', object 1) until it ends, taken before it
-- last reads wants_notify; a worker that becomes idle first commits
-- wants_notify = true, then waits until it can take that lock exclusively
-- (rlsworker.notify_barrier(), tried again and again, never blocking),
-- then claims. Every transaction that decided not to notify before the
-- worker's update was visible has ended by then, so the claim sees its
-- jobs; every later one sees the update and notifies.
-- Workers of an older version never set the column and are woken as
-- before.
alter table rlsworker.workers add column wants_notify boolean not null default true;

create function rlsworker.wake_needed() returns boolean
language plpgsql security definer set search_path = pg_catalog, pg_temp as $$
begin
    if exists (select 1 from rlsworker.workers w where w.wants_notify) then
        return true;
    end if;
    -- held until this transaction ends; a worker's barrier waits for it
    if not pg_try_advisory_xact_lock_shared(1919710071, 1) then
        return true;        -- a worker is passing its barrier now
    end if;
    return exists (select 1 from rlsworker.workers w where w.wants_notify);
end $$;

revoke execute on function rlsworker.wake_needed() from public;

create function rlsworker.set_wants_notify(p_worker text, p_wants boolean) returns void
language sql set search_path = pg_catalog, pg_temp as $$
    update rlsworker.workers set wants_notify = p_wants
    where id = p_worker and wants_notify is distinct from p_wants;
$$;

-- true once no transaction that skipped its notification is still open
create function rlsworker.notify_barrier() returns boolean
language sql set search_path = pg_catalog, pg_temp as $$
    select case when pg_try_advisory_lock(1919710071, 1)
                then pg_advisory_unlock(1919710071, 1) else false end;
$$;

revoke execute on function rlsworker.set_wants_notify(text, boolean) from public;
revoke execute on function rlsworker.notify_barrier() from public;

-- 017's body (its newest definition); the notification is sent only when
-- rlsworker.wake_needed() says a worker waits for work
create or replace function rlsworker.jobs_before_insert() returns trigger
language plpgsql set search_path = pg_catalog, pg_temp as $$
begin
    if new.run_as is not null and new.run_as <> 'user' and new.run_as <> 'system' then
        perform rlsworker.refuse_run_as(new.run_as);
    end if;
    if new.queue is not null
       and new.queue is distinct from current_setting('rlsworker.enqueue_queue', true) then
        insert into rlsworker.queues (name) values (new.queue) on conflict do nothing;
        perform set_config('rlsworker.enqueue_queue', new.queue, true);
    end if;
    if new.run_at <= now()
       and current_setting('rlsworker.enqueue_notified', true) is distinct from 'on' then
        -- a role allowed to insert here but not to ask notifies, as before
        if not has_function_privilege('rlsworker.wake_needed()', 'execute') then
            perform pg_notify('rlsworker_jobs', '');
        elsif rlsworker.wake_needed() then
            perform pg_notify('rlsworker_jobs', '');
        end if;
        perform set_config('rlsworker.enqueue_notified', 'on', true);
    end if;
    return new;
end $$;
