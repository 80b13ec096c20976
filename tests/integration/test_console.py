"""The web console at /ui/ (issue 13), in a real headless Chromium (Debian's
chromium driven by playwright-core from tests/browser, installed by
tests/run.sh) and over plain HTTP: log in, a dead job with its error and
Retry (the database shows it ran), Cancel of a running job, Enqueue seen in
the history, the next cron fire, 401 without or with wrong credentials and
the failure limit, a cross-site POST that changes nothing, a payload holding
<script> that does not run, the security headers. Screenshots of each page
go to build-screenshots/ (docs/console/ with RLSWORKER_UPDATE_SCREENSHOTS=1).

Run: /usr/bin/python3 -m pytest -q tests/integration/test_console.py
"""
import base64
import hashlib
import http.client
import json
import os
import shutil
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from helpers import REPO, free_port, wait_until, write_task

pytestmark = pytest.mark.integration

BROWSER_DIR = os.path.join(REPO, "tests", "browser")
# Screenshots go to a scratch folder; RLSWORKER_UPDATE_SCREENSHOTS=1 writes them
# into docs/console/ (what docs/console.md shows) instead.
SHOTS = (os.path.join(REPO, "docs", "console") if os.environ.get("RLSWORKER_UPDATE_SCREENSHOTS")
         else os.path.join(REPO, "build-screenshots"))
USER, PASSWORD = "ops", "correct horse battery staple"
DEMO_TASKS = os.path.join(REPO, "deploy", "demo", "tasks")


def basic(user=USER, password=PASSWORD):
    return "Basic " + base64.b64encode(("%s:%s" % (user, password)).encode()).decode()


def request(port, method, path, body=None, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, body=json.dumps(body) if isinstance(body, dict) else body,
                     headers=headers or {})
        resp = conn.getresponse()
        raw = resp.read().decode()
        try:
            data = json.loads(raw)
        except ValueError:
            data = raw
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
    finally:
        conn.close()


@pytest.fixture
def tasks(tmp_path, db):
    d = tmp_path / "tasks"
    shutil.copytree(DEMO_TASKS, d)
    db.sql("create table console_flag (ok boolean not null)")
    db.sql("insert into console_flag values (false)")
    write_task(d, "flaky", """
        -- task: flaky
        -- run_as: system
        -- scope: global
        -- max_attempts: 1
        select case when (select ok from console_flag) then 1
               else 1 / (select 0 where :n::int = 0) end;
    """)
    write_task(d, "sleepy", """
        -- task: sleepy
        -- run_as: system
        -- scope: global
        select pg_sleep(60);
    """)
    return d


def start(rlsworker, db, tasks, tmp_path, password=PASSWORD, *extra):
    port = free_port()
    crontab = tmp_path / "crontab"
    crontab.write_text("30 2 * * * noop ?id=nightly-noop\n*/10 * * * * noop ?id=ten-minutes\n"
                       "*/5 * * * * * noop ?id=every-5s&queue=ticks\n")
    env = db.env(RLSWORKER_CONSOLE_USER=USER, RLSWORKER_CONSOLE_PASSWORD=password)
    w = rlsworker.spawn("run", "--listen", "127.0.0.1:%d" % port, "--tasks", str(tasks),
                        "--crontab", str(crontab), "--poll-interval", "100",
                        "--console-max-failures", "50", *extra, env=env)
    w.wait_for(r"http intake listening on")
    wait_until(lambda: request(port, "GET", "/ui/api/workers",
                               headers={"Authorization": basic()})[0] == 200,
               what="console ready")
    return w, port


