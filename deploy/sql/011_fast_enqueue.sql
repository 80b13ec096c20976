-- 011_fast_enqueue: enqueueing costs what the row costs (issue 11).
--
-- Measured before this migration (docs/benchmarks.md, "Enqueue"): every
-- add_job call is its own INSERT statement, and each statement paid for
--   * 001's statement trigger jobs_after_insert: a transition table of the
--     new rows, a query over it for named queues and another for ready rows;
--   * the check constraint jobs_task_check, whose bounded repetition {1,128}
--     makes PostgreSQL's regex engine walk 128 copies of the character class
--     for every row (about 10 us a row; run_as's {0,62} alike when set).
-- Both are replaced here with equivalents that cost almost nothing when there
-- is nothing to do. Behaviour is unchanged: the same constraint names (so
-- the same errors), a named queue's row exists once a job names it, and a
-- transaction that queues a ready job sends the notification on
-- 'rlsworker_jobs' when it commits (nothing when it rolls back).

-- The same rules, without bounded repetition: one or more allowed
-- characters, at most 128 (run_as: a first character, at most 63 in all).
alter table rlsworker.jobs drop constraint jobs_task_check;
alter table rlsworker.jobs add constraint jobs_task_check
    check (task ~ '^[A-Za-z0-9_.:-]+$' and length(task) <= 128) not valid;
alter table rlsworker.jobs validate constraint jobs_task_check;
alter table rlsworker.jobs drop constraint jobs_run_as_check;
alter table rlsworker.jobs add constraint jobs_run_as_check
    check (run_as is null or (run_as ~ '^[A-Za-z_][A-Za-z0-9_$-]*$' and length(run_as) <= 63))
    not valid;
alter table rlsworker.jobs validate constraint jobs_run_as_check;

-- New rows, whichever way they come in (add_job, add_jobs, chain_job, cron,
-- a plain INSERT): register a named queue, wake the workers when a row is
-- ready. A row trigger whose WHEN clause is false for nearly every row:
-- within one transaction the first ready row sends the notification (all
-- the workers need: it is delivered at commit) and the first row of a named
-- queue registers it; transaction-local settings remember both, so later
-- rows skip the call. The settings share the fate of what they record: a
-- rolled-back savepoint undoes the notification, the queue row and the
-- setting together. A session that sets rlsworker.enqueue_notified itself
-- only delays the wake-up of its own jobs until a worker's next poll.
drop trigger jobs_after_insert on rlsworker.jobs;
drop function rlsworker.jobs_after_insert();

create function rlsworker.jobs_before_insert() returns trigger
language plpgsql set search_path = pg_catalog, pg_temp as $$
begin
    if new.queue is not null
       and new.queue is distinct from current_setting('rlsworker.enqueue_queue', true) then
        insert into rlsworker.queues (name) values (new.queue) on conflict do nothing;
        perform set_config('rlsworker.enqueue_queue', new.queue, true);
    end if;
    if new.run_at <= now()
       and current_setting('rlsworker.enqueue_notified', true) is distinct from 'on' then
        perform pg_notify('rlsworker_jobs', '');
        perform set_config('rlsworker.enqueue_notified', 'on', true);
    end if;
    return new;
end $$;

create trigger jobs_before_insert before insert on rlsworker.jobs
    for each row
    when ((new.queue is not null
           and new.queue is distinct from current_setting('rlsworker.enqueue_queue', true))
          or (new.run_at <= now()
              and current_setting('rlsworker.enqueue_notified', true) is distinct from 'on'))
    execute function rlsworker.jobs_before_insert();

revoke execute on function rlsworker.jobs_before_insert() from public;
