"""A running job's row may change under its worker without the job being
taken from it: add_job with the job's key moves the key to a new job (a
running job keeps running, 001), an operator flags it for cancelling. The
statements that end a job found its row, then deleted or updated that row
version by its ctid. When such a change committed in between, that version
was gone and the job was not ended: a built-in job stayed 'running' after
its worker had counted it completed (and ran again once that worker was
gone); a SQL job failed with "no longer held by this worker", its effects
rolled back, and ran again. Migration 022 locks each row as it finds it,
so the statement waits for the change and ends the row's newest version.

Each test holds the change open in a transaction, starts the statement
that ends the job, waits until that statement waits for the row, then
commits the change."""
import json
import threading

import psycopg
import pytest

from helpers import system_task, wait_until

pytestmark = pytest.mark.integration

WORKER = "w-test"


def running_job(db, key="k"):
    """A job with job key `key`, claimed by WORKER: (id, lock_token)."""
    db.sql("select rlsworker.register_worker(%s, 'h', 1, 0)", (WORKER,))
    db.sql("select rlsworker.add_job('noop', job_key => %s)", (key,))
    return db.one("select id, lock_token from rlsworker.claim_jobs(%s, 1)", (WORKER,))


def lock_waiters(db):
    return db.val("select count(*) from pg_stat_activity"
                  " where datname = current_database() and wait_event_type = 'Lock'")


def behind_a_change(db, change, call, params):
    """Runs `change` in an open transaction, then `call` on another
    connection until it waits for the row; commits the change and returns
    what `call` returned (or the error it raised)."""
    out = {}

    def end_the_job():
        with db.connect(autocommit=True) as conn:
            try:
                out["value"] = conn.execute(call, params).fetchone()[0]
            except psycopg.Error as e:
                out["error"] = e

    with db.connect() as changer:
        changer.execute(change)
        t = threading.Thread(target=end_the_job)
        t.start()
        wait_until(lambda: lock_waiters(db) == 1 or not t.is_alive(), 10,
                   what="the statement to wait for the changed row")
        assert t.is_alive(), "it did not wait for the change: %r" % out
        changer.commit()
        t.join(15)
    assert not t.is_alive()
    return out


CHANGES = {
    # add_job's job_key path: the running job's key is cleared and a new
    # job takes it
    "key taken": "select rlsworker.add_job('noop', job_key => 'k')",
    "cancel flagged": "select rlsworker.cancel_job((select id from rlsworker.jobs"
                      " where job_key = 'k'))",
}


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_a_batch_completion_ends_a_job_changed_while_it_ran(db, change):
    job, _ = running_job(db)
    out = behind_a_change(db, CHANGES[change], "select rlsworker.complete_jobs(%s, %s)",
                          (WORKER, [job]))
    assert out == {"value": 1}
    assert db.val("select count(*) from rlsworker.jobs where id = %s", (job,)) == 0
    assert db.val("select count(*) from rlsworker.job_runs where job_id = %s"
                  " and outcome = 'succeeded'", (job,)) == 1


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_a_jobs_own_completion_ends_it_changed_while_it_ran(db, change):
    job, token = running_job(db)
    out = behind_a_change(db, CHANGES[change],
                          "select 1 from rlsworker_api.complete_job(%s, %s)", (job, token))
    assert out == {"value": 1}
    assert db.val("select count(*) from rlsworker.jobs where id = %s", (job,)) == 0


def test_a_groups_completion_ends_a_job_changed_while_it_ran(db):
    job, token = running_job(db)
    out = behind_a_change(db, CHANGES["key taken"],
                          "select 1 from rlsworker_api.complete_jobs(%s, %s)",
                          ([job], [token]))
    assert out == {"value": 1}
    assert db.val("select count(*) from rlsworker.jobs where id = %s", (job,)) == 0


# what lock recovery does to a job its worker lost (007): the row is the
# worker's no more, and the completion that waited for it must not end it
TAKEN_BACK = ("update rlsworker.jobs set state = 'queued', locked_by = null, locked_at = null,"
              " lock_token = null where job_key = 'k'")


