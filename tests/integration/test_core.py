"""The working core (issue 2): enqueue, claim, run under RLS, retry, dead,
run_at, priorities, named queues, two workers, bad input."""
import json
import os
import time

import pytest

from helpers import REPO, write_task

DEMO_TASKS = os.path.join(REPO, "deploy", "demo", "tasks")


def run_once(rlsworker, db, tasks, *extra, timeout=120):
    r = rlsworker.cli("run", "--once", "--tasks", str(tasks), *extra,
                      env=db.env(), timeout=timeout)
    assert r.returncode == 0, r.stderr
    return r


def seed_todos(db):
    db.sql("insert into todos (user_id, task) values "
           "('alice', 'a1'), ('alice', 'a2'), ('bob', 'b1'), ('bob', 'b2')")


def test_help_and_version(rlsworker):
    assert rlsworker.cli("--version").stdout.startswith("rlsworker ")
    for cmd in ("migrate", "run", "add", "jobs", "doctor", "cron", "token"):
        r = rlsworker.cli(cmd, "--help")
        assert r.returncode == 0 and "usage" in (r.stdout + r.stderr).lower(), cmd
        r = rlsworker.cli(cmd, "--version")
        assert r.returncode == 0 and r.stdout.startswith("rlsworker "), cmd
    r = rlsworker.cli("frobnicate")
    assert r.returncode == 2 and 'unknown command "frobnicate"' in r.stderr


def test_concurrent_migrations_are_safe(rlsworker, bare_db):
    procs = [rlsworker.spawn("migrate", env=bare_db.env()) for _ in range(6)]
    codes = [p.wait(timeout=60) for p in procs]
    assert codes == [0] * 6, [p.read_stderr() for p in procs]
    applied = sum(int(p.read_stdout().split("(")[1].split()[0]) for p in procs)
    latest = bare_db.val("select max(version) from rlsworker.migrations")
    assert applied == latest == bare_db.val("select count(*) from rlsworker.migrations")
    r = rlsworker.cli("migrate", env=bare_db.env())
    assert r.returncode == 0 and "(0 migrations applied)" in r.stdout


def test_user_job_changes_only_its_users_rows(rlsworker, db):
    seed_todos(db)
    db.sql("select rlsworker.add_job('complete_todos', claims => '{\"sub\":\"alice\"}')")
    run_once(rlsworker, db, DEMO_TASKS)
    rows = dict(db.sql("select task, is_complete from todos"))
    assert rows == {"a1": True, "a2": True, "b1": False, "b2": False}
    # the same task for bob changes only bob's
    db.sql("update todos set is_complete = false where user_id = 'alice'")
    db.sql("select rlsworker.add_job('complete_todos', claims => '{\"sub\":\"bob\"}')")
    run_once(rlsworker, db, DEMO_TASKS)
    rows = dict(db.sql("select task, is_complete from todos"))
    assert rows == {"a1": False, "a2": False, "b1": True, "b2": True}
    assert db.val("select count(*) from rlsworker.jobs") == 0


def test_insert_gets_the_jobs_user(rlsworker, db):
    r = rlsworker.cli("add", "add_todo", "--claims", '{"sub":"carol"}',
                      "--payload", '{"title":"from cli"}', env=db.env())
    assert r.returncode == 0, r.stderr
    run_once(rlsworker, db, DEMO_TASKS)
    assert db.sql("select user_id, task from todos") == [("carol", "from cli")]


def test_sql_and_cli_enqueue_and_job_keys(rlsworker, db):
    a = db.val("select rlsworker.add_job('noop', '{\"v\":1}', job_key => 'k1')")
    b = db.val("select rlsworker.add_job('noop', '{\"v\":2}', job_key => 'k1')")
    assert a == b
    assert db.val("select payload->>'v' from rlsworker.jobs where id = %s", (a,)) == "2"
    r = rlsworker.cli("add", "noop", "--key", "k1", "--payload", '{"v":3}', env=db.env())
    assert r.returncode == 0, r.stderr
    assert int(r.stdout) == a
    r = rlsworker.cli("add", "noop", "--key", "k1", "--key-mode", "keep",
                      "--payload", '{"v":4}', "--json", env=db.env())
    assert json.loads(r.stdout) == {"id": a}
    assert db.val("select payload->>'v' from rlsworker.jobs where id = %s", (a,)) == "3"
    assert db.val("select count(*) from rlsworker.jobs") == 1
    other = db.val("select rlsworker.add_job('noop', job_key => 'k2')")
    assert other != a
    run_once(rlsworker, db, DEMO_TASKS)
    assert db.val("select count(*) from rlsworker.jobs") == 0


