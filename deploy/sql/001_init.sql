-- 001_init: the queue, owned by the admin role. Restricted roles get nothing here.

create schema if not exists rlsworker;
revoke all on schema rlsworker from public;
alter default privileges in schema rlsworker revoke execute on functions from public;

create table rlsworker.workers (
    id           text primary key,
    host         text not null,
    pid          int not null,
    started_at   timestamptz not null default now(),
    heartbeat_at timestamptz not null default now()
);

-- One row per named queue; locked_by names the worker running its one job.
create table rlsworker.queues (
    name      text primary key,
    locked_by text,
    locked_at timestamptz
);

create table rlsworker.jobs (
    id                 bigint generated always as identity primary key,
    task               text not null check (task ~ '^[A-Za-z0-9_.:-]{1,128}$'),
    queue              text check (queue is null or length(queue) between 1 and 128),
    payload            jsonb not null default '{}' check (jsonb_typeof(payload) = 'object'),
    claims             jsonb check (claims is null or jsonb_typeof(claims) = 'object'),
    subject            text check (subject is null or length(subject) between 1 and 255),
    claims_verified_at timestamptz,
    run_as             text check (run_as is null or run_as ~ '^[A-Za-z_][A-Za-z0-9_$-]{0,62}$'),
    priority           int not null default 0,
    run_at             timestamptz not null default now(),
    attempts           int not null default 0,
    max_attempts       int check (max_attempts is null or max_attempts between 1 and 1000),
    state              text not null default 'queued'
                       check (state in ('queued', 'running', 'dead')),
    last_error         text,
    job_key            text unique,
    locked_by          text,
    locked_at          timestamptz,
    lock_token         uuid,
    cancel_requested   boolean not null default false,
    created_at         timestamptz not null default now(),
    updated_at         timestamptz not null default now()
);

comment on column rlsworker.jobs.priority is 'smaller runs first (default 0)';
comment on column rlsworker.jobs.max_attempts is 'null: the task''s max_attempts, else the worker default';
comment on column rlsworker.jobs.run_as is 'null: the task''s run_as; user | system | a restricted role name';

-- Claiming walks this index in order; it holds only ready-or-waiting rows.
create index jobs_claim_idx on rlsworker.jobs (priority, run_at, id) where state = 'queued';
create index jobs_running_idx on rlsworker.jobs (locked_by) where state = 'running';
create index jobs_queue_idx on rlsworker.jobs (queue, priority, run_at, id)
    where state = 'queued' and queue is not null;

-- New rows: register their named queues, wake workers when something is ready.
create function rlsworker.jobs_after_insert() returns trigger
language plpgsql set search_path = pg_catalog, pg_temp as $$
begin
    insert into rlsworker.queues (name)
    select distinct queue from new_jobs where queue is not null
    on conflict do nothing;
    if exists (select 1 from new_jobs where run_at <= now()) then
        perform pg_notify('rlsworker_jobs', '');
    end if;
    return null;
end $$;

create trigger jobs_after_insert after insert on rlsworker.jobs
    referencing new table as new_jobs
    for each statement execute function rlsworker.jobs_after_insert();

-- Enqueue. A job key de-duplicates: a queued or dead job with the same key is
-- replaced (job_key_mode 'replace', the default) or kept as it is ('keep');
-- a running job with the key keeps running and a new job is queued after it.
create function rlsworker.add_job(
    task         text,
    payload      jsonb default '{}',
    run_at       timestamptz default null,
    queue        text default null,
    job_key      text default null,
    priority     int default 0,
    max_attempts int default null,
    claims       jsonb default null,
    subject      text default null,
    run_as       text default null,
    job_key_mode text default 'replace'
) returns bigint
language plpgsql set search_path = pg_catalog, pg_temp as $$
declare
    v_subject text := subject;
    v_id bigint;
    v_state text;