def test_a_job_taken_back_while_its_completion_waits_is_not_completed(db):
    job, token = running_job(db)
    assert behind_a_change(db, TAKEN_BACK, "select rlsworker.complete_jobs(%s, %s)",
                           (WORKER, [job])) == {"value": 0}
    assert db.val("select state from rlsworker.jobs where id = %s", (job,)) == "queued"
    db.sql("update rlsworker.jobs set state = 'running', locked_by = %s, lock_token = %s"
           " where id = %s", (WORKER, token, job))
    out = behind_a_change(db, TAKEN_BACK, "select 1 from rlsworker_api.complete_job(%s, %s)",
                          (job, token))
    assert "no longer held by this worker" in str(out.get("error")), out
    assert db.val("select state from rlsworker.jobs where id = %s", (job,)) == "queued"


def test_a_release_returns_a_job_changed_while_it_was_held(db):
    job, _ = running_job(db)
    out = behind_a_change(db, CHANGES["key taken"], "select rlsworker.release_jobs(%s, %s)",
                          (WORKER, [job]))
    assert out == {"value": 1}
    assert db.val("select state from rlsworker.jobs where id = %s", (job,)) == "queued"


def test_a_failure_records_a_job_changed_while_it_ran(db):
    """fail_jobs locked its rows as it found them before 022 already."""
    job, _ = running_job(db)
    out = behind_a_change(db, CHANGES["key taken"],
                          "select rlsworker.fail_jobs(%s, %s, %s, %s, %s)",
                          (WORKER, [job], ["boom"], [60000], [False]))
    assert out == {"value": 1}
    assert db.val("select state from rlsworker.jobs where id = %s", (job,)) == "queued"


def test_a_sql_job_whose_key_is_taken_while_it_runs_succeeds_once(rlsworker, db, tasks_dir):
    """End to end: a system SQL job counts its runs; while it runs, an open
    transaction queues a new job with its key. The job completes on its
    first attempt, its effect is there once, and the new job runs after."""
    db.sql("create table runs (n serial primary key, job_id bigint not null)")
    system_task(tasks_dir, "counted",
                "insert into runs (job_id) values (:job_id);\nselect pg_sleep(0.5);")
    first = db.val("select rlsworker.add_job('counted', job_key => 'k')")
    w = rlsworker.spawn("run", "--tasks", str(tasks_dir), "--poll-interval", "200",
                        env=db.env())
    wait_until(lambda: db.val("select count(*) from rlsworker.jobs where id = %s"
                              " and state = 'running'", (first,)) == 1, 15,
               what="the job to start")
    with db.connect() as changer:
        second = changer.execute("select rlsworker.add_job('counted', job_key => 'k')"
                                 ).fetchone()[0]
        wait_until(lambda: lock_waiters(db) >= 1, 10,
                   what="the job's completion to wait for the changed row")
        changer.commit()
    wait_until(lambda: db.val("select count(*) from rlsworker.jobs") == 0, 15,
               what="both jobs to end")
    assert w.stop() == 0
    assert [r[0] for r in db.sql("select job_id from runs order by n")] == [first, second]
    assert db.sql("select job_id, outcome, attempts from rlsworker.job_runs"
                  " where job_id in (%s, %s) order by job_id", (first, second)) == \
        [(first, "succeeded", 1), (second, "succeeded", 1)]
    assert "no longer held" not in w.read_stderr()


def test_a_worker_warns_of_completions_it_could_not_record(rlsworker, db, tasks_dir):
    """A built-in job taken from its worker while it ran (as lock recovery
    does when the worker's heartbeat is late) is not completed by the
    worker's batch; the worker says so instead of counting it completed."""
    from test_http_task import Hook
    h = Hook(delay=1.5)
    other = db.connect(autocommit=True)     # the other worker's live session
    try:
        other.execute("select rlsworker.register_worker('w-other', 'h', 1, pg_backend_pid())")
        job = db.val("select rlsworker.add_job('http', %s::jsonb)",
                     (json.dumps({"url": h.url()}),))
        w = rlsworker.spawn("run", "--tasks", str(tasks_dir), "--http-allow", "127.0.0.1/32",
                            env=db.env())
        wait_until(lambda: len(h.requests) == 1, 15, what="the delivery to start")
        db.sql("update rlsworker.jobs set locked_by = 'w-other', lock_token = gen_random_uuid()"
               " where id = %s", (job,))
        w.wait_for("recorded 0 of the 1 jobs this worker completed", timeout=15)
        assert db.val("select locked_by from rlsworker.jobs where id = %s", (job,)) == "w-other"
        assert w.stop() == 0
    finally:
        other.close()
        h.close()
