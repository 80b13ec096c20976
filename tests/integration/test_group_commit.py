"""Group commit of user jobs (issue 11): ready jobs of one restricted role
share one transaction, each in its own savepoint (docs/guarantees.md, "Group
commit"). Every test proves the jobs really shared a transaction by the
top-level transaction id each job records (txid_current() inside a savepoint
is the transaction's), so none passes merely because nothing was grouped."""
import json

from helpers import wait_until, write_task

SCHEMA = """
create table gc_log (
    n        int not null,
    attempt  int not null,
    xid      bigint not null,
    user_id  text not null default (auth.user_id()),
    leak     text
);
alter table gc_log enable row level security;
create policy gc_log_own on gc_log for all to authenticated_backend
    using ((select auth.user_id()) = user_id)
    with check ((select auth.user_id()) = user_id);

create table gc_seen (
    n        int not null,
    xid      bigint not null,
    visible  int not null,
    user_id  text not null default (auth.user_id())
);
alter table gc_seen enable row level security;
create policy gc_seen_own on gc_seen for all to authenticated_backend
    using ((select auth.user_id()) = user_id)
    with check ((select auth.user_id()) = user_id);

-- a function that leaves a transaction-local setting behind, under a name
-- the task's text does not show
create function gc_mark(v text) returns text language sql
    as $$ select set_config('app.gc_mark', v, true) $$;
grant execute on function gc_mark(text) to authenticated_backend;
"""


def make_schema(db, tmp_path):
    db.sql(SCHEMA)
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    return tasks


def run_once(rlsworker, db, tasks, *extra):
    r = rlsworker.cli("run", "--once", "--tasks", str(tasks), "--concurrency", "1",
                      "--backoff-base", "1", *extra, env=db.env(), timeout=120)
    assert r.returncode == 0, r.stderr
    return r


def add(db, task, n, sub, priority=0):
    db.sql("select rlsworker.add_job(%s, %s::jsonb, claims => %s::jsonb, priority => %s)",
           (task, json.dumps({"n": n}), json.dumps({"sub": sub, "role": "authenticated"}),
            priority))


def wait_for_sleep(db):
    """Until a job of the restricted role is in pg_sleep (only a superuser
    sees another role's statements)."""
    wait_until(lambda: db.sql("select 1 from pg_stat_activity where query like '%%pg_sleep%%'"
                              " and state = 'active' and usename = 'authenticated_backend'",
                              role="postgres"), 20, what="a job in pg_sleep")


def test_failing_job_rolls_back_alone_and_batch_mates_commit_once(rlsworker, db, tmp_path):
    tasks = make_schema(db, tmp_path)
    write_task(tasks, "gc_log.sql", """-- task: gc.log
-- run_as: user
insert into gc_log (n, attempt, xid) values (:n::int, :attempt::int, txid_current());
select 1 / (case when :n::int = 5 and :attempt::int = 1 then 0 else 1 end);
""")
    for n in range(10):
        add(db, "gc.log", n, "user%d" % (n % 3))
    run_once(rlsworker, db, tasks)
    rows = db.sql("select n, attempt, xid, user_id from gc_log order by n")
    assert [r[0] for r in rows] == list(range(10)), rows        # each exactly once
    by_n = {r[0]: r for r in rows}
    assert by_n[5][1] == 2                                        # retried after its failure
    assert all(by_n[n][1] == 1 for n in range(10) if n != 5)
    first = {by_n[n][2] for n in range(10) if n != 5}
    assert len(first) == 1, "the nine first attempts should share one transaction: %r" % rows
    assert by_n[5][2] not in first
    assert all(r[3] == "user%d" % (r[0] % 3) for r in rows), rows  # each its own user's
    assert db.val("select count(*) from rlsworker.jobs") == 0