begin
    if add_job.task is null then
        raise exception 'rlsworker.add_job: task must not be null';
    end if;
    if payload is null or jsonb_typeof(payload) <> 'object' then
        raise exception 'rlsworker.add_job: payload must be a JSON object, got %',
            coalesce(jsonb_typeof(payload), 'null');
    end if;
    if claims is not null then
        if jsonb_typeof(claims) <> 'object' then
            raise exception 'rlsworker.add_job: claims must be a JSON object';
        end if;
        if octet_length(claims::text) > 8192 then
            raise exception 'rlsworker.add_job: claims are % bytes, more than the 8192 allowed',
                octet_length(claims::text);
        end if;
        if claims ? 'sub' and jsonb_typeof(claims->'sub') <> 'string' then
            raise exception 'rlsworker.add_job: claims.sub must be a string';
        end if;
        if v_subject is null then
            v_subject := claims->>'sub';
        elsif claims ? 'sub' and v_subject <> claims->>'sub' then
            raise exception 'rlsworker.add_job: subject "%" differs from claims.sub', v_subject;
        end if;
    end if;
    if job_key_mode not in ('replace', 'keep') then
        raise exception 'rlsworker.add_job: job_key_mode must be replace or keep, got "%"', job_key_mode;
    end if;

    if job_key is not null then
        select j.id, j.state into v_id, v_state
        from rlsworker.jobs j where j.job_key = add_job.job_key for update;
        if found and v_state <> 'running' then
            if job_key_mode = 'replace' then
                update rlsworker.jobs j set
                    task = add_job.task, payload = add_job.payload,
                    run_at = coalesce(add_job.run_at, now()), queue = add_job.queue,
                    priority = coalesce(add_job.priority, 0),
                    max_attempts = add_job.max_attempts, claims = add_job.claims,
                    subject = v_subject,
                    claims_verified_at = case when add_job.claims is null then null else now() end,
                    run_as = add_job.run_as, state = 'queued', attempts = 0,
                    last_error = null, updated_at = now()
                where j.id = v_id;
                if add_job.queue is not null then
                    insert into rlsworker.queues (name) values (add_job.queue) on conflict do nothing;
                end if;
                if coalesce(add_job.run_at, now()) <= now() then
                    perform pg_notify('rlsworker_jobs', '');
                end if;
            end if;
            return v_id;
        elsif found then
            if job_key_mode = 'keep' then
                return v_id;
            end if;
            update rlsworker.jobs j set job_key = null where j.id = v_id;
        end if;
    end if;

    insert into rlsworker.jobs (task, payload, run_at, queue, job_key, priority,
                                max_attempts, claims, subject, claims_verified_at, run_as)
    values (add_job.task, add_job.payload, coalesce(add_job.run_at, now()), add_job.queue,
            add_job.job_key, coalesce(add_job.priority, 0), add_job.max_attempts,
            add_job.claims, v_subject,
            case when add_job.claims is null then null else now() end, add_job.run_as)
    returning id into v_id;
    return v_id;
end $$;

-- Claim up to p_max ready jobs for worker p_worker: smallest priority first,
-- then run_at, then id; at most one running job per named queue. One
-- set-based statement when no named queue has ready work (the common case);
-- the per-row loop that keeps named queues serial runs only when one does.
create function rlsworker.claim_jobs(p_worker text, p_max int)
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

create function rlsworker.unlock_queues(p_worker text, p_queues text[])
returns void
language sql set search_path = pg_catalog, pg_temp as $$
    update rlsworker.queues q set locked_by = null, locked_at = null
    where q.name = any (p_queues) and q.locked_by = p_worker;
$$;

-- Succeeded jobs leave the table.
create function rlsworker.complete_jobs(p_worker text, p_ids bigint[])
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

-- Failed attempts: back to the queue after a delay, or dead.
create function rlsworker.fail_jobs(p_worker text, p_ids bigint[], p_errors text[],
                                    p_delays_ms bigint[], p_dead boolean[])
returns int
language plpgsql set search_path = pg_catalog, pg_temp as $$
declare
    qs text[];
    n int;
begin
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
        where j.id = f.id and j.locked_by = p_worker and j.state = 'running'
        returning j.queue
    )
    select array_agg(queue) filter (where queue is not null), count(*) into qs, n from u;
    if qs is not null then
        perform rlsworker.unlock_queues(p_worker, qs);
    end if;
    return n;
end $$;

-- Claimed jobs given back without running (shutdown, lost connection before
-- start): the attempt is not counted.
create function rlsworker.release_jobs(p_worker text, p_ids bigint[])
returns int
language plpgsql set search_path = pg_catalog, pg_temp as $$
declare
    qs text[];
    n int;
begin
    with u as (
        update rlsworker.jobs j set
            state = 'queued', attempts = greatest(j.attempts - 1, 0),
            locked_by = null, locked_at = null, lock_token = null, updated_at = now()
        where j.id = any (p_ids) and j.locked_by = p_worker and j.state = 'running'
        returning j.queue
    )
    select array_agg(queue) filter (where queue is not null), count(*) into qs, n from u;
    if qs is not null then
        perform rlsworker.unlock_queues(p_worker, qs);
    end if;
    if n > 0 then
        perform pg_notify('rlsworker_jobs', '');
    end if;
    return n;
end $$;

revoke execute on all functions in schema rlsworker from public;
