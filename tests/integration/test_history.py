"""Job history (issue 13): every finished run is recorded in
rlsworker.job_runs (job_history and job_history_batches) in the same
transaction as its outcome, without
claims; `jobs list --state succeeded|failed|cancelled` reads it; the sweep
prunes it after history_retention and counts that in /metrics.

Run: /usr/bin/python3 -m pytest -q tests/integration/test_history.py
"""
import json
import time

import pytest

from helpers import REPO, free_port, write_task

pytestmark = pytest.mark.integration

DEMO_TASKS = REPO + "/deploy/demo/tasks"


def run_once(rlsworker, db, tasks, *extra):
    r = rlsworker.cli("run", "--once", "--tasks", str(tasks), *extra, env=db.env(), timeout=120)
    assert r.returncode == 0, r.stderr
    return r


def history(db, job):
    return db.sql("select outcome, attempts, task, subject, worker_id is not null,"
                  " error, duration >= interval '0' from rlsworker.job_runs"
                  " where job_id = %s order by id", (job,))


def test_succeeded_user_and_system_runs_are_recorded_without_claims(rlsworker, db):
    db.sql("insert into todos (user_id, task) values ('alice', 'a1')")
    user = db.val("select rlsworker.add_job('complete_todos', "
                  "claims => '{\"sub\":\"alice\",\"secret_claim\":\"s3cr3t\"}')")
    noop = db.val("select rlsworker.add_job('noop', queue => 'q1')")
    run_once(rlsworker, db, DEMO_TASKS)
    assert history(db, user) == [("succeeded", 1, "complete_todos", "alice", True, None, True)]
    assert history(db, noop) == [("succeeded", 1, "noop", None, True, None, True)]
    assert db.val("select queue from rlsworker.job_runs where job_id = %s", (noop,)) == "q1"
    # claims never reach the history: no column holds them
    cols = [r[0] for r in db.sql("select column_name from information_schema.columns"
                                 " where table_schema = 'rlsworker'"
                                 " and table_name in ('job_history', 'job_history_batches', 'job_runs')")]
    assert "claims" not in cols
    assert db.val("select count(*) from rlsworker.job_runs h"
                  " where h::text like '%%s3cr3t%%'") == 0


def test_failed_attempts_dead_and_effects_roll_back_with_history(rlsworker, db, tasks_dir):
    write_task(tasks_dir, "boom", """
        -- task: boom
        -- run_as: system
        -- scope: global
        -- max_attempts: 2
        insert into todos (user_id, task) values ('sys', 'boom-effect');
        select 1 / (:n)::int;
    """)
    job = db.val("select rlsworker.add_job('boom', '{\"n\": 0}')")
    w = rlsworker.spawn("run", "--tasks", str(tasks_dir), "--backoff-base", "50",
                        "--poll-interval", "50", env=db.env())
    deadline = time.time() + 30
    while time.time() < deadline and db.val(
            "select state from rlsworker.jobs where id = %s", (job,)) != "dead":
        time.sleep(0.05)
    assert w.stop() == 0
    rows = history(db, job)
    assert [r[:2] for r in rows] == [("failed", 1), ("dead", 2)]
    assert all("division by zero" in r[5] for r in rows)
    # the run's effects rolled back, and no "succeeded" row was written with them
    assert db.val("select count(*) from todos where task = 'boom-effect'") == 0


def test_error_in_history_is_bounded(rlsworker, db, tasks_dir):
    write_task(tasks_dir, "longerr", """
        -- task: longerr
        -- run_as: system
        -- scope: global
        -- max_attempts: 1
        do $$ begin raise exception '%', repeat('x', 6000); end $$;
    """)
    job = db.val("select rlsworker.add_job('longerr')")
    run_once(rlsworker, db, tasks_dir)
    assert db.val("select length(error) from rlsworker.job_runs where job_id = %s",
                  (job,)) <= 2000
    assert db.val("select outcome from rlsworker.job_runs where job_id = %s",
                  (job,)) == "dead"


