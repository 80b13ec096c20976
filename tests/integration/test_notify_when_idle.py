"""A transaction that queues a job notifies the workers only when one of
them waits for work (migration 020, docs/guarantees.md, "Notifications").
A worker whose claims come back full says it is busy, and a transaction
that then queues a job commits without NOTIFY: notifying transactions
commit one at a time, the others together. No job waits for a poll
because of it: a worker that stops being busy first waits until every
transaction that skipped its notification has ended, then claims."""
import select
import time

import psycopg
import pytest

from helpers import system_task, wait_until

pytestmark = pytest.mark.integration


def heard(conn, wait):
    """The channels of the notifications `conn` received within `wait` s."""
    got, deadline = [], time.monotonic() + wait
    while True:
        conn.pgconn.consume_input()
        n = conn.pgconn.notifies()
        while n is not None:
            got.append(n.relname.decode())
            n = conn.pgconn.notifies()
        left = deadline - time.monotonic()
        if left <= 0:
            return got
        select.select([conn.fileno()], [], [], left)


def wants_notify(db):
    return db.val("select bool_and(wants_notify) from rlsworker.workers")


def busy_worker(rlsworker, db, tasks_dir, poll_ms):
    """A worker draining 48 jobs of 0.2 s, 8 at a time: its claims of 8
    come back full, so it says it is busy; it polls every poll_ms. Its
    "mark" jobs record when they ran in table woken."""
    db.sql("create table woken (job_id bigint primary key, at timestamptz not null)")
    system_task(tasks_dir, "slow", "select pg_sleep(0.2);")
    system_task(tasks_dir, "mark", "insert into woken values (:job_id, clock_timestamp());")
    db.sql("select count(*) from rlsworker.add_jobs((select jsonb_agg("
           "jsonb_build_object('task', 'slow')) from generate_series(1, 48)))")
    w = rlsworker.spawn("run", "--tasks", str(tasks_dir), "--concurrency", "8",
                        "--prefetch", "0", "--poll-interval", str(poll_ms), env=db.env())
    wait_until(lambda: wants_notify(db) is False, 15, what="the worker to say it is busy")
    return w


def test_a_job_queued_while_the_worker_is_busy_starts_without_notifying(
        rlsworker, db, tasks_dir):
    w = busy_worker(rlsworker, db, tasks_dir, 30000)      # polls every 30 s only
    with db.connect(autocommit=True) as listener, db.connect() as queuer:
        listener.execute("listen rlsworker_jobs")
        job = queuer.execute("select rlsworker.add_job('mark')").fetchone()[0]
        wait_until(lambda: db.val("select count(*) from rlsworker.jobs where task = 'slow'") == 0,
                   30, what="the slow jobs to end")
        wait_until(lambda: wants_notify(db) is True, 10,
                   what="the worker to say it waits for work")
        time.sleep(0.5)           # its barrier waits for the open transaction
        started = time.monotonic()
        queuer.commit()
        wait_until(lambda: db.val("select count(*) from woken where job_id = %s", (job,)) == 1,
                   10, what="the job queued without a notification to run")
        # well before the 30 s poll: the barrier, not the poll, found it
        assert time.monotonic() - started < 3
        assert heard(listener, 0.3) == [], "the busy worker was notified"
        # waiting for work again: the next transaction notifies
        second = db.val("select rlsworker.add_job('mark')")
        assert heard(listener, 2) == ["rlsworker_jobs"]
        wait_until(lambda: db.val("select count(*) from woken where job_id = %s", (second,)) == 1,
                   5, what="the notified job to run")
    assert w.stop() == 0
    assert "could not" not in w.read_stderr()


def test_the_worker_waits_out_a_transaction_longer_than_its_poll_interval(
        rlsworker, db, tasks_dir):
    """The barrier is tried again for as long as the transaction is open,
    not only for poll_interval: the job runs right after the commit, not at
    the next poll (here 2 s apart; the transaction stays open 3 s after the
    worker goes idle)."""
    w = busy_worker(rlsworker, db, tasks_dir, 2000)
    with db.connect(autocommit=True) as listener, db.connect() as queuer:
        listener.execute("listen rlsworker_jobs")
        job = queuer.execute("select rlsworker.add_job('mark')").fetchone()[0]
        wait_until(lambda: wants_notify(db) is True, 15,
                   what="the worker to say it waits for work")
        time.sleep(3)
        committed = db.val("select clock_timestamp()")
        queuer.commit()
        wait_until(lambda: db.val("select count(*) from woken where job_id = %s", (job,)) == 1,
                   10, what="the job to run")
        assert heard(listener, 0.2) == [], "the busy worker was notified"
    lag = db.val("select extract(epoch from at - %s) from woken where job_id = %s",
                 (committed, job))
    assert lag < 0.6, "the job ran %.2f s after its commit" % lag
    assert w.stop() == 0


def test_a_role_that_may_insert_but_not_ask_still_notifies(db):
    """wake_needed() is the queue owner's; a role granted INSERT on the jobs
    table without it queues and notifies as before."""
    db.sql("create role rw_inserter", role="postgres")
    db.sql("grant usage on schema rlsworker to rw_inserter;"
           " grant insert on rlsworker.jobs to rw_inserter;"
           " grant usage on sequence rlsworker.jobs_id_seq to rw_inserter", role="postgres")
    try:
        with db.connect(role="postgres", autocommit=True) as listener, \
                db.connect(role="postgres") as conn:
            listener.execute("listen rlsworker_jobs")
            conn.execute("set role rw_inserter")
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("select rlsworker.wake_needed()")
            conn.rollback()
            conn.execute("set role rw_inserter")
            conn.execute("insert into rlsworker.jobs (task) values ('noop')")
            conn.commit()
            assert heard(listener, 2) == ["rlsworker_jobs"]
    finally:
        db.sql("drop owned by rw_inserter; drop role rw_inserter", role="postgres")
