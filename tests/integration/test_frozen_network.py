"""A frozen network, not only a restart (issue 14). Worker A reaches
PostgreSQL through a TCP proxy of the test's own, worker B directly. The
proxy stops forwarding for 30 s without closing anything, then resumes:
A notices within a bounded time (its control connection's reply deadline,
lock_timeout; TCP keepalives are on every connection for a real network,
which this proxy cannot show: its kernel still acknowledges), B takes over
A's jobs (A's heartbeat stops), nothing is lost, every effect happens
exactly once, and A carries on after the network is back."""
import os
import re
import subprocess
import sys
import time

import pytest

from helpers import write_task

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from tcpproxy import TcpProxy  # noqa: E402

pytestmark = [pytest.mark.chaos, pytest.mark.slow]

FAST = ("--lock-timeout", "4", "--heartbeat-interval", "1", "--poll-interval", "200",
        "--backoff-base", "200", "--backoff-max", "2", "--reconnect-max", "1",
        "--connect-timeout", "3", "--shutdown-timeout", "2")
FREEZE_S = 30


def wait_until(pred, timeout, step=0.1, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return time.time()
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def keepalive_sockets(pid, port, idle_s):
    """Established sockets of process `pid` to `port`, and how many of them
    have the kernel's keepalive timer armed to fire within idle_s seconds
    (ss -o shows timer:(keepalive,9.2sec,0); libpq's own default is 2 h)."""
    out = subprocess.run(["ss", "-tnpoH", "state", "established", "dport", "= :%d" % port],
                         capture_output=True, text=True).stdout
    mine = [ln for ln in out.splitlines() if "pid=%d," % pid in ln]
    armed = 0
    for ln in mine:
        m = re.search(r"timer:\(keepalive,(?:(\d+)min)?(?:([\d.]+)sec)?(?:(\d+)ms)?", ln)
        if m:
            left = (int(m.group(1) or 0) * 60 + float(m.group(2) or 0)
                    + int(m.group(3) or 0) / 1000)
            armed += left <= idle_s
    return len(mine), armed


def test_frozen_network_30s(rlsworker, db, pg, tasks_dir):
    db.sql("create table counters (job_id bigint primary key, n int not null)")
    write_task(tasks_dir, "count", """
        -- task: count
        -- run_as: system
        -- scope: global
        select pg_sleep(case when :attempt::int = 1 and (:payload::jsonb ? 'long')
                             then 8 else 0.01 end);
        insert into counters (job_id, n) values (:job_id::bigint, 1)
        on conflict (job_id) do update set n = counters.n + 1;
    """)
    proxy = TcpProxy(pg.port)
    try:
        env_a = db.env(DATABASE_URL=proxy.url(db.admin_url),
                       DATABASE_AUTHENTICATED_URL=proxy.url(db.auth_url))
        a = rlsworker.spawn("run", "--tasks", str(tasks_dir), "--concurrency", "3", *FAST,
                            env=env_a)
        a.wait_for("connected to the queue database")
        long_jobs = [db.val("select rlsworker.add_job('count', '{\"long\": true}')")
                     for _ in range(3)]
        wait_until(lambda: db.val("select count(*) from rlsworker.jobs where state = 'running'")
                   == 3, 15, what="A to run the long jobs")
        n, armed = keepalive_sockets(a.pid, proxy.port, 10)   # tcp_keepalives_idle default
        assert n >= 2 and armed == n, f"{armed} of {n} connections have TCP keepalives"
        b = rlsworker.spawn("run", "--tasks", str(tasks_dir), *FAST, env=db.env())
        b.wait_for("connected to the queue database")

        proxy.freeze()
        frozen = time.time()
        more = [db.val("select rlsworker.add_job('count')") for _ in range(30)]
        # B recovers A's long jobs once A's heartbeat is older than lock_timeout
        recovered = wait_until(lambda: db.val(
            "select count(*) from counters where job_id = any(%s)", (long_jobs,)) == 3,
            4 + 10, what="B to recover A's jobs")
        # A notices: its control connection gets no reply for lock_timeout
        noticed = wait_until(lambda: re.search(r"lost the queue database: no reply",
                                               a.read_stderr()), 4 + 6, what="A to notice")
        print(f"\nfrozen network: A noticed after {noticed - frozen:.1f}s, B re-ran A's jobs "
              f"{recovered - frozen:.1f}s after the freeze (lock_timeout 4 s)")
        wait_until(lambda: db.val("select count(*) from counters where job_id = any(%s)",
                                  (more,)) == 30, 15, what="B to run the new jobs")
        time.sleep(max(0.0, FREEZE_S - (time.time() - frozen)))
        proxy.resume()
        resumed = time.time()

        # A comes back: reconnects, registers, and works again
        wait_until(lambda: len(re.findall(r"connected to the queue database", a.read_stderr()))
                   >= 2, 20, what="A to reconnect")
        back = time.time()
        after = [db.val("select rlsworker.add_job('count')") for _ in range(30)]
        wait_until(lambda: db.val("select count(*) from counters where job_id = any(%s)",
                                  (after,)) == 30, 20, what="the jobs after the freeze")
        print(f"frozen network: A reconnected {back - resumed:.1f}s after the network came back")
        wait_until(lambda: db.val("select count(*) from rlsworker.jobs") == 0, 20,
                   what="the queue to drain")
        assert db.val("select count(*) from counters") == 63
        assert db.val("select count(*) from counters where n <> 1") == 0
        assert db.val("select count(*) from rlsworker.jobs where state = 'dead'") == 0
        assert a.poll() is None, "A exited"
        assert a.stop() == 0 and b.stop() == 0
    finally:
        proxy.close()
