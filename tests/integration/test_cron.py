"""Cron: rlsworker.cron_fire (exactly once per tick, in SQL), `rlsworker cron
check`, and worker processes running a crontab.

Tests marked `needs_run_wiring` start `rlsworker run --crontab FILE`; they
need the cron runner wired into `run` (scheduler/cron/cron_runner.h)."""
import json
import re
import signal
import threading
import time
from datetime import datetime, timedelta, timezone

import psycopg
import pytest

from helpers import wait_until

pytestmark = pytest.mark.integration

FIRE = ("select rlsworker.cron_fire(%s, %s::timestamptz, %s, %s::jsonb, %s,"
        " %s, %s, %s, %s, %s)")


def fire(conn_or_db, cid, tick, task="digest", payload="{}", backfilled=False,
         queue=None, priority=0, max_attempts=None, run_as=None, subject=None):
    args = (cid, tick, task, payload, backfilled, queue, priority, max_attempts,
            run_as, subject)
    if hasattr(conn_or_db, "val"):
        return conn_or_db.val(FIRE, args)
    return conn_or_db.execute(FIRE, args).fetchone()[0]


# --- SQL: rlsworker.cron_fire -------------------------------------------------

def test_fire_enqueues_once_with_cron_member(db):
    job = fire(db, "digest5", "2024-03-10T07:00:00Z", payload='{"kind":"short"}')
    assert job is not None
    task, payload, key = db.one("select task, payload, job_key from rlsworker.jobs where id = %s",
                                (job,))
    assert task == "digest"
    assert payload == {"kind": "short",
                       "_cron": {"ts": "2024-03-10T07:00:00Z", "backfilled": False}}
    assert key == "cron:digest5:2024-03-10T07:00:00Z"
    assert fire(db, "digest5", "2024-03-10T07:00:00Z") is None
    assert db.val("select count(*) from rlsworker.jobs") == 1


def test_fire_passes_job_options(db):
    job = fire(db, "x", "2024-01-01T00:00:00Z", task="nightly", backfilled=True, queue="q1",
               priority=-3, max_attempts=4, run_as="user", subject="alice")
    row = db.one("select queue, priority, max_attempts, run_as, subject,"
                 " payload->'_cron'->>'backfilled' from rlsworker.jobs where id = %s", (job,))
    assert row == ("q1", -3, 4, "user", "alice", "true")


def test_completed_tick_never_refires(db):
    fire(db, "c", "2024-01-01T00:00:00Z")
    db.sql("delete from rlsworker.jobs")      # as if the job succeeded
    assert fire(db, "c", "2024-01-01T00:00:00Z") is None
    assert fire(db, "c", "2023-12-31T23:59:00Z") is None    # only forward
    assert fire(db, "c", "2024-01-01T00:01:00Z") is not None
    assert db.val("select last_tick = '2024-01-01T00:01:00Z' from rlsworker.cron_state"
                  " where id = 'c'") is True


def test_last_ticks_for_backfill(db):
    fire(db, "a", "2024-01-01T00:00:05Z")
    rows = db.sql("select id, last_tick from rlsworker.cron_last_ticks()")
    assert rows == [("a", 1704067205)]


def test_fire_rejects_non_object_payload(db):
    with pytest.raises(psycopg.errors.RaiseException):
        fire(db, "a", "2024-01-01T00:00:00Z", payload="[1]")
    assert db.val("select count(*) from rlsworker.cron_state") == 0


def test_restricted_role_cannot_fire(db):
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        db.val(FIRE, ("a", "2024-01-01T00:00:00Z", "t", "{}", False, None, 0, None, None,
                      None), role="authenticated_backend")


