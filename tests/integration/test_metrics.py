"""/metrics (issue 13): the reference parser (python3-prometheus-client)
accepts the whole output, and the figures added for operators are there:
queue lag and jobs by state per queue (queue names escaped), connections in
use, idle, opening and waiting per pool, history pruning.

Run: /usr/bin/python3 -m pytest -q tests/integration/test_metrics.py
"""
import http.client
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from helpers import REPO, free_port

pytestmark = pytest.mark.integration

DEMO_TASKS = REPO + "/deploy/demo/tasks"


def scrape(port):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/metrics")
        resp = conn.getresponse()
        assert resp.status == 200
        assert resp.getheader("Content-Type").startswith("text/plain; version=0.0.4")
        text = resp.read().decode()
    finally:
        conn.close()
    fams = {f.name: f for f in text_string_to_metric_families(text)}
    return fams, text


def samples(fams, name):
    return [(s.name, s.labels, s.value) for s in fams[name].samples]


def test_metrics_parse_and_show_queues_pools_and_pruning(rlsworker, db):
    weird = 'we"ird\\queue\nname'
    db.sql("select rlsworker.add_job('noop', run_at => now() - interval '30 seconds',"
           " queue => %s)", (weird,))
    db.sql("select rlsworker.add_job('noop', run_at => now() + interval '1 hour')"
           " from generate_series(1, 3)")
    db.sql("insert into rlsworker.job_history (job_id, task, attempts, outcome, created_at,"
           " finished_at) select g, 'old', 1, 'succeeded', now() - interval '9 days',"
           " now() - interval '9 days' from generate_series(1, 4) g")
    port = free_port()
    w = rlsworker.spawn("run", "--listen", "127.0.0.1:%d" % port, "--tasks", DEMO_TASKS,
                        "--lock-timeout", "2", env=db.env())
    w.wait_for(r"http intake listening on")
    deadline = time.time() + 20
    while time.time() < deadline:
        fams, text = scrape(port)
        if fams["rlsworker_history_pruned"].samples[0].value == 4:
            break
        time.sleep(0.2)
    assert fams["rlsworker_history_pruned"].type == "counter"
    assert samples(fams, "rlsworker_history_pruned") == [
        ("rlsworker_history_pruned_total", {}, 4.0)]
    # per queue: the unnamed queue is queue="", a name is escaped and parsed back
    lag = {s.labels["queue"]: s.value for s in fams["rlsworker_queue_lag_seconds"].samples}
    assert "" in lag and fams["rlsworker_queue_lag_seconds"].type == "gauge"
    by_state = {(s.labels["queue"], s.labels["state"]): s.value
                for s in fams["rlsworker_queue_state_jobs"].samples}
    assert by_state[("", "queued")] == 3.0
    assert by_state[("", "dead")] == 0.0
    # the weird queue's job ran (noop) or is still there; either way its name parsed
    if (weird, "queued") in by_state:
        assert lag[weird] >= 29
    pools = {(s.labels["pool"], s.labels["state"]): s.value
             for s in fams["rlsworker_pool_connections"].samples}
    # pools are named by role: the admin pool, then each restricted role it logs in as
    user = "authenticated_backend"
    assert {("admin", "in_use"), (user, "idle"), (user, "opening")} <= set(pools)
    assert {s.labels["pool"] for s in fams["rlsworker_pool_waiting_jobs"].samples} >= {
        "admin", user}
    maxes = {s.labels["pool"]: s.value for s in fams["rlsworker_pool_connections_max"].samples}
    assert maxes[user] == 10
    # the families that were there before still parse
    for name in ("rlsworker_jobs", "rlsworker_queue_jobs", "rlsworker_intake_requests",
                 "rlsworker_token_rejections"):
        assert name in fams, name
    assert w.stop() == 0


def test_queue_lag_of_a_waiting_named_queue(rlsworker, db, tasks_dir):
    # the one slot is busy with a sleeping job, so the "parked" job waits
    (tasks_dir / "sleepy.sql").write_text(
        "-- task: sleepy\n-- run_as: system\n-- scope: global\nselect pg_sleep(30);\n")
    db.sql("select rlsworker.add_job('sleepy')")
    port = free_port()
    w = rlsworker.spawn("run", "--listen", "127.0.0.1:%d" % port, "--tasks", str(tasks_dir),
                        "--concurrency", "1", "--prefetch", "0", "--poll-interval", "100",
                        env=db.env())
    # --prefetch 0: with prefetch on, the worker would claim the parked job into its
    # local queue (running), and nothing would be left waiting in the database
    w.wait_for(r"http intake listening on")
    deadline = time.time() + 20
    while time.time() < deadline and db.val(
            "select count(*) from rlsworker.jobs where state = 'running'") == 0:
        time.sleep(0.1)
    db.sql("select rlsworker.add_job('sleepy', queue => 'parked',"
           " run_at => now() - interval '42 seconds')")
    # a scrape answers with the figures as last read until the intake's own
    # database connection is up, which may come after the first scrape
    deadline = time.time() + 10
    while True:
        fams, _ = scrape(port)
        lag = {s.labels["queue"]: s.value for s in fams["rlsworker_queue_lag_seconds"].samples}
        if "parked" in lag or time.time() > deadline:
            break
        time.sleep(0.2)
    assert 42 <= lag["parked"] < 60
    by_state = {(s.labels["queue"], s.labels["state"]): s.value
                for s in fams["rlsworker_queue_state_jobs"].samples}
    assert by_state[("", "running")] == 1.0 and by_state[("parked", "queued")] == 1.0
    pools = {(s.labels["pool"], s.labels["state"]): s.value
             for s in fams["rlsworker_pool_connections"].samples}
    assert pools[("admin", "in_use")] == 1.0
    w.stop()