def browser(scenario, port, expect_errors=False, **env):
    if not os.path.isdir(os.path.join(BROWSER_DIR, "node_modules", "playwright-core")):
        pytest.fail("playwright-core is not installed: run tests/run.sh (it runs npm ci in "
                    "tests/browser)", pytrace=False)
    os.makedirs(SHOTS, exist_ok=True)
    e = dict(os.environ, CONSOLE_URL="http://127.0.0.1:%d" % port, CONSOLE_USER=USER,
             CONSOLE_PASSWORD=PASSWORD, SHOTS=SHOTS)
    e.update({k: str(v) for k, v in env.items()})
    r = subprocess.run(["node", os.path.join(BROWSER_DIR, "console.mjs"), scenario],
                       env=e, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, "browser scenario %s failed:\n%s%s" % (scenario, r.stdout, r.stderr)
    out = json.loads(r.stdout.strip().splitlines()[-1])
    if not expect_errors:
        assert out["errors"] == [], out["errors"]
    return out


def dead_job(db, n=0):
    job = db.val("select rlsworker.add_job('flaky', jsonb_build_object('n', %s::int))", (n,))
    wait_until(lambda: db.val("select state from rlsworker.jobs where id = %s", (job,)) == "dead",
               what="job dead")
    return job


# ------------------------------------------------------------------ browser

def test_browser_login_overview_and_workers(rlsworker, db, tasks, tmp_path):
    w, port = start(rlsworker, db, tasks, tmp_path)
    db.sql("select rlsworker.add_job('noop', run_at => now() + interval '1 hour', queue => 'later')")
    db.sql("select rlsworker.add_job('noop') from generate_series(1, 12)")
    dead_job(db)
    db.sql("select rlsworker.add_job('complete_todos', claims => '{\"sub\":\"alice\"}',"
           " run_at => now() + interval '10 minutes') from generate_series(1, 3)")
    wait_until(lambda: db.val("select count(*) from rlsworker.job_runs"
                              " where outcome = 'succeeded' and task = 'noop'") >= 12,
               what="noops ran")
    out = browser("overview", port)
    assert "Queues" in out["text"] and "later" in out["text"]
    assert out["who"].startswith(USER)
    out = browser("workers", port)
    worker_id = db.val("select id from rlsworker.workers")
    assert worker_id in out["text"]
    w.stop_clean()


def test_browser_dead_job_retry_runs(rlsworker, db, tasks, tmp_path):
    w, port = start(rlsworker, db, tasks, tmp_path)
    job = dead_job(db)
    db.sql("update console_flag set ok = true")
    out = browser("dead", port, JOB=job)
    assert "division by zero" in out["row"] and "Retry" in out["row"] and "Delete" in out["row"]
    assert "queued" in out["status"]
    # the database shows it ran: gone from the queue, a succeeded run in the history
    wait_until(lambda: db.val("select count(*) from rlsworker.job_runs where job_id = %s"
                              " and outcome = 'succeeded'", (job,)) == 1, what="retried job ran")
    assert db.val("select count(*) from rlsworker.jobs where id = %s", (job,)) == 0
    assert "retry job %d: queued" % job in w.read_stderr()
    assert "console: user %s" % USER in w.read_stderr()
    w.stop_clean()


def test_browser_cancel_running_job(rlsworker, db, tasks, tmp_path):
    w, port = start(rlsworker, db, tasks, tmp_path)
    job = db.val("select rlsworker.add_job('sleepy')")
    wait_until(lambda: db.val("select state from rlsworker.jobs where id = %s", (job,))
               == "running", what="job running")
    out = browser("cancel", port, JOB=job)
    assert "cancelling" in out["status"]
    wait_until(lambda: db.val("select outcome from rlsworker.job_runs where job_id = %s",
                              (job,)) == "cancelled", what="job cancelled")
    assert db.val("select state from rlsworker.jobs where id = %s", (job,)) == "cancelled"
    w.stop_clean()


def test_browser_enqueue_shows_in_history(rlsworker, db, tasks, tmp_path):
    w, port = start(rlsworker, db, tasks, tmp_path)
    out = browser("enqueue", port, TASK="noop")
    assert "succeeded" in out["row"] and "noop" in out["row"]
    row = db.one("select task, outcome from rlsworker.job_runs where job_id = %s",
                 (out["id"],))
    assert row == ("noop", "succeeded")
    assert "enqueued task noop as job %d" % out["id"] in w.read_stderr()
    w.stop_clean()


def test_browser_shows_next_cron_fire(rlsworker, db, tasks, tmp_path):
    w, port = start(rlsworker, db, tasks, tmp_path)
    wait_until(lambda: db.val("select count(*) from rlsworker.cron_state"
                              " where id = 'every-5s'") == 1, what="a cron fire")
    out = browser("cron", port)
    rows = {r["id"]: r for r in out["rows"]}
    assert set(rows) == {"nightly-noop", "ten-minutes", "every-5s"}
    assert rows["nightly-noop"]["next"].endswith("02:30:00Z")
    minute = int(rows["ten-minutes"]["next"].split(":")[1])
    assert minute % 10 == 0
    assert "never" in rows["nightly-noop"]["text"] and "never" not in rows["every-5s"]["text"]
    w.stop_clean()


def test_browser_script_in_payload_does_not_run(rlsworker, db, tasks, tmp_path):
    w, port = start(rlsworker, db, tasks, tmp_path)
    evil = "<script>window.__pwned=1</script><img src=x onerror=\"window.__pwned=1;alert(1)\">"
    job = db.val("select rlsworker.add_job('noop', jsonb_build_object('x', %s::text),"
                 " run_at => now() + interval '1 hour', queue => %s, subject => 'u1')",
                 (evil, evil[:100]))
    db.sql("update rlsworker.jobs set last_error = %s where id = %s", (evil, job))
    out = browser("xss", port, JOB=job)
    assert not out["pwned"] and out["dialogs"] == [] and out["scripts"] == 0
    assert "<script>window.__pwned=1</script>" in out["row"]   # shown as text
    w.stop_clean()


class EvilHandler(BaseHTTPRequestHandler):
    target = None

    def do_GET(self):
        page = """<!doctype html><body>evil
<form id=f method=POST action="%(t)s/ui/api/action" enctype="text/plain" target=sink>
<input name='{"action":"delete","id":%(job)d,"x":"' value='"}'></form>
<iframe name=sink></iframe>
<script>
fetch("%(t)s/ui/api/action", {method: "POST", mode: "no-cors", credentials: "include",
  headers: {"Content-Type": "text/plain"}, body: JSON.stringify({action: "delete", id: %(job)d})})
  .catch(() => {}).finally(() => {
    document.getElementById("f").submit();
    setTimeout(() => { document.body.dataset.done = "1"; }, 1500);
  });
</script></body>""" % {"t": self.target[0], "job": self.target[1]}
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.end_headers()
        self.wfile.write(page.encode())

    def log_message(self, *a):
        pass


def test_browser_cross_site_post_changes_nothing(rlsworker, db, tasks, tmp_path):
    w, port = start(rlsworker, db, tasks, tmp_path)
    job = dead_job(db)
    EvilHandler.target = ("http://127.0.0.1:%d" % port, job)
    # another origin: localhost on another port
    srv = ThreadingHTTPServer(("127.0.0.1", 0), EvilHandler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        out = browser("csrf", port, expect_errors=True,
                      EVIL_URL="http://localhost:%d/" % srv.server_address[1])
    finally:
        srv.shutdown()
    # what the browser said: the console refused to be framed or read cross-site
    assert any("frame-ancestors" in e or "NotSameOrigin" in e or "403" in e
               for e in out["errors"]), out["errors"]
    assert db.val("select state from rlsworker.jobs where id = %s", (job,)) == "dead"
    w.stop_clean()


def test_browser_without_or_with_wrong_credentials_gets_401(rlsworker, db, tasks, tmp_path):
    w, port = start(rlsworker, db, tasks, tmp_path)
    for env in ({"NO_CREDENTIALS": 1}, {"WRONG_PASSWORD": "not the password"}):
        out = browser("unauthorized", port, expect_errors=True, **env)
        assert out["seen"], out
        assert all(s["status"] == 401 and s["auth"].startswith("Basic realm=")
                   for s in out["seen"]), out
        # no console request got through: nothing but the challenge came back
        assert [s["url"] for s in out["seen"]] == ["http://127.0.0.1:%d/ui/" % port] * len(
            out["seen"]), out
    w.stop_clean()


# ------------------------------------------------------------------ HTTP

def test_401_without_and_with_wrong_credentials(rlsworker, db, tasks, tmp_path):
    w, port = start(rlsworker, db, tasks, tmp_path)
    for path in ("/ui/", "/ui/app.js", "/ui/api/jobs", "/ui/api/session", "/ui"):
        st, h, _ = request(port, "GET", path)
        assert st == 401 and h["www-authenticate"].startswith("Basic realm="), path
    for auth in (basic(password="wrong"), basic(user="root"), basic(password=PASSWORD + "x"),
                 "Basic !!!", "Bearer x", basic(password="")):
        st, h, data = request(port, "GET", "/ui/api/session", headers={"Authorization": auth})
        assert st == 401, auth
        assert "csrf" not in json.dumps(data)
    st, h, data = request(port, "GET", "/ui/api/session", headers={"Authorization": basic()})
    assert st == 200 and data["user"] == USER and len(data["csrf"]) == 64
    assert "failed login from 127.0.0.1" in w.read_stderr()
    assert PASSWORD not in w.read_stderr()
    w.stop_clean()


def test_failed_logins_are_limited_per_address(rlsworker, db, tasks, tmp_path):
    port = free_port()
    env = db.env(RLSWORKER_CONSOLE_USER=USER, RLSWORKER_CONSOLE_PASSWORD=PASSWORD)
    w = rlsworker.spawn("run", "--listen", "127.0.0.1:%d" % port, "--tasks", str(tasks),
                        "--console-max-failures", "3", "--console-failure-window", "60", env=env)
    w.wait_for(r"http intake listening on")
    for _ in range(3):
        assert request(port, "GET", "/ui/", headers={"Authorization": basic(password="no")})[0] == 401
    # blocked now, even with the right password (no oracle for guessing)
    st, h, _ = request(port, "GET", "/ui/", headers={"Authorization": basic()})
    assert st == 429 and "retry-after" in h
    w.stop_clean()


def test_security_headers_and_no_secrets_in_pages(rlsworker, db, tasks, tmp_path):
    w, port = start(rlsworker, db, tasks, tmp_path)
    db.sql("select rlsworker.add_job('complete_todos', claims => "
           "'{\"sub\":\"alice\",\"email\":\"alice-secret@example.com\"}',"
           " run_at => now() + interval '1 hour')")
    for path in ("/ui/", "/ui/app.js", "/ui/app.css", "/ui/api/jobs", "/ui/api/overview"):
        st, h, body = request(port, "GET", path, headers={"Authorization": basic()})
        assert st == 200, path
        csp = h["content-security-policy"]
        assert "default-src 'none'" in csp and "script-src 'self'" in csp
        assert "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
        assert h["x-frame-options"] == "DENY" and h["x-content-type-options"] == "nosniff"
        text = json.dumps(body) if not isinstance(body, str) else body
        assert "alice-secret" not in text and "postgresql://" not in text
        assert PASSWORD not in text
    _, h, _ = request(port, "GET", "/ui/", headers={"Authorization": basic()})
    assert h["content-type"].startswith("text/html")
    _, _, page = request(port, "GET", "/ui/", headers={"Authorization": basic()})
    assert "<script src=\"/ui/app.js\"" in page and "<script>" not in page
    assert "http://" not in page and "https://" not in page   # nothing from elsewhere
    _, _, jobs = request(port, "GET", "/ui/api/jobs", headers={"Authorization": basic()})
    assert jobs["rows"][0]["has_claims"] is True and jobs["rows"][0]["subject"] == "alice"
    assert "claims" not in jobs["rows"][0]
    w.stop_clean()


def test_post_needs_csrf_token_and_origin(rlsworker, db, tasks, tmp_path):
    w, port = start(rlsworker, db, tasks, tmp_path)
    job = dead_job(db)
    _, _, s = request(port, "GET", "/ui/api/session", headers={"Authorization": basic()})
    host = "127.0.0.1:%d" % port
    good = {"Authorization": basic(), "Content-Type": "application/json",
            "X-CSRF-Token": s["csrf"], "Origin": "http://" + host}
    body = {"action": "delete", "id": job}
    bad = [
        {k: v for k, v in good.items() if k != "X-CSRF-Token"},
        dict(good, **{"X-CSRF-Token": "0" * 64}),
        {k: v for k, v in good.items() if k != "Origin"},
        dict(good, Origin="http://evil.example"),
        dict(good, **{"Content-Type": "text/plain"}),
        {k: v for k, v in good.items() if k != "Authorization"},
    ]
    for h in bad:
        st, _, _ = request(port, "POST", "/ui/api/action", body, h)
        assert st in (401, 403, 415), h
        assert db.val("select state from rlsworker.jobs where id = %s", (job,)) == "dead"
    st, _, _ = request(port, "GET", "/ui/api/action?action=delete&id=%d" % job,
                       headers={"Authorization": basic()})
    assert st == 404
    assert db.val("select state from rlsworker.jobs where id = %s", (job,)) == "dead"
    st, _, data = request(port, "POST", "/ui/api/action", body, good)
    assert st == 200 and data["result"] == "deleted", data
    assert db.val("select count(*) from rlsworker.jobs where id = %s", (job,)) == 0
    assert "refused a POST from 127.0.0.1" in w.read_stderr()
    w.stop_clean()


def test_enqueue_goes_through_add_job_validation(rlsworker, db, tasks, tmp_path):
    w, port = start(rlsworker, db, tasks, tmp_path)
    _, _, s = request(port, "GET", "/ui/api/session", headers={"Authorization": basic()})
    h = {"Authorization": basic(), "Content-Type": "application/json",
         "X-CSRF-Token": s["csrf"], "Origin": "http://127.0.0.1:%d" % port}
    st, _, data = request(port, "POST", "/ui/api/enqueue",
                          {"task": "noop", "payload": "[1,2]"}, h)
    assert st == 400 and "payload must be a JSON object" in data["message"]
    st, _, data = request(port, "POST", "/ui/api/enqueue",
                          {"task": "complete_todos", "claims": '{"sub":"a"}', "subject": "b"}, h)
    assert st == 400 and "differs from claims.sub" in data["message"]
    st, _, data = request(port, "POST", "/ui/api/enqueue",
                          {"task": "complete_todos", "claims": '{"sub":"alice"}',
                           "run_at": "2999-01-01T00:00:00Z", "queue": "q", "key": "k1",
                           "priority": "-2"}, h)
    assert st == 200, data
    row = db.one("select task, subject, queue, job_key, priority, claims->>'sub' from"
                 " rlsworker.jobs where id = %s", (data["id"],))
    assert row == ("complete_todos", "alice", "q", "k1", -2, "alice")
    w.stop_clean()


def test_password_hashes(rlsworker, db, tasks, tmp_path):
    digest = "sha256:" + hashlib.sha256(PASSWORD.encode()).hexdigest()
    w, port = start(rlsworker, db, tasks, tmp_path, digest)
    assert request(port, "GET", "/ui/", headers={"Authorization": basic(password="x")})[0] == 401
    w.stop_clean()
    salt = b"0123456789abcdef"
    key = hashlib.pbkdf2_hmac("sha256", PASSWORD.encode(), salt, 20000)
    spec = "pbkdf2-sha256:20000:%s:%s" % (salt.hex(), key.hex())
    w, port = start(rlsworker, db, tasks, tmp_path, spec)
    assert request(port, "GET", "/ui/", headers={"Authorization": basic(password="x")})[0] == 401
    w.stop_clean()
    r = rlsworker.cli("run", "--once", "--listen", "127.0.0.1:%d" % free_port(), "--tasks",
                      str(tasks), env=db.env(RLSWORKER_CONSOLE_USER=USER,
                                             RLSWORKER_CONSOLE_PASSWORD="sha256:abc"))
    assert r.returncode != 0 and "64 hex digits" in r.stderr


def test_console_off_without_credentials(rlsworker, db, tasks, tmp_path):
    port = free_port()
    w = rlsworker.spawn("run", "--listen", "127.0.0.1:%d" % port, "--tasks", str(tasks),
                        env=db.env())
    w.wait_for(r"http intake listening on")
    assert request(port, "GET", "/ui/", headers={"Authorization": basic()})[0] == 404
    w.stop_clean()