def test_failures_retry_with_growing_delay_then_dead(rlsworker, db, tasks_dir):
    write_task(tasks_dir, "boom", """
        -- task: boom
        -- run_as: system
        -- scope: global
        -- max_attempts: 4
        select 1 / (:n)::int;
    """)
    job = db.val("select rlsworker.add_job('boom', '{\"n\": 0}')")
    w = rlsworker.spawn("run", "--tasks", str(tasks_dir), "--backoff-base", "400",
                        "--poll-interval", "50", env=db.env())
    delays = {}
    deadline = time.time() + 30
    while time.time() < deadline:
        row = db.one("select state, attempts, extract(epoch from run_at - updated_at) * 1000"
                     " from rlsworker.jobs where id = %s", (job,))
        if row[0] == "queued" and row[1] > 0:
            delays.setdefault(row[1], float(row[2]))
        if row[0] == "dead":
            break
        time.sleep(0.02)
    assert w.stop() == 0
    r = rlsworker.cli("jobs", "show", str(job), "--json", env=db.env())
    shown = json.loads(r.stdout)
    assert shown["state"] == "dead" and shown["attempts"] == 4
    assert "division by zero" in shown["last_error"]
    assert "statement 1" in shown["last_error"]
    # equal jitter: attempt k waits between base*2^(k-1)/2 and base*2^(k-1)
    assert sorted(delays) == [1, 2, 3], delays
    assert 200 <= delays[1] <= 400 + 50
    assert 400 <= delays[2] <= 800 + 50
    assert 800 <= delays[3] <= 1600 + 50
    assert delays[1] < delays[3]


def test_run_at_in_the_future_waits(rlsworker, db):
    db.sql("select rlsworker.add_job('noop', run_at => now() + interval '1 hour')")
    r = rlsworker.cli("add", "noop", "--run-at", "2999-01-01T00:00:00Z", env=db.env())
    assert r.returncode == 0, r.stderr
    run_once(rlsworker, db, DEMO_TASKS)
    assert db.sql("select state, attempts from rlsworker.jobs") == [("queued", 0)] * 2


def make_log_table(db):
    db.sql("create table run_log (id serial, name text, started timestamptz, ended timestamptz)")


def slow_task(tasks_dir, seconds):
    """Logs its start and end in run_log around a sleep."""
    write_task(tasks_dir, "slow", f"""
        -- task: slow
        -- run_as: system
        -- scope: global
        insert into run_log (name, started) values (:name, clock_timestamp());
        select pg_sleep({seconds});
        update run_log set ended = clock_timestamp() where name = :name;
    """)


def hit_task(db, tasks_dir):
    """Counts each run of each job in hits: n > 1 means a job ran twice."""
    db.sql("create table hits (job_id bigint primary key, n int not null default 1)")
    write_task(tasks_dir, "hit", """
        -- task: hit
        -- run_as: system
        -- scope: global
        insert into hits (job_id) values (:job_id::bigint)
        on conflict (job_id) do update set n = hits.n + 1;
    """)


def test_priorities_order(rlsworker, db, tasks_dir):
    make_log_table(db)
    write_task(tasks_dir, "log", """
        -- task: log
        -- run_as: system
        -- scope: global
        insert into run_log (name, started) values (:name, clock_timestamp());
    """)
    for name, prio in [("p5", 5), ("p1", 1), ("p3", 3), ("pm", -2)]:
        db.sql("select rlsworker.add_job('log', jsonb_build_object('name', %s::text), "
               "priority => %s)", (name, prio))
    run_once(rlsworker, db, tasks_dir, "--concurrency", "1")
    assert [r[0] for r in db.sql("select name from run_log order by id")] == \
        ["pm", "p1", "p3", "p5"]