def test_batch_mate_of_another_user_cannot_read_uncommitted_rows(rlsworker, db, tmp_path):
    tasks = make_schema(db, tmp_path)
    write_task(tasks, "gc_write.sql", """-- task: gc.write
-- run_as: user
insert into gc_log (n, attempt, xid) values (:n::int, :attempt::int, txid_current());
""")
    write_task(tasks, "gc_peek.sql", """-- task: gc.peek
-- run_as: user
insert into gc_seen (n, xid, visible) select :n::int, txid_current(), count(*) from gc_log;
""")
    add(db, "gc.write", 1, "alice", priority=0)
    add(db, "gc.peek", 2, "bob", priority=1)     # after alice's write, same transaction
    add(db, "gc.peek", 3, "alice", priority=2)   # the control: alice sees her own row
    run_once(rlsworker, db, tasks)
    wrote = db.one("select xid from gc_log where n = 1")[0]
    seen = dict((r[0], r[1:]) for r in db.sql("select n, xid, visible, user_id from gc_seen"))
    assert seen[2][0] == wrote and seen[3][0] == wrote, (wrote, seen)
    assert seen[2][1:] == (0, "bob")
    assert seen[3][1:] == (1, "alice")


def test_deferred_constraint_trigger_fires_under_its_jobs_claims(rlsworker, db, tmp_path):
    tasks = make_schema(db, tmp_path)
    db.sql("""
create table gc_audit (n int, fired_as text, row_owner text);
create function gc_audit_fn() returns trigger language plpgsql security definer
    set search_path = public as $$
begin
    insert into gc_audit values (new.n,
        current_setting('request.jwt.claims', true)::jsonb ->> 'sub', new.user_id);
    return null;
end $$;
create constraint trigger gc_audit_trg after insert on gc_log
    deferrable initially deferred for each row execute function gc_audit_fn();
""")
    write_task(tasks, "gc_log.sql", """-- task: gc.log
-- run_as: user
insert into gc_log (n, attempt, xid) values (:n::int, :attempt::int, txid_current());
""")
    for n in range(6):
        add(db, "gc.log", n, "user%d" % n)
    run_once(rlsworker, db, tasks)
    assert db.val("select count(distinct xid) from gc_log") == 1
    rows = db.sql("select n, fired_as, row_owner from gc_audit order by n")
    assert rows == [(n, "user%d" % n, "user%d" % n) for n in range(6)], rows


def test_settings_do_not_leak_to_a_batch_mate(rlsworker, db, tmp_path):
    tasks = make_schema(db, tmp_path)
    write_task(tasks, "gc_mark.sql", """-- task: gc.mark
-- run_as: user
select gc_mark('secret-of-' || :n::text);
insert into gc_log (n, attempt, xid, leak)
values (:n::int, :attempt::int, txid_current(), current_setting('app.gc_mark', true));
""")
    for n in range(4):
        add(db, "gc.mark", n, "user%d" % n)
    run_once(rlsworker, db, tasks)
    rows = db.sql("select n, xid, leak from gc_log order by n")
    assert len({r[1] for r in rows}) == 1, rows
    # each job sees its own mark; none starts with the one before it set:
    # a probe first in the job would see '' (reset all between batch-mates)
    assert [r[2] for r in rows] == ["secret-of-%d" % n for n in range(4)]
    write_task(tasks, "gc_probe.sql", """-- task: gc.probe
-- run_as: user
insert into gc_log (n, attempt, xid, leak)
values (:n::int, :attempt::int, txid_current(), coalesce(current_setting('app.gc_mark', true), ''));
""")
    db.sql("delete from gc_log")
    add(db, "gc.mark", 10, "alice", priority=0)
    add(db, "gc.probe", 11, "bob", priority=1)
    run_once(rlsworker, db, tasks)
    rows = dict((r[0], r[1:]) for r in db.sql("select n, xid, leak from gc_log"))
    assert rows[10][0] == rows[11][0], rows       # one transaction
    assert rows[11][1] == "", rows                # alice's setting did not reach bob


