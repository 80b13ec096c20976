"""Soak benchmark (issue 14): one worker under continuous enqueue and drain,
with its database connections terminated and jobs cancelled now and then;
prints resident memory (VmRSS) and open descriptors of the worker at the
start (after a warm-up) and at the end. A benchmark, not a test: it asserts
only that nothing was lost. Run through tests/bench/soak.sh."""
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import helpers  # noqa: E402
from helpers import Database, Worker, start_cluster, write_task  # noqa: E402

SECONDS = int(os.environ.get("SOAK_SECONDS", "300"))
WARMUP = min(15, max(5, SECONDS // 10))
RATE = int(os.environ.get("SOAK_RATE", "100"))          # jobs enqueued per second
TERMINATE_EVERY = float(os.environ.get("SOAK_TERMINATE_EVERY", "10"))
CANCEL_EVERY = float(os.environ.get("SOAK_CANCEL_EVERY", "3"))


def proc_figures(pid):
    rss = 0
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    return rss, len(os.listdir("/proc/%d/fd" % pid))


def main():
    bin_path = os.environ.get("RLSWORKER_BIN") or os.path.join(helpers.REPO, "build", "rlsworker")
    pg = start_cluster()
    work = os.path.join(pg.base, "soak")
    os.makedirs(os.path.join(work, "tasks"))
    tasks = os.path.join(work, "tasks")
    worker = Worker(bin_path, work)
    db = Database(pg, "soak")
    db.create(schema=True)
    r = worker.cli("migrate", env=db.env())
    if r.returncode != 0:
        sys.exit("soak: rlsworker migrate failed:\n" + r.stderr)
    db.sql("create table soak_done (job_id bigint primary key, n int not null)")
    write_task(tasks, "soak_work", """
        -- task: soak_work
        -- run_as: system
        -- scope: global
        insert into soak_done values (:job_id::bigint, 1)
        on conflict (job_id) do update set n = soak_done.n + 1;
    """)
    write_task(tasks, "soak_slow", """
        -- task: soak_slow
        -- run_as: system
        -- scope: global
        select pg_sleep(30);
    """)
    w = worker.spawn("run", "--tasks", tasks, "--concurrency", "8", "--log-level", "warning",
                     "--reconnect-max", "1", "--backoff-base", "100", "--backoff-max", "2",
                     "--lock-timeout", "10", "--heartbeat-interval", "2", env=db.env())
    conn = db.connect(autocommit=True)
    su = db.connect("postgres", autocommit=True)
    start = time.time()
    last_term = last_cancel = start
    first = None
    enqueued = terminated = cancels = 0
    slow_jobs = []
    tick = 1.0 / 10
    try:
        while time.time() - start < SECONDS:
            if w.poll() is not None:
                sys.exit("soak: the worker exited (%s):\n%s" % (w.returncode, w.read_stderr()[-3000:]))
            conn.execute("select rlsworker.add_job('soak_work') from generate_series(1, %s)",
                         (max(1, RATE // 10),))
            enqueued += max(1, RATE // 10)
            now = time.time()
            if first is None and now - start >= WARMUP:
                first = proc_figures(w.pid)
            if now - last_cancel >= CANCEL_EVERY:
                slow_jobs.append(conn.execute("select rlsworker.add_job('soak_slow')").fetchone()[0])
                for j in slow_jobs[:-1]:
                    conn.execute("select rlsworker.cancel_job(%s)", (j,))
                cancels += len(slow_jobs) - 1
                slow_jobs = slow_jobs[-1:]
                last_cancel = now
            if now - last_term >= TERMINATE_EVERY:
                terminated += su.execute(
                    "select count(*) filter (where pg_terminate_backend(pid)) from "
                    "pg_stat_activity where datname = %s and application_name like 'rlsworker%%'",
                    (db.name,)).fetchone()[0]
                last_term = now
            time.sleep(tick)
        for j in slow_jobs:
            conn.execute("select rlsworker.cancel_job(%s)", (j,))
            cancels += 1
        deadline = time.time() + 120
        while time.time() < deadline:
            left = conn.execute("select count(*) from rlsworker.jobs where task = 'soak_work'"
                                ).fetchone()[0]
            if left == 0:
                break
            time.sleep(0.5)
        time.sleep(2)   # outcomes and pools settle
        last = proc_figures(w.pid)
        done = conn.execute("select count(*), count(*) filter (where n <> 1) from soak_done"
                            ).fetchone()
        print("soak: seconds=%d enqueued=%d done=%d doubled=%d left=%d terminated_connections=%d "
              "operator_cancels=%d" % (SECONDS, enqueued, done[0], done[1], left, terminated,
                                       cancels))
        print("soak: VmRSS_kB start=%d end=%d (%+d)  open_fds start=%d end=%d (%+d)" % (
            first[0], last[0], last[0] - first[0], first[1], last[1], last[1] - first[1]))
        if w.stop() != 0:
            sys.exit("soak: the worker did not stop cleanly:\n" + w.read_stderr()[-3000:])
        if left != 0 or done[0] != enqueued:
            sys.exit("soak: jobs were lost: enqueued %d, done %d, left %d" % (enqueued, done[0], left))
    finally:
        conn.close()
        su.close()
        worker.reap()
        pg.destroy()


if __name__ == "__main__":
    main()
