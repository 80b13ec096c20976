"""Cron: rlsworker.cron_fire (exactly once per tick, in SQL), `rlsworker cron
check`, and worker processes running a crontab.

Tests marked `needs_run_wiring` start `rlsworker run --crontab FILE`; they
need the cron runner wired into `run` (scheduler/cron_runner.h)."""
import json
import os
import re
import signal
import threading
import time
from datetime import datetime, timedelta, timezone

import psycopg
import pytest

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