def test_tasks_with_set_or_group_off_run_alone(rlsworker, db, tmp_path):
    tasks = make_schema(db, tmp_path)
    write_task(tasks, "gc_set.sql", """-- task: gc.set
-- run_as: user
set local work_mem = '7MB';
insert into gc_log (n, attempt, xid) values (:n::int, :attempt::int, txid_current());
""")
    write_task(tasks, "gc_off.sql", """-- task: gc.off
-- run_as: user
-- group: off
insert into gc_log (n, attempt, xid) values (:n::int, :attempt::int, txid_current());
""")
    write_task(tasks, "gc_on.sql", """-- task: gc.on
-- run_as: user
insert into gc_log (n, attempt, xid) values (:n::int, :attempt::int, txid_current());
""")
    for n in range(3):
        add(db, "gc.set", n, "u")
        add(db, "gc.off", 10 + n, "u")
        add(db, "gc.on", 20 + n, "u", priority=1)   # claimed after the others, together
    run_once(rlsworker, db, tasks)
    rows = db.sql("select n, xid from gc_log")
    xids = {}
    for n, xid in rows:
        xids.setdefault(xid, []).append(n)
    alone = [ns for ns in xids.values() if any(n < 20 for n in ns)]
    assert all(len(ns) == 1 for ns in alone), xids
    assert sorted(n for ns in xids.values() for n in ns) == [0, 1, 2, 10, 11, 12, 20, 21, 22]
    assert any(len(ns) == 3 for ns in xids.values()), xids   # the gc.on jobs shared one


def test_group_commit_off_runs_each_job_alone(rlsworker, db, tmp_path):
    tasks = make_schema(db, tmp_path)
    write_task(tasks, "gc_on.sql", """-- task: gc.on
-- run_as: user
insert into gc_log (n, attempt, xid) values (:n::int, :attempt::int, txid_current());
""")
    for n in range(5):
        add(db, "gc.on", n, "u")
    run_once(rlsworker, db, tasks, "--group-commit", "off")
    assert db.val("select count(distinct xid) from gc_log") == 5


def test_cancelling_a_running_batch_mate_ends_only_that_job(rlsworker, db, tmp_path):
    import time
    tasks = make_schema(db, tmp_path)
    write_task(tasks, "gc_slow.sql", """-- task: gc.slow
-- run_as: user
select pg_sleep(case when :n::int = 1 then 30 else 0 end);
insert into gc_log (n, attempt, xid) values (:n::int, :attempt::int, txid_current());
""")
    ids = {}
    for n in range(3):
        add(db, "gc.slow", n, "user%d" % n, priority=n)
        ids[n] = db.val("select max(id) from rlsworker.jobs")
    w = rlsworker.spawn("run", "--tasks", str(tasks), "--concurrency", "1",
                        "--backoff-base", "1", env=db.env())
    wait_for_sleep(db)
    r = rlsworker.cli("jobs", "cancel", str(ids[1]), env=db.env())
    assert r.returncode == 0, r.stderr
    deadline = time.time() + 20
    while time.time() < deadline and db.val("select count(*) from gc_log") < 2:
        time.sleep(0.1)
    time.sleep(0.5)
    assert w.stop() == 0
    rows = db.sql("select n, xid from gc_log order by n")
    assert [r[0] for r in rows] == [0, 2], rows                 # each batch-mate once
    assert rows[0][1] == rows[1][1], rows                        # in one transaction
    state, err = db.one("select state, last_error from rlsworker.jobs where id = %s", (ids[1],))
    assert state == "cancelled" and err.startswith("cancelled"), (state, err)
    assert db.val("select count(*) from rlsworker.jobs") == 1