def test_racing_fires_one_winner(db):
    """Ten connections fire the same 20 ticks at the same moment."""
    ticks = ["2024-05-01T00:00:%02dZ" % s for s in range(20)]
    results = []
    lock = threading.Lock()
    barrier = threading.Barrier(10)

    def racer():
        with db.connect(autocommit=True) as conn:
            barrier.wait()
            for t in ticks:
                r = fire(conn, "race", t)
                with lock:
                    results.append((t, r))

    threads = [threading.Thread(target=racer) for _ in range(10)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    winners = [t for t, r in results if r is not None]
    assert len(results) == 200
    assert len(winners) == len(set(winners))          # no tick fired twice
    assert db.val("select count(*) from rlsworker.jobs") == len(winners)
    assert ticks[-1] in winners     # the newest tick always has a winner


# --- rlsworker cron check -------------------------------------------------------

def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def test_check_prints_next_times_as_json(rlsworker, tmp_path):
    path = write(tmp_path, "crontab", "# nightly\n\n30 2 * * * nightly ?tz=America/New_York\n"
                 "*/5 * * * * * hb ?id=hb5 {\"a\": 1}\n")
    r = rlsworker.cli("cron", "check", path, "--from", "2024-03-09T12:00:00Z",
                      "--count", "2", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == [
        {"line": 3, "id": "nightly", "task": "nightly",
         "next": ["2024-03-10T07:00:00Z", "2024-03-11T06:30:00Z"]},
        {"line": 4, "id": "hb5", "task": "hb",
         "next": ["2024-03-09T12:00:05Z", "2024-03-09T12:00:10Z"]},
    ]
    r = rlsworker.cli("cron", "check", path, "--from", "2024-03-09T12:00:00Z")
    assert r.returncode == 0
    assert r.stdout.count("2024-") == 10          # default count 5, two lines


def test_check_refuses_every_bad_line_with_file_and_line(rlsworker, tmp_path):
    path = write(tmp_path, "crontab", "0 3 * * * ok\n61 * * * * a\n*/0 * * * * b\n"
                 "* * * * c\n@often d\n* * * * * e ?x=1\n* * * * * f {\"a\":\n")
    r = rlsworker.cli("cron", "check", path)
    assert r.returncode == 1
    for line, what in ((2, "out of range"), (3, "zero"), (4, "5 or 6"),
                       (5, "unknown macro"), (6, "unknown option"), (7, "JSON")):
        assert re.search(r"%s:%d: .*%s" % (re.escape(path), line, what), r.stderr), r.stderr
    assert ":1:" not in r.stderr
    assert r.stdout == ""


def test_check_usage_errors(rlsworker, tmp_path):
    path = write(tmp_path, "crontab", "@daily t\n")
    assert rlsworker.cli("cron", "check").returncode == 2
    assert rlsworker.cli("cron", "check", path, "--count", "0").returncode == 2
    assert rlsworker.cli("cron", "check", path, "--from", "yesterday").returncode == 2
    assert rlsworker.cli("cron", "frobnicate").returncode == 2
    assert rlsworker.cli("cron", "check", str(tmp_path / "missing")).returncode == 1
    r = rlsworker.cli("cron", "check", "--help")
    assert r.returncode == 0 and "--count" in r.stdout


# --- workers running a crontab (need `run --crontab` wired to cron_runner) ------

# These four tests start `rlsworker run --crontab FILE`: they fail until the lead
# wires scheduler/cron/cron_runner.h into `run` (the runner itself was checked with a
# small libev driver against worker/pg/pgconn.c).
needs_run_wiring = pytest.mark.slow

TRACE_SQL = """
create table public.cron_trace (id bigserial primary key, job_key text, ts text,
                                backfilled boolean, at timestamptz default now());
create function public.cron_trace_fn() returns trigger language plpgsql as $$
begin
    insert into public.cron_trace (job_key, ts, backfilled)
    select n.job_key, n.payload->'_cron'->>'ts', (n.payload->'_cron'->>'backfilled')::boolean
    from new_jobs n where n.job_key like 'cron:%';
    return null;
end $$;
create trigger cron_trace after insert on rlsworker.jobs
    referencing new table as new_jobs for each statement
    execute function public.cron_trace_fn();
"""


def trace(db, cid):
    """(tick, backfilled) of every job enqueued for cron id `cid`, in order."""
    rows = db.sql("select ts, backfilled from public.cron_trace"
                  " where job_key like %s order by id", ("cron:%s:%%" % cid,))
    return [(datetime.fromisoformat(ts.replace("Z", "+00:00")), b) for ts, b in rows]


def assert_each_tick_once(ticks, step):
    times = [t for t, _ in ticks]
    assert len(times) == len(set(times)), "a tick fired twice: %r" % times
    assert times == sorted(times)
    return times


def start_workers(rlsworker, db, crontab, tasks_dir, n):
    return [rlsworker.spawn("run", "--crontab", crontab, "--tasks", tasks_dir,
                            env=db.env()) for _ in range(n)]


@needs_run_wiring
def test_three_workers_fire_each_tick_once_and_restart_refires_nothing(
        db, rlsworker, tasks_dir, tmp_path):
    db.sql(TRACE_SQL)
    crontab = write(tmp_path, "crontab", "*/2 * * * * * noop ?id=every2\n")
    workers = start_workers(rlsworker, db, crontab, tasks_dir, 3)
    wait_until(lambda: len(trace(db, "every2")) >= 4, 30, "four ticks")
    for w in workers:
        w.stop()
    before = assert_each_tick_once(trace(db, "every2"), 2)
    # every 2-second tick between the first and the last fired: none lost
    span = int((before[-1] - before[0]).total_seconds())
    assert len(before) == span // 2 + 1
    assert all(not b for _, b in trace(db, "every2"))

    workers = start_workers(rlsworker, db, crontab, tasks_dir, 3)
    wait_until(lambda: len(trace(db, "every2")) >= len(before) + 2, 30, "ticks after restart")
    for w in workers:
        w.stop()
    after = assert_each_tick_once(trace(db, "every2"), 2)
    assert after[:len(before)] == before
    assert all(t > before[-1] for t in after[len(before):])


@needs_run_wiring
def test_missed_ticks_backfill_once_with_fill_and_skip_without(
        db, rlsworker, tasks_dir, tmp_path):
    db.sql(TRACE_SQL)
    crontab = write(tmp_path, "crontab", "*/2 * * * * * noop ?id=filled&fill=1h\n"
                    "*/2 * * * * * noop ?id=plain\n")
    w = start_workers(rlsworker, db, crontab, tasks_dir, 1)[0]
    wait_until(lambda: trace(db, "filled") and trace(db, "plain"), 30, "first ticks")
    w.stop()
    down_at = datetime.now(timezone.utc)
    time.sleep(7)                                 # at least three ticks missed
    up_at = datetime.now(timezone.utc)
    last_filled = trace(db, "filled")[-1][0]
    last_plain = trace(db, "plain")[-1][0]
    workers = start_workers(rlsworker, db, crontab, tasks_dir, 3)
    wait_until(lambda: len([t for t, _ in trace(db, "plain") if t > up_at]) >= 2, 30,
               "ticks after the restart")
    for w in workers:
        w.stop()

    filled = assert_each_tick_once(trace(db, "filled"), 2)
    missed = [(t, b) for t, b in trace(db, "filled") if last_filled < t < up_at - timedelta(seconds=1)]
    assert len(missed) >= 3
    assert all(b for _, b in missed), missed               # backfilled, and marked so
    span = int((filled[-1] - filled[0]).total_seconds())
    assert len(filled) == span // 2 + 1                    # no hole with fill=

    plain = assert_each_tick_once(trace(db, "plain"), 2)
    gap = [t for t in plain if last_plain < t < up_at - timedelta(seconds=1)]
    assert gap == [], "missed ticks fired without fill=: %r" % gap
    assert not any(b for _, b in trace(db, "plain"))
    assert down_at < up_at


@needs_run_wiring
def test_sighup_with_broken_crontab_keeps_old_schedule(db, rlsworker, tasks_dir, tmp_path):
    db.sql(TRACE_SQL)
    crontab = write(tmp_path, "crontab", "*/2 * * * * * noop ?id=old\n")
    w = start_workers(rlsworker, db, crontab, tasks_dir, 1)[0]
    wait_until(lambda: trace(db, "old"), 30, "first tick")
    write(tmp_path, "crontab", "*/2 * * * * * noop ?id=new\n61 * * * * broken\n")
    w.send_signal(signal.SIGHUP)
    w.wait_for(r"crontab:2:.*out of range", timeout=10)
    n = len(trace(db, "old"))
    wait_until(lambda: len(trace(db, "old")) >= n + 2, 20, "old schedule to keep firing")
    assert trace(db, "new") == []
    assert w.poll() is None

    write(tmp_path, "crontab", "*/2 * * * * * noop ?id=new\n")
    w.send_signal(signal.SIGHUP)
    wait_until(lambda: len(trace(db, "new")) >= 2, 20, "new schedule")
    n = len(trace(db, "old"))
    time.sleep(3)
    assert len(trace(db, "old")) == n                      # old line is gone
    w.stop()


@needs_run_wiring
def test_run_refuses_bad_crontab_at_start(db, rlsworker, tasks_dir, tmp_path):
    crontab = write(tmp_path, "crontab", "@daily ok\n* * * * 9 bad\n")
    r = rlsworker.cli("run", "--crontab", crontab, "--tasks", tasks_dir, env=db.env(),
                      timeout=30)
    assert r.returncode == 1
    assert "%s:2:" % crontab in r.stderr
