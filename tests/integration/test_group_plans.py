"""Plans a group of user jobs makes once (deploy/sql/018, docs/guarantees.md,
"Plans"). A group of at least eight jobs asks rlsworker_api.plan_generic
whether its statements' plans depend on the claims; only when they do not
does PostgreSQL reuse one plan, made while no claims were set. Each test
records, from inside every job, how its own statement was planned
(pg_prepared_statements) and what RLS let it see, and checks that the jobs
shared one transaction."""
import json

from test_group_commit import make_schema, run_once

PLANS = """
create table gp_secret (user_id text, org text, note text);
alter table gp_secret enable row level security;
grant select on gp_secret to authenticated_backend;
insert into gp_secret select 'alice', 'a', 'x' from generate_series(1, 3);
insert into gp_secret select 'bob', 'b', 'y' from generate_series(1, 5);
create table gp_seen (n int, xid bigint, visible int, generic int, custom int,
                      user_id text default (auth.user_id()));
alter table gp_seen enable row level security;
create policy gp_seen_own on gp_seen for all to authenticated_backend
    using ((select auth.user_id()) = user_id) with check ((select auth.user_id()) = user_id);
"""

# the statement records its own planning: generic_plans and custom_plans of
# the prepared statement that is running (the group names it rlsworker_...)
TASK = """-- task: gp.count
-- run_as: user
insert into gp_seen (n, xid, visible, generic, custom)
select :n::int, txid_current(), (select count(*) from gp_secret),
       coalesce(sum(p.generic_plans), -1), coalesce(sum(p.custom_plans), -1)
from pg_prepared_statements p
where p.name like 'rlsworker%%' and p.statement like 'insert into gp_seen%%';
"""


def make_tables(db, tmp_path, policy):
    tasks = make_schema(db, tmp_path)
    db.sql(PLANS + policy)
    (tasks / "gp_count.sql").write_text(TASK)
    return tasks


def add(db, n, claims):
    db.sql("select rlsworker.add_job('gp.count', %s::jsonb, claims => %s::jsonb, priority => %s)",
           (json.dumps({"n": n}), json.dumps(dict(claims, role="authenticated")), n))


def seen(db):
    rows = db.sql("select n, xid, visible, generic, custom, user_id from gp_seen order by n")
    assert len({r[1] for r in rows}) == 1, rows           # one group, one transaction
    return rows


def test_a_group_reuses_a_plan_that_needs_no_claims(rlsworker, db, tmp_path):
    """The usual policy, `(select auth.user_id()) = user_id` through a STABLE
    function: the plan is the same with and without claims, so PostgreSQL
    plans the first five runs and reuses one plan after them, and every job
    still sees only its own user's rows."""
    tasks = make_tables(db, tmp_path, """
        create policy gp_own on gp_secret for select to authenticated_backend
            using ((select auth.user_id()) = user_id);""")
    for n in range(12):
        add(db, n, {"sub": "alice" if n < 6 else "bob"})
    r = run_once(rlsworker, db, tasks, "--log-level", "debug")
    rows = seen(db)
    assert [(x[2], x[5]) for x in rows] == [(3, "alice")] * 6 + [(5, "bob")] * 6, rows
    # plan_generic made one generic plan; the jobs after the fifth used it
    assert rows[-1][3] >= 7 and rows[-1][4] == 5, rows
    assert "plans its statements once, without claims" in r.stderr, r.stderr[-2000:]


def test_a_small_group_plans_every_job(rlsworker, db, tmp_path):
    tasks = make_tables(db, tmp_path, """
        create policy gp_own on gp_secret for select to authenticated_backend
            using ((select auth.user_id()) = user_id);""")
    for n in range(4):
        add(db, n, {"sub": "alice"})
    run_once(rlsworker, db, tasks)
    rows = seen(db)
    assert [(x[3], x[4]) for x in rows] == [(0, n + 1) for n in range(4)], rows


def test_a_function_marked_immutable_that_reads_settings_turns_plan_reuse_off(
        rlsworker, db, tmp_path):
    """The worker looks for such functions when it starts (the query doctor
    uses): while there is one, no group asks plan_generic and every job is
    planned for its own claims, including the plans PL/pgSQL keeps for the
    session inside the functions a task calls, which plan_generic cannot
    see. Here the task's own statement calls gp_count(), whose query goes
    through a policy with gp_uid(): a plan PL/pgSQL reused from the sixth
    call on would count the rows of the user whose claims were set when it
    was made."""
    tasks = make_tables(db, tmp_path, """
        create function gp_uid() returns text language sql immutable as $$
            select nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub' $$;
        create policy gp_own on gp_secret for select to authenticated_backend
            using (user_id = gp_uid());
        create function gp_count() returns int language plpgsql as $$
            begin return (select count(*) from gp_secret); end $$;
        grant execute on function gp_count() to authenticated_backend;""")
    (tasks / "gp_count.sql").write_text(TASK.replace("(select count(*) from gp_secret)",
                                                     "gp_count()"))
    for n in range(12):
        add(db, n, {"sub": "alice" if n % 2 == 0 else "bob"})
    r = run_once(rlsworker, db, tasks)
    rows = sorted(seen(db), key=lambda x: x[0])
    assert [(x[2], x[5]) for x in rows] == [(3, "alice"), (5, "bob")] * 6, rows
    assert sorted(x[4] for x in rows) == list(range(1, 13)), rows     # every run planned
    assert r.stderr.count("gp_uid() is marked IMMUTABLE but reads settings") == 1, r.stderr
    assert "planned one by one" not in r.stderr, r.stderr