def test_a_group_completes_in_one_statement_and_one_history_row(rlsworker, db, tmp_path):
    tasks = make_schema(db, tmp_path)
    write_task(tasks, "gc_hist.sql", """-- task: gc.hist
-- run_as: user
insert into gc_log (n, attempt, xid) values (:n::int, :attempt::int, txid_current());
""")
    for n in range(6):
        add(db, "gc.hist", n, "user%d" % (n % 2))
    ids = sorted(r[0] for r in db.sql("select id from rlsworker.jobs"))
    run_once(rlsworker, db, tasks)
    assert db.val("select count(distinct xid) from gc_log") == 1    # one group
    assert db.val("select count(*) from rlsworker.jobs") == 0
    # the six successes are one batch row, not six job_history rows
    assert db.val("select count(*) from rlsworker.job_history") == 0
    assert db.val("select count(*) from rlsworker.job_history_batches") == 1
    runs = db.sql("select job_id, outcome, task, subject, run_as, attempts, worker_id is not null"
                  " from rlsworker.job_runs order by job_id")
    assert [r[0] for r in runs] == ids
    assert all(r[1:3] == ("succeeded", "gc.hist") and r[5:] == (1, True) for r in runs), runs
    assert [r[3] for r in runs] == ["user%d" % (n % 2) for n in range(6)]


def test_a_group_runs_its_jobs_in_subject_order(rlsworker, db, tmp_path):
    """Every group takes its users' row locks in the same order (by subject,
    claim order within one), so two groups touching the same users wait for
    each other instead of deadlocking (test_security's forty users deadlock
    without it)."""
    tasks = make_schema(db, tmp_path)
    db.sql("""
        create table gc_order (pos bigint generated always as identity, n int not null,
                               xid bigint not null,
                               user_id text not null default (auth.user_id()));
        alter table gc_order enable row level security;
        create policy gc_order_own on gc_order for all to authenticated_backend
            using ((select auth.user_id()) = user_id)
            with check ((select auth.user_id()) = user_id);
        grant usage on sequence gc_order_pos_seq to authenticated_backend;
    """)
    write_task(tasks, "gc_order.sql", """-- task: gc.order
-- run_as: user
insert into gc_order (n, xid) values (:n::int, txid_current());
""")
    subs = ["zed", "amy", "bob", "amy", "zed", "bob", "carl"]
    for n, sub in enumerate(subs):
        add(db, "gc.order", n, sub)
    run_once(rlsworker, db, tasks)
    rows = db.sql("select n, user_id, xid from gc_order order by pos")
    assert len({r[2] for r in rows}) == 1, rows                      # one group
    assert [(r[0], r[1]) for r in rows] == [
        (1, "amy"), (3, "amy"), (2, "bob"), (5, "bob"), (6, "carl"), (0, "zed"), (4, "zed")]


def test_a_failed_batch_mate_is_recorded_alone_and_the_rest_in_one_row(rlsworker, db, tmp_path):
    tasks = make_schema(db, tmp_path)
    write_task(tasks, "gc_log.sql", """-- task: gc.log
-- run_as: user
insert into gc_log (n, attempt, xid) values (:n::int, :attempt::int, txid_current());
select 1 / (case when :n::int = 2 and :attempt::int = 1 then 0 else 1 end);
""")
    for n in range(5):
        add(db, "gc.log", n, "u")
    run_once(rlsworker, db, tasks)
    assert db.sql("select outcome, attempts from rlsworker.job_history") == [("failed", 1)]
    # the four that committed in the first group, and the retry in its own
    sizes = sorted(r[0] for r in db.sql("select cardinality(ids) from"
                                        " rlsworker.job_history_batches"))
    assert sizes == [1, 4], sizes
    assert db.val("select count(*) from rlsworker.job_runs where outcome = 'succeeded'") == 5


