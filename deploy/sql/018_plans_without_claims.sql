-- 018_plans_without_claims: a group of user jobs may reuse one plan of a
-- task's statement, made while no claims are set, once it is shown that the
-- plan does not depend on the claims.
--
-- A group (jobs/exec/group.c) prepares each task statement once and has,
-- until now, planned it again for every job (plan_cache_mode =
-- force_custom_plan): a generic plan is made once, and a policy function
-- wrongly marked IMMUTABLE that reads the claims is evaluated while it is
-- made, so the plan would keep the claims of the job that made it. Planning
-- every job was about a third of the server's time in a user drain
-- (docs/benchmarks.md).
--
-- rlsworker_api.plan_generic(stmts) runs in the group's transaction before
-- its first job, right after that job's settings:
--   1. plans a copy of each statement with the first job's claims and keeps
--      its EXPLAIN (VERBOSE) text; the copy is deallocated;
--   2. clears the claims (request.jwt.claims and the
--      request.jwt.claim.<name> settings made from them become '');
--   3. plans each statement itself generically, now without claims: this is
--      the plan PostgreSQL keeps for the statement (EXPLAIN EXECUTE makes
--      and caches a prepared statement's generic plan without running it);
--   4. answers '' when every pair of texts is the same. The worker then
--      sets plan_cache_mode = auto with each job's claims, as PostgreSQL
--      has it for any prepared statement, instead of force_custom_plan.
-- A function evaluated while planning that reads the claims puts them into
-- the plan as a constant, so the texts differ (or planning without claims
-- fails): the group then plans every job as before, and the answer names
-- the statement for the worker's log. Any error ends in such an answer.
--
-- It runs as the caller (the restricted role): the plan it makes must be
-- the one that role's own executions use (a plan depends on the role under
-- RLS). It sets no search_path for the same reason: a prepared statement
-- is analysed again, with the search_path of the moment, when that changed;
-- every name it uses itself is schema-qualified. It touches nothing but the
-- caller's own session: its prepared statements and settings.

-- The EXPLAIN (VERBOSE, COSTS OFF) text of a prepared statement's plan,
-- with null for each of its nparams parameters; making the plan caches it
-- as the statement's generic plan when plan_cache_mode says so.
create function rlsworker_api.plan_text(p_name text, p_nparams int) returns text
language plpgsql as $$
declare
    v_line record;
    v_plan text := '';
begin
    for v_line in execute pg_catalog.format('explain (verbose, costs off) execute %I%s', p_name,
            case when p_nparams = 0 then ''
                 else '(' || pg_catalog.array_to_string(
                          pg_catalog.array_fill('null'::text, array[p_nparams]), ',') || ')' end) loop
        v_plan := v_plan || v_line."QUERY PLAN" || E'\n';
    end loop;
    return v_plan;
end $$;

create function rlsworker_api.plan_generic(p_stmts text[])
returns text
language plpgsql as $$
declare
    v_name text;
    v_sql text;
    v_types text;
    v_probe text;
    v_with text[] := '{}';        -- each statement's plan with the claims
    v_nparams int[] := '{}';      -- and its number of parameters
    v_key text;
    v_why text;
    i int;
begin
    if pg_catalog.cardinality(p_stmts) is null then
        return 'no statements';
    end if;
    v_probe := p_stmts[1] || '_probe';
    -- 1. each statement planned with the first job's claims, in a copy
    begin
        perform pg_catalog.set_config('plan_cache_mode', 'force_generic_plan', true);
        foreach v_name in array p_stmts loop
            -- a statement PREPAREd in SQL shows that command's whole text
            select case when ps.from_sql
                        then pg_catalog.regexp_replace(ps.statement,
                                 '^\s*prepare\s+("[^"]+"|\S+?)\s*(\([^)]*\))?\s+as\s+', '', 'i')
                        else ps.statement end,
                   pg_catalog.array_to_string(ps.parameter_types::text[], ','),
                   pg_catalog.cardinality(ps.parameter_types)
              into v_sql, v_types, i
              from pg_catalog.pg_prepared_statements ps where ps.name = v_name;
            if not found then
                v_why := pg_catalog.format('statement %s is not prepared', v_name);
                exit;
            end if;
            execute pg_catalog.format('prepare %I%s as %s', v_probe,
                                      case when i = 0 then '' else '(' || v_types || ')' end, v_sql);
            v_with := v_with || rlsworker_api.plan_text(v_probe, i);
            v_nparams := v_nparams || i;
            execute pg_catalog.format('deallocate %I', v_probe);
        end loop;
    exception when others then
        get stacked diagnostics v_why = message_text;
        v_why := pg_catalog.format('planning with the claims failed: %s', v_why);
    end;
    if exists (select from pg_catalog.pg_prepared_statements ps where ps.name = v_probe) then
        execute pg_catalog.format('deallocate %I', v_probe);   -- left by an error
    end if;

    -- 2. no claims: each job sets its own in its savepoint
    begin
        for v_key in select pg_catalog.jsonb_object_keys(c.claims) from (
                select nullif(pg_catalog.current_setting('request.jwt.claims', true), '')::jsonb
                       as claims) c
                where pg_catalog.jsonb_typeof(c.claims) = 'object' loop
            if pg_catalog.current_setting('request.jwt.claim.' || v_key, true) is not null then
                perform pg_catalog.set_config('request.jwt.claim.' || v_key, '', true);
            end if;
        end loop;
    exception when others then
        get stacked diagnostics v_why = message_text;
        v_why := pg_catalog.format('clearing the claims failed: %s', v_why);
    end;
    perform pg_catalog.set_config('request.jwt.claims', '', true);
    if v_why is not null then
        return v_why;
    end if;

    -- 3. the statement's own generic plan, made and kept without claims
    -- (plan_cache_mode is still force_generic_plan from 1)
    begin
        for i in 1 .. pg_catalog.cardinality(p_stmts) loop
            if rlsworker_api.plan_text(p_stmts[i], v_nparams[i]) is distinct from v_with[i] then
                v_why := pg_catalog.format('the plan of statement %s with the claims differs '
                                           'from its plan without them', p_stmts[i]);
                exit;
            end if;
        end loop;
    exception when others then
        get stacked diagnostics v_why = message_text;
        v_why := pg_catalog.format('planning without the claims failed: %s', v_why);
    end;
    return coalesce(v_why, '');
end $$;

revoke all on function rlsworker_api.plan_text(text, int) from public;
grant execute on function rlsworker_api.plan_text(text, int) to public;
revoke all on function rlsworker_api.plan_generic(text[]) from public;
grant execute on function rlsworker_api.plan_generic(text[]) to public;