def test_named_queue_runs_serially(rlsworker, db, tasks_dir):
    make_log_table(db)
    slow_task(tasks_dir, 0.15)
    for i in range(5):
        db.sql("select rlsworker.add_job('slow', jsonb_build_object('name', %s::text), "
               "queue => 'serial')", (f"q{i}",))
    for i in range(3):
        db.sql("select rlsworker.add_job('slow', jsonb_build_object('name', %s::text))",
               (f"free{i}",))
    run_once(rlsworker, db, tasks_dir, "--concurrency", "8")
    rows = db.sql("select name, started, ended from run_log where name like 'q%%' "
                  "order by started")
    assert len(rows) == 5
    for prev, nxt in zip(rows, rows[1:]):
        assert prev[2] <= nxt[1], f"{prev[0]} overlapped {nxt[0]}"
    # jobs outside the queue ran alongside it
    free = db.sql("select min(started) from run_log where name like 'free%%'")[0][0]
    assert free < rows[-1][1]
    assert db.val("select count(*) from rlsworker.queues where locked_by is not null") == 0


def test_two_workers_run_each_job_exactly_once(rlsworker, db, tasks_dir):
    hit_task(db, tasks_dir)
    db.sql("select rlsworker.add_job('hit') from generate_series(1, 4000)")
    env = db.env()
    procs = [rlsworker.spawn("run", "--once", "--tasks", str(tasks_dir), "--concurrency", "8",
                             env=env) for _ in range(2)]
    for p in procs:
        assert p.wait(timeout=120) == 0, p.read_stderr()
    assert db.val("select count(*) from hits") == 4000
    assert db.val("select max(n) from hits") == 1
    assert db.val("select count(*) from rlsworker.jobs") == 0
    # both really worked
    for p in procs:
        assert " 0 completed" not in p.read_stderr()


def test_bad_input_is_refused_clearly(rlsworker, db, tasks_dir):
    keep = db.val("select rlsworker.add_job('noop', run_at => now() + interval '1 day')")
    r = rlsworker.cli("add", "noop", "--payload", "{not json", env=db.env())
    assert r.returncode == 2 and "--payload is not valid JSON" in r.stderr
    r = rlsworker.cli("add", "noop", "--payload", "[1,2]", env=db.env())
    assert r.returncode == 2 and "must be a JSON object" in r.stderr
    r = rlsworker.cli("add", "noop", "--claims", '{"sub": 5}', env=db.env())
    assert r.returncode == 2 and "claims.sub must be a string" in r.stderr
    r = rlsworker.cli("add", "noop", "--run-at", "tomorrowish", env=db.env())
    assert r.returncode == 2 and "--run-at" in r.stderr
    r = rlsworker.cli("add", "noop", "--priority", "high", env=db.env())
    assert r.returncode == 2
    r = rlsworker.cli("add", "noop", "--bogus", env=db.env())
    assert r.returncode == 2 and '"--bogus"' in r.stderr
    r = rlsworker.cli("jobs", "show", "abc", env=db.env())
    assert r.returncode == 2
    r = rlsworker.cli("run", "--concurrency", "0", env=db.env())
    assert r.returncode == 2 and "concurrency" in r.stderr
    with pytest.raises(Exception, match="payload must be a JSON object"):
        db.sql("select rlsworker.add_job('noop', '[1]')")
    # a bad task file: run refuses with FILE:LINE, the queue is untouched
    write_task(tasks_dir, "bad", """
        -- task: bad
        -- run_as: system
        -- scope: global
        -- max_attempts: lots
        select 1;
    """)
    r = rlsworker.cli("run", "--once", "--tasks", str(tasks_dir), env=db.env())
    assert r.returncode == 1
    assert "bad.sql:4" in r.stderr and "max_attempts" in r.stderr
    assert db.val("select count(*) from rlsworker.jobs where id = %s and state = 'queued'"
                  " and attempts = 0", (keep,)) == 1


