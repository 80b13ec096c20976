"""Nothing blocks the loop (issue 14): a cancel request that the server
never answers (a TCP proxy of the test's own holds it) does not stop other
jobs; the cancelled job's connection is dropped after the cancel grace and
the job ends dead, cancelled."""
import os
import re
import sys
import time

import pytest

from helpers import write_task

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from tcpproxy import TcpProxy  # noqa: E402

pytestmark = pytest.mark.chaos


def wait_until(pred, timeout, step=0.05, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return time.time()
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def test_jobs_complete_while_a_cancel_hangs(rlsworker, db, pg, tasks_dir):
    db.sql("create table done (job_id bigint primary key, attempt int not null)")
    write_task(tasks_dir, "slow", """
        -- task: slow
        -- run_as: system
        -- scope: global
        select pg_sleep(30);
        insert into done values (:job_id::bigint, :attempt::int);
    """)
    write_task(tasks_dir, "quick", """
        -- task: quick
        -- run_as: system
        -- scope: global
        insert into done values (:job_id::bigint, :attempt::int);
    """)
    proxy = TcpProxy(pg.port)
    proxy.hold_cancels = True
    try:
        env = db.env(DATABASE_URL=proxy.url(db.admin_url),
                     DATABASE_AUTHENTICATED_URL=proxy.url(db.auth_url))
        w = rlsworker.spawn("run", "--tasks", str(tasks_dir), "--concurrency", "4",
                            "--poll-interval", "200", "--backoff-base", "100",
                            "--backoff-max", "1", env=env)
        w.wait_for("connected to the queue database")
        slow = db.val("select rlsworker.add_job('slow')")
        wait_until(lambda: db.val("select count(*) from pg_stat_activity where query like "
                                  "'%%pg_sleep(30)%%' and pid <> pg_backend_pid()",
                                  role="postgres") == 1, 10, what="the slow job to run")
        assert db.val("select rlsworker.cancel_job(%s)", (slow,)) == "cancelling"
        wait_until(lambda: proxy.held_cancels >= 1, 10, what="the cancel request")
        held_at = time.time()
        quick = [db.val("select rlsworker.add_job('quick')") for _ in range(40)]
        done = wait_until(lambda: db.val("select count(*) from done where job_id = any(%s)",
                                         (quick,)) == 40, 4, what="the quick jobs")
        assert proxy.held_cancels >= 1 and proxy._held, "the cancel was answered meanwhile"
        print(f"\n40 jobs completed {done - held_at:.2f}s after a cancel request went "
              f"unanswered (still unanswered)")
        # the cancel had no effect: the connection is dropped after the grace
        # (5 s) and the job ends cancelled, with no effect
        wait_until(lambda: db.val("select state from rlsworker.jobs where id = %s",
                                  (slow,)) == "cancelled", 15, what="the slow job to end")
        assert db.val("select last_error from rlsworker.jobs where id = %s",
                      (slow,)).startswith("cancel")
        assert db.val("select count(*) from done where job_id = %s", (slow,)) == 0
        proxy.release_cancels()
        assert w.stop() == 0
        assert "could not cancel" not in w.read_stderr()
    finally:
        proxy.close()


def test_host_names_resolved_off_the_loop(rlsworker, db, pg, tasks_dir):
    """A host name (localhost) is resolved in a helper thread and libpq gets
    host= and hostaddr= with every address, tried in turn as libpq would
    (the test server listens on 127.0.0.1 only, so ::1 may be refused)."""
    write_task(tasks_dir, "quick", """
        -- task: quick
        -- run_as: user
        select 1;
    """)
    assert "@127.0.0.1:" in db.admin_url
    env = db.env(DATABASE_URL=db.admin_url.replace("@127.0.0.1:", "@localhost:"),
                 DATABASE_AUTHENTICATED_URL=db.auth_url.replace("@127.0.0.1:", "@localhost:"))
    w = rlsworker.spawn("run", "--tasks", str(tasks_dir), "--log-level", "debug",
                        "--poll-interval", "200", env=env)
    w.wait_for("connected to the queue database")
    claims = '{"sub": "00000000-0000-0000-0000-000000000001", "role": "authenticated"}'
    db.sql("select rlsworker.add_job('quick', '{}', claims => %s::jsonb)", (claims,))
    wait_until(lambda: db.val("select count(*) from rlsworker.jobs") == 0, 10,
               what="the job on the restricted role")
    err = w.read_stderr()
    assert re.search(r"connecting to localhost(,localhost)* at [0-9a-f.:,]*127\.0\.0\.1 "
                     r"\(resolved off the loop\)", err), err[-2000:]
    assert w.stop() == 0