# A function the start-up check cannot read: the name of what it calls is
# built at run time.
HIDDEN = """
create function gp_claim(k text) returns text language plpgsql immutable as $$
declare v text;
begin
    execute format('select nullif(%s(%L, true), '''')::jsonb ->> %L',
                   'current' || '_setting', 'request' || '.jwt.claims', k) into v;
    return v;
end $$;
"""


def test_a_plan_that_reads_the_claims_is_made_for_every_job(rlsworker, db, tmp_path):
    """Such a function in the task's own plan: planning folds it into the
    plan, so the plan made with the first job's claims differs from the one
    made without. The group plans every job for its own claims, each sees
    its own rows, and the log says why, once."""
    tasks = make_tables(db, tmp_path, HIDDEN + """
        create policy gp_own on gp_secret for select to authenticated_backend
            using (user_id = gp_claim('sub'));""")
    for n in range(12):
        add(db, n, {"sub": "alice" if n % 2 == 0 else "bob"})
    r = run_once(rlsworker, db, tasks)
    rows = sorted(seen(db), key=lambda x: x[0])
    assert [(x[2], x[5]) for x in rows] == [(3, "alice"), (5, "bob")] * 6, rows
    assert sorted(x[4] for x in rows) == list(range(1, 13)), rows
    assert r.stderr.count("planned one by one for their own claims") == 1, r.stderr
    assert "(task gp.count)" in r.stderr and "mark it STABLE" in r.stderr, r.stderr


def test_a_plan_made_once_holds_no_jobs_claims(rlsworker, db, tmp_path):
    """What plan_generic cannot see either: the function reads a claim the
    first job does not carry (org), so its plans with and without claims are
    the same and the plan is made once. It is made with no claims at all, so
    a later job finds no org in it, never another job's: each job sees its
    own org's rows or none. Had the plan been made when PostgreSQL first
    wanted it (the sixth run, with that job's claims), the jobs of the other
    org would see that job's rows."""
    tasks = make_tables(db, tmp_path, HIDDEN + """
        create policy gp_org on gp_secret for select to authenticated_backend
            using (org = gp_claim('org'));""")
    add(db, 0, {"sub": "a0"})                      # first in the group: no org
    for n in range(1, 12):
        add(db, n, {"sub": "u%02d" % n, "org": "a" if n % 2 else "b"})
    run_once(rlsworker, db, tasks)
    rows = seen(db)
    own = {"a": 3, "b": 5}
    for n, _, visible, _, _, sub in rows:
        org = None if n == 0 else ("a" if n % 2 else "b")
        assert visible in (0, own.get(org, 0)), (n, sub, visible, rows)
    assert rows[-1][3] >= 2, rows                  # the plan made once was used


def test_a_statement_without_parameters_is_planned_for_each_job(rlsworker, db, tmp_path):
    """PostgreSQL always runs a prepared statement without parameters on its
    generic plan, whatever plan_cache_mode says. In a group that did not
    make its plans without claims (fewer than eight jobs here), such a
    statement is sent unnamed, as a job alone sends it, so each job's plan
    is made with its own claims and no batch-mate's claims reach it."""
    tasks = make_tables(db, tmp_path, HIDDEN + """
        create policy gp_own on gp_secret for select to authenticated_backend
            using (user_id = gp_claim('sub'));""")
    (tasks / "gp_count.sql").write_text(
        "-- task: gp.count\n-- run_as: user\n"
        "insert into gp_seen (n, xid, visible, generic, custom)"
        " select -1, txid_current(), count(*), 0, 0 from gp_secret;\n")
    for n in range(4):
        add(db, n, {"sub": "alice" if n % 2 == 0 else "bob"})
    run_once(rlsworker, db, tasks)
    rows = db.sql("select user_id, visible, xid from gp_seen order by user_id")
    assert len({r[2] for r in rows}) == 1, rows
    assert [(r[0], r[1]) for r in rows] == [("alice", 3)] * 2 + [("bob", 5)] * 2, rows


def test_a_statement_that_does_not_prepare_fails_its_own_job_only(rlsworker, db, tmp_path):
    """The group asks about its plans with every task statement prepared, so
    a task file with an error fails that op. The group begins again without
    asking, and the error ends only the jobs of that task, with its file
    and line, as in a smaller group."""
    tasks = make_tables(db, tmp_path, """
        create policy gp_own on gp_secret for select to authenticated_backend
            using ((select auth.user_id()) = user_id);""")
    (tasks / "gp_bad.sql").write_text("-- task: gp.bad\n-- run_as: user\n"
                                      "insert into gp_seen (n, xid, visible) select :n::int, 0, count(*) from gp_nowhere;\n")
    for n in range(10):
        add(db, n, {"sub": "alice"})
    db.sql("select rlsworker.add_job('gp.bad', '{\"n\": 99}'::jsonb, max_attempts => 1,"
           " claims => '{\"sub\": \"alice\", \"role\": \"authenticated\"}'::jsonb, priority => 5)")
    r = run_once(rlsworker, db, tasks)
    rows = seen(db)
    assert [x[0] for x in rows] == list(range(10)) and all(x[2] == 3 for x in rows), rows
    dead = db.sql("select task, last_error from rlsworker.jobs")
    assert len(dead) == 1 and dead[0][0] == "gp.bad", dead
    assert "gp_bad.sql:3" in dead[0][1] and "gp_nowhere" in dead[0][1], dead
    assert "10 completed" in r.stderr, r.stderr[-1500:]