def test_unknown_task_fails_clearly_and_others_run(rlsworker, db):
    db.sql("select rlsworker.add_job('no_such_task')")
    db.sql("select rlsworker.add_job('noop') from generate_series(1, 5)")
    run_once(rlsworker, db, DEMO_TASKS)
    rows = db.sql("select task, attempts, last_error from rlsworker.jobs")
    assert len(rows) == 1
    task, attempts, err = rows[0]
    assert task == "no_such_task" and attempts == 1
    assert 'unknown task "no_such_task"' in err


def test_missing_payload_key_is_a_clear_error(rlsworker, db):
    db.sql("select rlsworker.add_job('add_todo', '{}', claims => '{\"sub\":\"al\"}')")
    run_once(rlsworker, db, DEMO_TASKS)
    err = db.val("select last_error from rlsworker.jobs")
    assert "title" in err
    assert db.val("select count(*) from todos") == 0


def test_jobs_list_stats_retry_cancel(rlsworker, db):
    a = db.val("select rlsworker.add_job('noop', run_at => now() + interval '1 day')")
    r = rlsworker.cli("jobs", "list", "--json", env=db.env())
    listed = json.loads(r.stdout)
    assert [j["id"] for j in listed] == [a] and "claims" not in listed[0]
    r = rlsworker.cli("jobs", "cancel", str(a), env=db.env())
    assert r.returncode == 0 and "cancelled" in r.stdout
    assert db.val("select state from rlsworker.jobs where id = %s", (a,)) == "cancelled"
    r = rlsworker.cli("jobs", "retry", str(a), env=db.env())
    assert r.returncode == 0
    assert db.one("select state, attempts from rlsworker.jobs where id = %s", (a,)) == \
        ("queued", 0)
    r = rlsworker.cli("jobs", "stats", "--json", env=db.env())
    assert json.loads(r.stdout)[0]["task"] == "noop"
    r = rlsworker.cli("jobs", "show", "999999", env=db.env())
    assert r.returncode == 1 and "no job 999999" in r.stderr


def test_sighup_reloads_tasks_and_keeps_them_on_error(rlsworker, db, tasks_dir):
    import signal as sig
    make_log_table(db)
    write_task(tasks_dir, "log", """
        -- task: log
        -- run_as: system
        -- scope: global
        insert into run_log (name) values (:name);
    """)
    w = rlsworker.spawn("run", "--tasks", str(tasks_dir), "--poll-interval", "100", env=db.env())
    w.wait_for("connected to the queue database")
    write_task(tasks_dir, "log2", """
        -- task: log2
        -- run_as: system
        -- scope: global
        insert into run_log (name) values ('v2:' || :name);
    """)
    w.send_signal(sig.SIGHUP)
    w.wait_for(r"SIGHUP: loaded \d+ tasks")
    db.sql("select rlsworker.add_job('log2', '{\"name\": \"a\"}')")
    deadline = time.time() + 10
    while time.time() < deadline and not db.sql("select 1 from run_log"):
        time.sleep(0.05)
    assert db.sql("select name from run_log") == [("v2:a",)]
    # a broken file: the old tasks stay, and keep running
    write_task(tasks_dir, "broken", "-- run_as: nobody knows\nselect 1;")
    w.send_signal(sig.SIGHUP)
    w.wait_for("SIGHUP: kept the old tasks: .*broken.sql:1")
    db.sql("select rlsworker.add_job('log', '{\"name\": \"b\"}')")
    deadline = time.time() + 10
    while time.time() < deadline and len(db.sql("select 1 from run_log")) < 2:
        time.sleep(0.05)
    assert sorted(db.sql("select name from run_log")) == [("b",), ("v2:a",)]
    assert w.stop() == 0