def test_a_batch_mate_taken_by_lock_recovery_rolls_the_group_back(rlsworker, db, tmp_path):
    """Lock recovery hands a running batch-mate back to the queue while its
    group is still open: the group's completion finds it no longer held, the
    whole transaction rolls back, and every job's effect commits exactly once
    (the retaken job's in a later run)."""
    import threading
    tasks = make_schema(db, tmp_path)
    db.sql("create table gc_gate (x int); insert into gc_gate values (1);"
           " grant select on gc_gate to authenticated_backend")
    write_task(tasks, "gc_gated.sql", """-- task: gc.gated
-- run_as: user
insert into gc_log (n, attempt, xid) values (:n::int, :attempt::int, txid_current());
select pg_sleep(case when :n::int = 0 and exists (select 1 from gc_gate) then 2 else 0 end);
""")
    for n in range(4):
        add(db, "gc.gated", n, "user%d" % n, priority=3 - n)   # job 0 last in the group
    taken = {}

    def recover_one():
        wait_for_sleep(db)
        # what lock recovery does to a dead worker's job
        taken["id"] = db.val("update rlsworker.jobs set state = 'queued', locked_by = null,"
                             " locked_at = null, lock_token = null"
                             " where payload->>'n' = '1' and state = 'running' returning id")
        db.sql("delete from gc_gate")

    t = threading.Thread(target=recover_one)
    t.start()
    r = run_once(rlsworker, db, tasks)
    t.join()
    assert taken["id"], "the job was not running in a group when recovery came"
    assert "no longer held by this worker" in r.stderr and "go back to the queue" in r.stderr
    rows = db.sql("select n, count(*) from gc_log group by n order by n")
    assert rows == [(n, 1) for n in range(4)], rows                 # each exactly once
    assert db.val("select count(*) from rlsworker.jobs") == 0
    assert db.val("select count(*) from rlsworker.job_runs where outcome = 'succeeded'") == 4


PREPARED = ("insert into gc_seen (n, xid, visible) select :n::int, txid_current(), count(*)"
            " from pg_prepared_statements where name like 'rlsworker%%';\n")


def test_a_group_prepares_its_statements_once(rlsworker, db, tmp_path):
    tasks = make_schema(db, tmp_path)
    write_task(tasks, "gc_prep.sql", "-- task: gc.prep\n-- run_as: user\n" + PREPARED)
    for n in range(4):
        add(db, "gc.prep", n, "u", priority=n)
    run_once(rlsworker, db, tasks)
    seen = db.sql("select n, visible from gc_seen order by n")
    assert db.val("select count(distinct xid) from gc_seen") == 1
    # the first job prepared its statements as it ran; each later one found
    # them all there (savepoint, resets, claims, the task, set constraints, release)
    assert seen[0][1] >= 3 and seen[1][1] >= 7 and seen[3][1] == seen[1][1], seen
    # the session reset deallocates them: a later group starts with none
    db.sql("delete from gc_seen")
    add(db, "gc.prep", 9, "u")
    run_once(rlsworker, db, tasks)
    assert db.sql("select n, visible from gc_seen") == [(9, seen[0][1])]


def test_group_prepare_off_sends_unnamed_statements(rlsworker, db, tmp_path):
    tasks = make_schema(db, tmp_path)
    write_task(tasks, "gc_prep.sql", "-- task: gc.prep\n-- run_as: user\n" + PREPARED)
    for n in range(3):
        add(db, "gc.prep", n, "u")
    run_once(rlsworker, db, tasks, "--group-prepare", "off")
    assert db.sql("select distinct visible from gc_seen") == [(0,)]
    assert db.val("select count(distinct xid) from gc_seen") == 1


