-- 005_add_jobs: enqueue many jobs in one call. `jobs` is a JSON array of
-- objects with the keys of add_job (task required; payload, run_at, queue,
-- job_key, priority, max_attempts, claims, subject, run_as optional).
-- Jobs without a job_key are inserted set-based; keyed jobs go through
-- add_job so de-duplication behaves the same. Returns (idx, id): idx is the
-- 1-based position in the array. An invalid element fails the whole call,
-- naming its position: nothing is queued.
create function rlsworker.add_jobs(jobs jsonb)
returns table (idx bigint, id bigint)
language plpgsql set search_path = pg_catalog, pg_temp as $$
declare
    bad record;
begin
    if jobs is null or jsonb_typeof(jobs) <> 'array' then
        raise exception 'rlsworker.add_jobs: jobs must be a JSON array of job objects';
    end if;
    select t.ord, case
        when jsonb_typeof(t.j) <> 'object' then 'it is not a JSON object'
        when jsonb_typeof(t.j->'task') is distinct from 'string' then 'task must be a string'
        when exists (select 1 from jsonb_object_keys(t.j) k
                     where k not in ('task', 'payload', 'run_at', 'queue', 'job_key', 'priority',
                                     'max_attempts', 'claims', 'subject', 'run_as'))
            then 'it has a key add_job does not take'
        when t.j ? 'payload' and jsonb_typeof(t.j->'payload') <> 'object'
            then 'payload must be a JSON object'
        when t.j ? 'claims' and jsonb_typeof(t.j->'claims') <> 'object'
            then 'claims must be a JSON object'
        when octet_length((t.j->'claims')::text) > 8192
            then 'claims are more than the 8192 bytes allowed'
        when t.j->'claims' ? 'sub' and jsonb_typeof(t.j->'claims'->'sub') <> 'string'
            then 'claims.sub must be a string'
        when t.j ? 'subject' and t.j->'claims' ? 'sub'
             and t.j->>'subject' <> t.j->'claims'->>'sub'
            then 'subject differs from claims.sub'
        end as why
    into bad
    from jsonb_array_elements(jobs) with ordinality as t(j, ord)
    where jsonb_typeof(t.j) <> 'object'
       or jsonb_typeof(t.j->'task') is distinct from 'string'
       or exists (select 1 from jsonb_object_keys(t.j) k
                  where k not in ('task', 'payload', 'run_at', 'queue', 'job_key', 'priority',
                                  'max_attempts', 'claims', 'subject', 'run_as'))
       or (t.j ? 'payload' and jsonb_typeof(t.j->'payload') <> 'object')
       or (t.j ? 'claims' and jsonb_typeof(t.j->'claims') <> 'object')
       or octet_length((t.j->'claims')::text) > 8192
       or (t.j->'claims' ? 'sub' and jsonb_typeof(t.j->'claims'->'sub') <> 'string')
       or (t.j ? 'subject' and t.j->'claims' ? 'sub' and t.j->>'subject' <> t.j->'claims'->>'sub')
    order by t.ord
    limit 1;
    if found then
        raise exception 'rlsworker.add_jobs: job % is invalid: %', bad.ord, bad.why;
    end if;

    return query
    with specs as (
        select t.ord, t.j from jsonb_array_elements(jobs) with ordinality as t(j, ord)
        where not t.j ? 'job_key' or t.j->'job_key' = 'null'::jsonb
    ), ins as (
        insert into rlsworker.jobs (task, payload, run_at, queue, priority, max_attempts,
                                    claims, subject, claims_verified_at, run_as)
        select s.j->>'task', coalesce(s.j->'payload', '{}'),
               coalesce((s.j->>'run_at')::timestamptz, now()), s.j->>'queue',
               coalesce((s.j->>'priority')::int, 0), (s.j->>'max_attempts')::int,
               s.j->'claims', coalesce(s.j->>'subject', s.j->'claims'->>'sub'),
               case when s.j ? 'claims' then now() end, s.j->>'run_as'
        from specs s order by s.ord
        returning rlsworker.jobs.id
    )
    -- identities are drawn in insert order: pair them with the positions
    select o.ord, i.id
    from (select s.ord, row_number() over (order by s.ord) as n from specs s) o
    join (select ins.id, row_number() over (order by ins.id) as n from ins) i using (n);

    return query
    select t.ord, rlsworker.add_job(
        task => t.j->>'task', payload => coalesce(t.j->'payload', '{}'),
        run_at => (t.j->>'run_at')::timestamptz, queue => t.j->>'queue',
        job_key => t.j->>'job_key', priority => coalesce((t.j->>'priority')::int, 0),
        max_attempts => (t.j->>'max_attempts')::int, claims => t.j->'claims',
        subject => t.j->>'subject', run_as => t.j->>'run_as')
    from jsonb_array_elements(jobs) with ordinality as t(j, ord)
    where t.j ? 'job_key' and t.j->'job_key' <> 'null'::jsonb
    order by t.ord;
end $$;

revoke execute on function rlsworker.add_jobs(jsonb) from public;