def test_prefetch_keeps_concurrency_and_exactly_once(rlsworker, db, tasks_dir):
    make_log_table(db)
    slow_task(tasks_dir, 0.1)
    db.sql("select rlsworker.add_job('slow', jsonb_build_object('name', 'j' || g)) "
           "from generate_series(1, 12) g")
    run_once(rlsworker, db, tasks_dir, "--concurrency", "2", "--prefetch", "20")
    rows = db.sql("select started, ended from run_log")
    assert len(rows) == 12
    # at no start time were more than 2 jobs running
    for s, _ in rows:
        overlapping = sum(1 for s2, e2 in rows if s2 <= s < e2)
        assert overlapping <= 2
    # two prefetching workers still run each job exactly once
    hit_task(db, tasks_dir)
    db.sql("select rlsworker.add_job('hit') from generate_series(1, 3000)")
    db.sql("select rlsworker.add_job('noop') from generate_series(1, 3000)")
    procs = [rlsworker.spawn("run", "--once", "--tasks", str(tasks_dir), "--concurrency", "4",
                             "--prefetch", "200", env=db.env()) for _ in range(2)]
    for p in procs:
        assert p.wait(timeout=120) == 0, p.read_stderr()
    assert db.one("select count(*), max(n) from hits") == (3000, 1)
    assert db.val("select count(*) from rlsworker.jobs") == 0


def test_prefetched_jobs_go_back_uncounted_on_sigterm(rlsworker, db, tasks_dir):
    write_task(tasks_dir, "nap", """
        -- task: nap
        -- run_as: system
        -- scope: global
        select pg_sleep(60);
    """)
    db.sql("select rlsworker.add_job('nap') from generate_series(1, 5)")
    w = rlsworker.spawn("run", "--tasks", str(tasks_dir), "--concurrency", "1", "--prefetch", "10",
                        "--shutdown-timeout", "1", env=db.env())
    deadline = time.time() + 15
    while time.time() < deadline and \
            db.val("select count(*) from rlsworker.jobs where state = 'running'") < 5:
        time.sleep(0.05)
    assert db.val("select count(*) from rlsworker.jobs where state = 'running'") == 5
    time.sleep(0.5)
    assert w.stop(timeout=20) == 0
    assert db.sql("select state, attempts, locked_by from rlsworker.jobs") == \
        [("queued", 0, None)] * 5


def test_add_jobs_in_bulk(rlsworker, db):
    specs = [{"task": "add_todo", "payload": {"title": f"t{i}"}, "claims": {"sub": f"u{i % 3}"}}
             for i in range(6)]
    specs.insert(2, {"task": "noop", "job_key": "bulk-key", "priority": 3})
    rows = db.sql("select idx, id from rlsworker.add_jobs(%s::jsonb)", (json.dumps(specs),))
    assert sorted(r[0] for r in rows) == list(range(1, 8))
    by_idx = dict(rows)
    for idx, spec in enumerate(specs, 1):
        task, subject = db.one("select task, subject from rlsworker.jobs where id = %s",
                               (by_idx[idx],))
        assert task == spec["task"]
        assert subject == spec.get("claims", {}).get("sub")
    # the keyed element de-duplicates like add_job
    again = db.val("select id from rlsworker.add_jobs('[{\"task\": \"noop\", \"job_key\": \"bulk-key\"}]')")
    assert again == by_idx[3]
    # one bad element: a clear error naming it, nothing queued
    before = db.val("select count(*) from rlsworker.jobs")
    for bad, why in [('[{"task": "noop"}, {"task": "noop", "payload": [1]}]', "job 2 is invalid: payload"),
                     ('[{"task": "noop", "colour": "red"}]', "job 1 is invalid: it has a key"),
                     ('[{"task": "noop", "claims": {"sub": "a"}, "subject": "b"}]', "differs"),
                     ('{"task": "noop"}', "must be a JSON array")]:
        with pytest.raises(Exception, match=why):
            db.sql("select * from rlsworker.add_jobs(%s::jsonb)", (bad,))
    assert db.val("select count(*) from rlsworker.jobs") == before
    run_once(rlsworker, db, DEMO_TASKS)
    assert db.val("select count(*) from todos") == 6
    assert sorted(r[0] for r in db.sql("select distinct user_id from todos")) == ["u0", "u1", "u2"]