def test_cancel_queued_and_running_are_recorded_as_cancelled(rlsworker, db, tasks_dir):
    write_task(tasks_dir, "sleepy", """
        -- task: sleepy
        -- run_as: system
        -- scope: global
        select pg_sleep(30);
    """)
    queued = db.val("select rlsworker.add_job('sleepy', run_at => now() + interval '1 hour')")
    r = rlsworker.cli("jobs", "cancel", str(queued), env=db.env())
    assert r.returncode == 0 and "cancelled" in r.stdout
    assert history(db, queued)[0][:3] == ("cancelled", 0, "sleepy")

    running = db.val("select rlsworker.add_job('sleepy')")
    w = rlsworker.spawn("run", "--tasks", str(tasks_dir), "--poll-interval", "50", env=db.env())
    deadline = time.time() + 20
    while time.time() < deadline and db.val(
            "select state from rlsworker.jobs where id = %s", (running,)) != "running":
        time.sleep(0.05)
    r = rlsworker.cli("jobs", "cancel", str(running), env=db.env())
    assert "cancelling" in r.stdout, r.stdout + r.stderr
    deadline = time.time() + 20
    while time.time() < deadline and not history(db, running):
        time.sleep(0.05)
    assert w.stop() == 0
    assert [h[0] for h in history(db, running)] == ["cancelled"]
    assert db.val("select state from rlsworker.jobs where id = %s", (running,)) == "cancelled"


def test_jobs_list_reads_history(rlsworker, db, tasks_dir):
    ok = [db.val("select rlsworker.add_job('noop')") for _ in range(3)]
    run_once(rlsworker, db, DEMO_TASKS)
    r = rlsworker.cli("jobs", "list", "--state", "succeeded", "--json", env=db.env())
    assert r.returncode == 0, r.stderr
    runs = json.loads(r.stdout)
    assert sorted(x["id"] for x in runs) == sorted(ok)
    assert all(x["state"] == "succeeded" and x["task"] == "noop" and x["duration_ms"] >= 0
               for x in runs)
    assert "claims" not in runs[0]
    r = rlsworker.cli("jobs", "list", "--state", "succeeded", "--limit", "2", env=db.env())
    assert r.returncode == 0 and r.stdout.count("succeeded") == 2, r.stdout
    r = rlsworker.cli("jobs", "list", "--state", "failed", "--json", env=db.env())
    assert json.loads(r.stdout) == []
    r = rlsworker.cli("jobs", "list", "--state", "bogus", env=db.env())
    assert r.returncode == 2 and "succeeded" in r.stderr
    # the live view is unchanged
    r = rlsworker.cli("jobs", "list", "--json", env=db.env())
    assert json.loads(r.stdout) == []


def test_sweep_prunes_old_history_in_bounded_batches(rlsworker, db):
    db.sql("insert into rlsworker.job_history (job_id, task, attempts, outcome, created_at,"
           " started_at, finished_at) select g, 'old', 1, 'succeeded', now() - interval '2 days',"
           " now() - interval '2 days', now() - interval '2 days' from generate_series(1, 25) g")
    db.sql("insert into rlsworker.job_history (job_id, task, attempts, outcome, created_at,"
           " finished_at) values (99, 'new', 1, 'succeeded', now(), now())")
    port = free_port()
    w = rlsworker.spawn("run", "--tasks", DEMO_TASKS, "--listen", "127.0.0.1:%d" % port,
                        "--history-retention", "86400", "--history-prune-batch", "10",
                        "--lock-timeout", "2", env=db.env())
    w.wait_for(r"http intake listening on")
    deadline = time.time() + 20
    while time.time() < deadline and db.val(
            "select count(*) from rlsworker.job_runs where task = 'old'") > 0:
        time.sleep(0.1)
    assert db.val("select count(*) from rlsworker.job_runs where task = 'old'") == 0
    assert db.val("select count(*) from rlsworker.job_runs where task = 'new'") == 1
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()
    conn.close()
    assert "rlsworker_history_pruned_total 25" in text
    assert w.stop() == 0
