"""A killed worker's jobs come back in seconds (issue 14): its control
session ends with the process, and any live worker's sweep (about once a
second) sees that. A worker that stops without closing its sockets (a
machine that vanished; here SIGSTOP) is still recovered through the
heartbeat and lock_timeout. Both times are printed (pytest -s)."""
import signal
import time

import pytest

from helpers import write_task

pytestmark = pytest.mark.chaos

QUICK = ("--poll-interval", "200", "--backoff-base", "200", "--backoff-max", "2",
         "--reconnect-max", "1")


def wait_until(pred, timeout, step=0.05, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return time.time()
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def setup_long_jobs(db, tasks_dir, n=3):
    db.sql("create table counters (job_id bigint primary key, n int not null)")
    write_task(tasks_dir, "count", """
        -- task: count
        -- run_as: system
        -- scope: global
        select pg_sleep(case when :attempt::int = 1 and (:payload::jsonb ? 'long')
                             then 60 else 0 end);
        insert into counters (job_id, n) values (:job_id::bigint, 1)
        on conflict (job_id) do update set n = counters.n + 1;
    """)
    return [db.val("select rlsworker.add_job('count', '{\"long\": true}')") for _ in range(n)]


def start_pair(rlsworker, db, tasks_dir, *extra):
    env = db.env()
    a = rlsworker.spawn("run", "--tasks", str(tasks_dir), "--concurrency", "3", *QUICK, *extra,
                        env=env)
    wait_until(lambda: db.val("select count(*) from rlsworker.jobs where state = 'running'") == 3,
               15, what="A to run the long jobs")
    b = rlsworker.spawn("run", "--tasks", str(tasks_dir), *QUICK, *extra, env=env)
    b.wait_for("connected to the queue database")
    wait_until(lambda: db.val("select count(*) from rlsworker.workers") == 2, 10,
               what="B to register")
    return a, b


def done_count(db, ids):
    return db.val("select count(*) from counters where job_id = any(%s)", (ids,))


def test_kill9_jobs_back_within_3s_with_default_lock_timeout(rlsworker, db, tasks_dir):
    long_jobs = setup_long_jobs(db, tasks_dir)
    # defaults: lock_timeout 20 s, heartbeat_interval 5 s
    a, b = start_pair(rlsworker, db, tasks_dir)
    assert db.val("select count(*) from rlsworker.workers where backend_pid is not null") == 2
    time.sleep(1.5)   # past the 1 s grace of a fresh registration
    a.send_signal(signal.SIGKILL)
    killed = time.time()
    a.wait(10)
    done = wait_until(lambda: done_count(db, long_jobs) == 3, 15, what="recovery")
    print(f"\nkill -9 recovery: 3 long jobs re-ran {done - killed:.2f}s after the kill "
          f"(lock_timeout 20 s, session check)")
    assert done - killed <= 3.0
    assert db.val("select count(*) from rlsworker.jobs") == 0
    assert db.val("select max(n) from counters") == 1
    assert b.stop() == 0


def test_stopped_worker_recovered_by_heartbeat(rlsworker, db, tasks_dir):
    """SIGSTOP keeps the sockets open, as a machine that vanished from the
    network does: the session stays, so only the heartbeat tells."""
    long_jobs = setup_long_jobs(db, tasks_dir)
    a, b = start_pair(rlsworker, db, tasks_dir, "--lock-timeout", "4",
                      "--heartbeat-interval", "1", "--shutdown-timeout", "1")
    time.sleep(1.5)
    a.send_signal(signal.SIGSTOP)
    stopped = time.time()
    try:
        time.sleep(2.5)
        assert done_count(db, long_jobs) == 0, "a live session was taken for a dead one"
        done = wait_until(lambda: done_count(db, long_jobs) == 3, 4 + 10, what="recovery")
        print(f"\nvanished worker (SIGSTOP): 3 long jobs re-ran {done - stopped:.2f}s after "
              f"it stopped (lock_timeout 4 s, heartbeat_interval 1 s)")
        # the last heartbeat may be up to heartbeat_interval older than the stop
        assert 4.0 - 1.0 <= done - stopped <= 4 + 3
    finally:
        a.send_signal(signal.SIGCONT)
    # A wakes up, finds it was declared lost, registers again; its old
    # attempts can no longer commit (lock token): still exactly once. When a
    # statement was in flight on its control connection at the stop, the
    # reply timeout (lock_timeout) can fire first on waking: A reconnects
    # and registers again that way (seen once under a full CI run's load).
    a.wait_for("declared lost|no reply from the server for", 15)
    assert db.val("select count(*) from rlsworker.jobs") == 0
    assert db.val("select max(n) from counters") == 1
    assert a.stop() == 0 and b.stop() == 0


def test_session_not_recorded_behind_a_pooler(db):
    """A BackendKeyData pid that is not the registering backend's (what a
    transaction pooler hands out) records no session: such a worker is left
    to the heartbeat, never swept for a session that is not its own."""
    with db.connect(autocommit=True) as c:
        own = c.execute("select rlsworker.register_worker('direct', 'h', 1, pg_backend_pid())"
                        ).fetchone()[0]
        pooled = c.execute("select rlsworker.register_worker('pooled', 'h', 2, -7)"
                           ).fetchone()[0]
    assert own is True and pooled is False
    assert db.val("select backend_pid is null from rlsworker.workers where id = 'pooled'")
    # the 'direct' registration's session has ended with that connection
    time.sleep(1.2)
    db.sql("select rlsworker.sweep_dead_sessions(3600, false)")
    assert [r[0] for r in db.sql("select id from rlsworker.workers order by id")] == ["pooled"]
