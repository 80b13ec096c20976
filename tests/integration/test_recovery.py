"""Nothing lost (issue 6): kill -9 recovery, a chaos drain with kills and a
PostgreSQL restart, graceful and immediate stop, timeouts, cancellation,
reconnects. Real processes, real signals, real PostgreSQL."""
import random
import signal
import time

import pytest

from helpers import write_task

pytestmark = pytest.mark.chaos

FAST = ("--lock-timeout", "4", "--heartbeat-interval", "1", "--poll-interval", "200",
        "--backoff-base", "200", "--backoff-max", "2", "--reconnect-max", "1")


def wait_until(pred, timeout, step=0.1, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return time.time()
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def executing_sleeps(db):
    """Job statements really executing on the server (not merely claimed)."""
    return db.val("select count(*) from pg_stat_activity where datname = current_database()"
                  " and state = 'active' and query like '%%pg_sleep%%'"
                  " and pid <> pg_backend_pid()", role="postgres")


def counter_task(tasks_dir, sleep_first=0.0, sleep_each=0.0):
    """Increments the job's counter; a payload {"long": true} makes the first
    attempt sleep sleep_first seconds."""
    write_task(tasks_dir, "count", f"""
        -- task: count
        -- run_as: system
        -- scope: global
        select pg_sleep(case when :attempt::int = 1 and (:payload::jsonb ? 'long')
                             then {sleep_first} else {sleep_each} end);
        insert into counters (job_id, n) values (:job_id::bigint, 1)
        on conflict (job_id) do update set n = counters.n + 1;
    """)


def test_kill9_jobs_rerun_elsewhere_within_lock_timeout(rlsworker, db, tasks_dir):
    db.sql("create table counters (job_id bigint primary key, n int not null)")
    counter_task(tasks_dir, sleep_first=60)
    long_jobs = [db.val("select rlsworker.add_job('count', '{\"long\": true}')")
                 for _ in range(3)]
    env = db.env()
    a = rlsworker.spawn("run", "--tasks", str(tasks_dir), "--concurrency", "3", *FAST, env=env)
    wait_until(lambda: db.val("select count(*) from rlsworker.jobs where state = 'running'") == 3,
               15, what="A to run the long jobs")
    b = rlsworker.spawn("run", "--tasks", str(tasks_dir), *FAST, env=env)
    b.wait_for("connected to the queue database")
    others = [db.val("select rlsworker.add_job('count')") for _ in range(20)]
    wait_until(lambda: db.val("select count(*) from counters where job_id = any(%s)",
                              (others,)) == 20, 15, what="B to run the other jobs")
    a.send_signal(signal.SIGKILL)
    killed = time.time()
    a.wait(10)
    done = wait_until(lambda: db.val("select count(*) from counters where job_id = any(%s)",
                                     (long_jobs,)) == 3, 4 + 10, what="recovery")
    print(f"\nkill -9 recovery: 3 long jobs re-ran {done - killed:.1f}s after the kill "
          f"(lock_timeout 4s)")
    assert db.val("select count(*) from rlsworker.jobs") == 0
    assert db.val("select max(n) from counters") == 1
    assert "was lost" in b.read_stderr() or "lost workers" in b.read_stderr()
    assert b.stop() == 0


def test_chaos_drain_with_kills_and_a_postgres_restart(rlsworker, db, tasks_dir, pg):
    n_jobs = 20000
    db.sql("create table counters (job_id bigint primary key, n int not null)")
    counter_task(tasks_dir, sleep_each=0.005)
    db.sql("select rlsworker.add_job('count') from generate_series(1, %s)", (n_jobs,))
    env = db.env()
    args = ("run", "--tasks", str(tasks_dir), "--concurrency", "8", "--log-level", "warning",
            *FAST)
    workers = [rlsworker.spawn(*args, env=env) for _ in range(4)]
    rng = random.Random(1234)
    start = time.time()
    kills = restarts = 0
    restarted_pg = False

    def remaining():
        return db.val("select count(*) from rlsworker.jobs")

    last_kill = time.time()
    while time.time() - start < 240:
        left = remaining()
        if left == 0:
            break
        if not restarted_pg and left < n_jobs * 0.6:
            pg.restart()
            restarted_pg = True
            continue
        if time.time() - last_kill > 1.0:
            i = rng.randrange(len(workers))
            workers[i].send_signal(signal.SIGKILL)
            workers[i].wait(10)
            kills += 1
            workers[i] = rlsworker.spawn(*args, env=env)
            restarts += 1
            last_kill = time.time()
        time.sleep(0.2)
    elapsed = time.time() - start
    left = remaining()
    # A worker respawned just now may still be in its start-up checks: its
    # SIGTERM is held until the loop watches for it, then it stops cleanly
    # (worker/cli/cmd_run.c, hold_stop_signals), so every stop returns 0.
    for w in workers:
        assert w.stop(timeout=30) == 0
    done = db.val("select count(*) from counters")
    doubled = db.val("select count(*) from counters where n <> 1")
    recovered = db.val("select count(*) from counters c where exists "
                       "(select 1 from rlsworker.jobs j where j.id = c.job_id)")
    print(f"\nchaos: jobs={n_jobs} done={done} doubled={doubled} left={left} kills={kills} "
          f"worker_restarts={restarts} postgres_restarts={int(restarted_pg)} "
          f"time={elapsed:.1f}s")
    assert restarted_pg and kills >= 3
    assert left == 0, db.sql("select state, count(*), min(last_error) from rlsworker.jobs group by 1")
    assert done == n_jobs and doubled == 0 and recovered == 0
    assert db.val("select count(*) from rlsworker.queues where locked_by is not null") == 0


def test_sigterm_lets_short_jobs_finish(rlsworker, db, tasks_dir):
    db.sql("create table counters (job_id bigint primary key, n int not null)")
    counter_task(tasks_dir, sleep_first=1.5)
    for _ in range(3):
        db.sql("select rlsworker.add_job('count', '{\"long\": true}')")
    w = rlsworker.spawn("run", "--tasks", str(tasks_dir), "--shutdown-timeout", "10", *FAST,
                        env=db.env())
    wait_until(lambda: executing_sleeps(db) == 3, 15, what="jobs to start")
    t0 = time.time()
    assert w.stop(signal.SIGTERM, timeout=15) == 0
    assert time.time() - t0 < 6
    assert db.val("select count(*) from counters") == 3
    assert db.val("select count(*) from rlsworker.jobs") == 0
    assert db.val("select count(*) from rlsworker.workers") == 0


def test_sigterm_puts_long_jobs_back_uncounted(rlsworker, db, tasks_dir):
    db.sql("create table counters (job_id bigint primary key, n int not null)")
    counter_task(tasks_dir, sleep_first=60)
    for _ in range(2):
        db.sql("select rlsworker.add_job('count', '{\"long\": true}')")
    w = rlsworker.spawn("run", "--tasks", str(tasks_dir), "--shutdown-timeout", "1", *FAST,
                        env=db.env())
    wait_until(lambda: executing_sleeps(db) == 2, 15, what="jobs to start")
    t0 = time.time()
    assert w.stop(signal.SIGTERM, timeout=20) == 0
    assert time.time() - t0 < 8
    assert db.sql("select state, attempts, locked_by from rlsworker.jobs") == \
        [("queued", 0, None)] * 2
    assert db.val("select count(*) from counters") == 0


def test_second_signal_stops_at_once(rlsworker, db, tasks_dir):
    db.sql("create table counters (job_id bigint primary key, n int not null)")
    counter_task(tasks_dir, sleep_first=60)
    db.sql("select rlsworker.add_job('count', '{\"long\": true}')")
    w = rlsworker.spawn("run", "--tasks", str(tasks_dir), "--shutdown-timeout", "60", *FAST,
                        env=db.env())
    wait_until(lambda: executing_sleeps(db) == 1, 15, what="job to start")
    w.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    t0 = time.time()
    assert w.stop(signal.SIGINT, timeout=10) == 0
    assert time.time() - t0 < 3
    assert db.sql("select state, attempts from rlsworker.jobs") == [("queued", 0)]


def test_statement_timeout_and_cancel(rlsworker, db, tasks_dir):
    write_task(tasks_dir, "slow", """
        -- task: slow
        -- run_as: system
        -- scope: global
        -- timeout: 1s
        -- max_attempts: 1
        select pg_sleep(10);
    """)
    write_task(tasks_dir, "long", """
        -- task: long
        -- run_as: system
        -- scope: global
        select pg_sleep(30);
    """)
    slow = db.val("select rlsworker.add_job('slow')")
    long = db.val("select rlsworker.add_job('long')")
    w = rlsworker.spawn("run", "--tasks", str(tasks_dir), *FAST, env=db.env())
    wait_until(lambda: db.val("select state from rlsworker.jobs where id = %s", (slow,)) == "dead",
               8, what="the timeout")
    assert db.val("select last_error from rlsworker.jobs where id = %s", (slow,)) == \
        "timed out after 1 s"
    wait_until(lambda: db.val("select state from rlsworker.jobs where id = %s", (long,)) ==
               "running", 5, what="long to start")
    r = rlsworker.cli("jobs", "cancel", str(long), env=db.env())
    assert r.returncode == 0 and "cancelling" in r.stdout
    t0 = time.time()
    wait_until(lambda: db.val("select state from rlsworker.jobs where id = %s", (long,)) ==
               "cancelled", 3, step=0.02, what="the cancel")
    assert time.time() - t0 < 1.0
    assert "cancelled" in db.val("select last_error from rlsworker.jobs where id = %s", (long,))
    assert w.stop() == 0


def test_worker_survives_a_postgres_restart(rlsworker, db, tasks_dir, pg):
    db.sql("create table counters (job_id bigint primary key, n int not null)")
    counter_task(tasks_dir)
    w = rlsworker.spawn("run", "--tasks", str(tasks_dir), *FAST, env=db.env())
    first = [db.val("select rlsworker.add_job('count')") for _ in range(10)]
    wait_until(lambda: db.val("select count(*) from counters") == 10, 10, what="first batch")
    pg.stop()
    time.sleep(2)
    assert w.poll() is None, "the worker died with the database"
    pg.start()
    second = [db.val("select rlsworker.add_job('count')") for _ in range(10)]
    wait_until(lambda: db.val("select count(*) from counters") == 20, 20, what="second batch")
    assert w.poll() is None
    assert "reconnecting" in w.read_stderr()
    assert db.val("select count(*) from rlsworker.jobs") == 0
    assert db.val("select max(n) from counters") == 1 and first and second
    assert w.stop() == 0


def test_registration_failure_is_retried(rlsworker, db, tasks_dir):
    db.sql("create table counters (job_id bigint primary key, n int not null)")
    counter_task(tasks_dir)
    w = rlsworker.spawn("run", "--tasks", str(tasks_dir), *FAST, env=db.env())
    w.wait_for("connected to the queue database")
    # the control connection is named; break registration, then cut it
    db.sql("alter function rlsworker.register_worker(text, text, int, int) rename to register_off",
           role="postgres")
    assert db.val("select count(pg_terminate_backend(pid)) from pg_stat_activity "
                  "where application_name = 'rlsworker control' and datname = current_database()",
                  role="postgres") == 1
    w.wait_for("could not register this worker: .*retrying")
    db.sql("alter function rlsworker.register_off(text, text, int, int) rename to register_worker",
           role="postgres")
    db.sql("select rlsworker.add_job('count')")
    wait_until(lambda: db.val("select count(*) from counters") == 1, 15, what="the job to run")
    assert w.poll() is None
    assert w.stop() == 0
