"""Batched history (issue 13, migration 012): the runs one complete_jobs call
finishes are recorded as ONE row of rlsworker.job_history_batches, in the same
statement that deletes them from the queue; rlsworker.job_runs shows every
run, from both tables, one row each; pruning removes old batches whole.

Run: /usr/bin/python3 -m pytest -q tests/integration/test_history_batches.py
"""
import json

import psycopg
import pytest

from helpers import REPO

pytestmark = pytest.mark.integration

DEMO_TASKS = REPO + "/deploy/demo/tasks"


def test_a_drain_of_noop_jobs_writes_one_row_per_batch_and_one_run_per_job(rlsworker, db):
    ids = [r[0] for r in db.sql("select rlsworker.add_job('noop', queue => case when g % 2 = 0"
                                " then null else 'q' || (g % 3) end)"
                                " from generate_series(1, 250) g")]
    r = rlsworker.cli("run", "--once", "--tasks", DEMO_TASKS, "--claim-batch", "100",
                      env=db.env(), timeout=120)
    assert r.returncode == 0, r.stderr
    assert db.val("select count(*) from rlsworker.jobs") == 0
    batches = db.val("select count(*) from rlsworker.job_history_batches")
    # 250 jobs in claims of at most 100: several runs share each row
    assert 3 <= batches < 250, batches
    assert db.val("select count(*) from rlsworker.job_history") == 0
    runs = db.sql("select job_id, outcome, attempts, task, queue, worker_id is not null,"
                  " duration >= interval '0', started_at <= finished_at from rlsworker.job_runs"
                  " order by job_id")
    assert [r[0] for r in runs] == sorted(ids)
    assert all(r[1:4] == ("succeeded", 1, "noop") for r in runs)
    assert all(r[5] and r[6] and r[7] for r in runs)
    # each run keeps its own queue, and the run ids are unique across both tables
    assert [r[4] for r in runs] == [q for (q,) in db.sql(
        "select case when g % 2 = 0 then null else 'q' || (g % 3) end"
        " from generate_series(1, 250) g")]
    assert db.val("select count(distinct id) from rlsworker.job_runs") == 250


def test_a_failed_run_and_batched_successes_page_together(rlsworker, db, tasks_dir):
    (tasks_dir / "boom.sql").write_text(
        "-- task: boom\n-- run_as: system\n-- scope: global\n-- max_attempts: 1\n"
        "select 1 / 0;\n")
    db.sql("select rlsworker.add_job('noop') from generate_series(1, 30)")
    boom = db.val("select rlsworker.add_job('boom')")
    r = rlsworker.cli("run", "--once", "--tasks", str(tasks_dir), env=db.env(), timeout=120)
    assert r.returncode == 0, r.stderr
    # the dead run is a job_history row, the successes batch rows
    assert db.val("select count(*) from rlsworker.job_history") == 1
    assert db.val("select count(*) from rlsworker.job_runs") == 31
    r = rlsworker.cli("jobs", "list", "--history", "--json", "--limit", "100", env=db.env())
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    assert len(rows) == 31
    assert sorted(x["state"] for x in rows).count("succeeded") == 30
    assert [x["id"] for x in rows if x["state"] == "dead"] == [boom]
    r = rlsworker.cli("jobs", "list", "--state", "succeeded", "--json", "--limit", "10", env=db.env())
    assert len(json.loads(r.stdout)) == 10
    # newest first, as in job_history alone
    fin = [x["finished_at"] for x in rows]
    assert fin == sorted(fin, reverse=True)


def test_pruning_removes_old_batches_whole_and_keeps_new_ones(rlsworker, db):
    db.sql("insert into rlsworker.job_history_batches (finished_at, worker_id, ids, job_ids, tasks,"
           " queues, subjects, run_ases, attempts, created_ats, started_ats)"
           " select now() - interval '2 days', 'w', array[nextval('rlsworker.job_history_id_seq'),"
           "  nextval('rlsworker.job_history_id_seq')], array[g, g + 1000], array['old', 'old'],"
           " array[null, null]::text[], array[null, null]::text[], array[null, null]::text[],"
           " array[1, 1], array[now(), now()], array[now(), now()] from generate_series(1, 5) g")
    db.sql("insert into rlsworker.job_history_batches (worker_id, ids, job_ids, tasks, queues,"
           " subjects, run_ases, attempts, created_ats, started_ats)"
           " values ('w', array[nextval('rlsworker.job_history_id_seq')], array[7], array['new'],"
           " array[null]::text[], array[null]::text[], array[null]::text[], array[1], array[now()],"
           " array[now()])")
    assert db.val("select count(*) from rlsworker.job_runs where task = 'old'") == 10
    pruned = db.val("select rlsworker.prune_history(86400, 1000)")
    assert pruned == 10
    assert db.val("select count(*) from rlsworker.job_runs where task = 'old'") == 0
    assert db.val("select count(*) from rlsworker.job_runs where task = 'new'") == 1


def test_the_restricted_role_cannot_read_the_history(db):
    # runs name tasks, subjects and workers of every user: admin only
    for rel in ("rlsworker.job_history_batches", "rlsworker.job_runs"):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            db.sql("select count(*) from %s" % rel, role="authenticated_backend")
