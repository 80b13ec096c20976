-- 004_webhooks: replay protection for POST /v1/webhooks/<source>.
-- Each (source, webhook-id) enqueues at most one job: the seen row and the
-- job commit in one transaction, so a replay (or a sender's retry) finds the
-- row and gets the original job id back instead of a second job. Rows older
-- than 7 days are removed opportunistically: a delivery that old is refused
-- by the timestamp tolerance anyway.

create table rlsworker.webhook_seen (
    source     text not null check (length(source) between 1 and 128),
    webhook_id text not null check (length(webhook_id) between 1 and 256),
    job_id     bigint,
    seen_at    timestamptz not null default now(),
    primary key (source, webhook_id)
);

create index webhook_seen_at_idx on rlsworker.webhook_seen (seen_at);

-- Returns the job id and whether this delivery was a replay (then job_id is
-- the first delivery's job, which may have finished and left the queue).
create function rlsworker.add_webhook_job(p_source text, p_webhook_id text, p_task text,
                                          p_payload jsonb,
                                          out job_id bigint, out replay boolean)
language plpgsql set search_path = pg_catalog, pg_temp as $$
begin
    delete from rlsworker.webhook_seen s where s.seen_at < now() - interval '7 days';
    insert into rlsworker.webhook_seen (source, webhook_id)
    values (p_source, p_webhook_id)
    on conflict do nothing;
    if not found then
        -- a concurrent first delivery has committed by now (the insert waited on it)
        select s.job_id into job_id from rlsworker.webhook_seen s
        where s.source = p_source and s.webhook_id = p_webhook_id;
        replay := true;
        return;
    end if;
    job_id := rlsworker.add_job(task => p_task, payload => p_payload);
    update rlsworker.webhook_seen s set job_id = add_webhook_job.job_id
    where s.source = p_source and s.webhook_id = p_webhook_id;
    replay := false;
end $$;

revoke execute on function rlsworker.add_webhook_job(text, text, text, jsonb) from public;
