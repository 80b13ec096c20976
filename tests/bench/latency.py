"""Enqueue -> task start latency of a running rlsworker (driver for bench.sh).

Method of graphile-worker's perfTest/latencyTest.js: 100 warm-up jobs, 1 s
settle, then SAMPLES sequential jobs; the next job is enqueued only after the
previous one has started. Each job is the user-scoped SQL task bench.latency
(tasks written by bench.sh), enqueued on the admin connection with claims:

    select rlsworker.add_job('bench.latency',
        jsonb_build_object('n', i, 't0', clock_timestamp()), claims => ...)

The task inserts (n, t0, clock_timestamp()) into bench_latency as its first
statement and notifies channel rlsworker_bench; one sample is
started_at - t0, both read from the server's clock. t0 is taken when
add_job starts executing, so the sample includes the enqueue's insert, its
commit (fsync) and NOTIFY, the claim, taking a connection of the user pool,
BEGIN and setting the claims.

The enqueue's own insert and commit are in every sample, and they are not
the worker's: so two more figures split them off. ac_* (after commit) is
started_at minus the client's clock when the enqueue's execute returned
(committed, autocommit); enq_* is how long that execute took. Both clocks
are this host's.

Env: DATABASE_URL (admin role), SAMPLES (1000), WARMUP (100),
SAMPLE_TIMEOUT_S (10 per job). Prints one line:
    p50_ms=.. p95_ms=.. p99_ms=.. avg_ms=.. min_ms=.. max_ms=.. ac_p50=.. ac_p99=.. enq_p50=.. enq_p99=..
Run with /usr/bin/python3 (Debian's, which has psycopg 3).
"""
import os
import select
import sys
import time

import psycopg

ENQUEUE = ("select rlsworker.add_job('bench.latency',"
           " jsonb_build_object('n', %s::int, 't0', clock_timestamp()),"
           " claims => jsonb_build_object('sub', 'bench-user', 'role', 'authenticated'))")


def explain_stall(conn, want):
    """What the queue and the task table say about job n=want."""
    conn.pgconn.consume_input()
    jobs = conn.execute(
        "select id, state, attempts, run_at - now(), locked_by, last_error"
        " from rlsworker.jobs where payload->>'n' = %s", (want,)).fetchall()
    started = conn.execute("select started_at from bench_latency where n = %s::int",
                           (want,)).fetchall()
    return "queue rows (id, state, attempts, run_at - now, locked_by, last_error): %r; " \
           "started rows: %r" % (jobs, started)


def wait_for(conn, seen, want, timeout_s):
    """Blocks until a notification with payload `want` has arrived. psycopg
    hands notifications that come in during execute() to its handlers (which
    fill `seen`), so both paths are looked at."""
    deadline = time.monotonic() + timeout_s
    while want not in seen:
        n = conn.pgconn.notifies()
        while n is not None:
            seen.add(n.extra.decode())
            n = conn.pgconn.notifies()
        if want in seen:
            break
        left = deadline - time.monotonic()
        if left <= 0:
            raise SystemExit("latency: job n=%s did not start within %.0f s; %s"
                             % (want, timeout_s, explain_stall(conn, want)))
        ready, _, _ = select.select([conn.fileno()], [], [], left)
        if ready:
            conn.pgconn.consume_input()
    seen.discard(want)


def main():
    url = os.environ["DATABASE_URL"]
    samples = int(os.environ.get("SAMPLES", "1000"))
    warmup = int(os.environ.get("WARMUP", "100"))
    timeout_s = float(os.environ.get("SAMPLE_TIMEOUT_S", "10"))
    if not 1 <= samples <= 100000 or not 0 <= warmup <= 10000:
        raise SystemExit("latency: SAMPLES must be 1..100000 and WARMUP 0..10000")

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("truncate bench_latency")
        seen = set()
        conn.add_notify_handler(lambda n: seen.add(n.payload))
        conn.execute("listen rlsworker_bench")
        for i in range(warmup):                 # negative n: not sampled
            conn.execute(ENQUEUE, (-1 - i,))
        if warmup:
            wait_for(conn, seen, str(-warmup), timeout_s * 3)
        time.sleep(1.0)
        committed, enqueue_ms = {}, []
        for i in range(samples):
            t = time.time()
            conn.execute(ENQUEUE, (i,))
            committed[i] = time.time()
            enqueue_ms.append((committed[i] - t) * 1000.0)
            wait_for(conn, seen, str(i), timeout_s)
        row = conn.execute(
            "with s as (select extract(epoch from started_at - enqueued_at) * 1000 as ms"
            "           from bench_latency where n >= 0)"
            " select count(*), percentile_disc(0.5) within group (order by ms),"
            " percentile_disc(0.95) within group (order by ms),"
            " percentile_disc(0.99) within group (order by ms),"
            " avg(ms), min(ms), max(ms) from s").fetchone()
        started = conn.execute("select n, extract(epoch from started_at)::float8"
                               " from bench_latency where n >= 0").fetchall()
    if row[0] != samples:
        raise SystemExit("latency: %d samples recorded, expected %d" % (row[0], samples))
    after = sorted((at - committed[n]) * 1000.0 for n, at in started)
    enqueue_ms.sort()
    print("p50_ms=%.2f p95_ms=%.2f p99_ms=%.2f avg_ms=%.2f min_ms=%.2f max_ms=%.2f"
          % tuple(float(v) for v in row[1:]),
          "ac_p50=%.2f ac_p99=%.2f enq_p50=%.2f enq_p99=%.2f"
          % (pct(after, 0.5), pct(after, 0.99), pct(enqueue_ms, 0.5), pct(enqueue_ms, 0.99)))


def pct(xs, q):
    """percentile_disc of a sorted list, as the SQL above."""
    return xs[max(0, min(len(xs) - 1, int(-(-q * len(xs) // 1)) - 1))]


if __name__ == "__main__":
    sys.exit(main())