def test_a_prepared_statement_is_planned_for_each_jobs_own_claims(rlsworker, db, tmp_path):
    """A policy through a function wrongly marked IMMUTABLE that reads the
    claims: a generic plan (PostgreSQL switches to one after five runs of a
    prepared statement) would keep the first planner's user. The group plans
    every job's statements for its own claims."""
    tasks = make_schema(db, tmp_path)
    db.sql("""
        create function gc_uid() returns text language plpgsql immutable as $$
        begin return current_setting('request.jwt.claims', true)::jsonb ->> 'sub'; end $$;
        create table gc_secret (user_id text not null, note text);
        alter table gc_secret enable row level security;
        create policy gc_secret_own on gc_secret for select to authenticated_backend
            using (user_id = gc_uid());
        grant select on gc_secret to authenticated_backend;
        insert into gc_secret select 'alice', 'a' from generate_series(1, 3);
        insert into gc_secret select 'bob', 'b' from generate_series(1, 5);
    """)
    write_task(tasks, "gc_count.sql", """-- task: gc.count
-- run_as: user
insert into gc_seen (n, xid, visible) select :n::int, txid_current(), count(*) from gc_secret;
""")
    for n in range(12):
        add(db, "gc.count", n, "alice" if n % 2 == 0 else "bob", priority=n)
    run_once(rlsworker, db, tasks)
    rows = db.sql("select n, visible, user_id from gc_seen order by n")
    assert db.val("select count(distinct xid) from gc_seen") == 1, rows   # one group
    assert [(r[1], r[2]) for r in rows] == [(3, "alice") if n % 2 == 0 else (5, "bob")
                                            for n in range(12)], rows


def test_nothing_a_group_leaves_in_its_session_reaches_the_next_group(rlsworker, db, tmp_path):
    """After a group's commit the worker resets the session as DISCARD ALL
    does, but keeps plans. A function a grouped task calls leaves a session
    setting, an advisory lock, a LISTEN, a temporary table, a prepared
    statement and a sequence's currval; a job of a later group on the same
    connection finds none of them."""
    tasks = make_schema(db, tmp_path)
    db.sql("""
        create sequence gc_seq;
        grant usage on sequence gc_seq to authenticated_backend;
        create function gc_leave() returns int language plpgsql as $$
        begin
            perform set_config('app.left', 'yes', false);
            perform pg_advisory_lock(4242);
            execute 'listen gc_left';
            execute 'create temp table gc_tmp (x int)';
            execute 'prepare gc_prep as select 1';
            perform nextval('gc_seq');
            return pg_backend_pid();
        end $$;
        create function gc_probe() returns text language plpgsql as $$
        declare cur text;
        begin
            begin
                cur := currval('gc_seq')::text;
            exception when others then
                cur := null;
            end;
            return concat_ws(',', pg_backend_pid(), coalesce(current_setting('app.left', true), ''),
                (select count(*) from pg_locks where locktype = 'advisory' and pid = pg_backend_pid()),
                (select count(*) from pg_listening_channels()),
                (select count(*) from pg_class where relname = 'gc_tmp' and relpersistence = 't'),
                (select count(*) from pg_prepared_statements where name = 'gc_prep'),
                coalesce(cur, 'none'));
        end $$;
        grant execute on function gc_leave(), gc_probe() to authenticated_backend;
        create table gc_out (n int, v text);
        grant insert on gc_out to authenticated_backend;
    """)
    write_task(tasks, "gc_leave.sql", """-- task: gc.leave
-- run_as: user
insert into gc_out select :n::int, gc_leave()::text;
insert into gc_out select :n::int + 100, gc_probe();
""")
    write_task(tasks, "gc_probe.sql", """-- task: gc.probe
-- run_as: user
insert into gc_out select :n::int, gc_probe();
""")
    add(db, "gc.leave", 1, "alice")
    w = rlsworker.spawn("run", "--tasks", str(tasks), "--concurrency", "1", "--pool-size", "1",
                        env=db.env())
    wait_until(lambda: db.val("select count(*) from rlsworker.jobs") == 0, 20, "the first group")
    add(db, "gc.probe", 3, "bob")
    wait_until(lambda: db.val("select count(*) from rlsworker.jobs") == 0, 20, "the second group")
    assert w.stop() == 0
    out = dict(db.sql("select n, v from gc_out"))
    pid = out[1]
    # inside the first group the state was there, so the probe can see it
    # (a LISTEN takes effect at the commit)
    assert out[101].split(",") == [pid, "yes", "1", "0", "1", "1", "1"], out
    # the next group, same connection, finds none of it
    assert out[3] == ",".join([pid, "", "0", "0", "0", "0", "none"]), out
