"""HTTP intake of `rlsworker run --listen` (docs/http.md), end to end:
a real worker, a real PostgreSQL, requests over a socket.

Covers: POST /v1/jobs with good, forged, expired and missing tokens (the job
runs under RLS as the token's sub; a refused token stores nothing);
every error status with its JSON error; Standard Webhooks deliveries (good
once, replay, bad signature, stale timestamp, oversized, not an object);
/healthz, /readyz and /metrics, also while PostgreSQL is down; overload
(503 with Retry-After while verifications wait on a slow JWKS server).

Run: /usr/bin/python3 -m pytest -q tests/integration/test_intake.py
"""
import base64
import hashlib
import hmac
import http.client
import json
import shutil
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from helpers import REPO, free_port, wait_until, write_task

pytestmark = pytest.mark.integration

SECRET = "intake-test-secret-" + "y" * 32
WEBHOOK_KEY = b"0123456789abcdef0123456789abcdef"
WEBHOOK_SECRET = "whsec_" + base64.b64encode(WEBHOOK_KEY).decode()
DEMO_TASKS = REPO + "/deploy/demo/tasks"


# ---------------------------------------------------------------- helpers

def token(sub="alice", secret=SECRET, exp_in=300, **extra):
    now = int(time.time())
    claims = {"sub": sub, "iat": now, "exp": now + exp_in, "role": "authenticated"}
    claims.update(extra)
    return jwt.encode(claims, secret, algorithm="HS256")


def request(port, method, path, body=None, headers=None, timeout=10):
    """One request on a fresh connection; returns (status, headers, parsed body)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        raw = resp.read().decode()
        ctype = resp.getheader("Content-Type", "")
        data = json.loads(raw) if ctype.startswith("application/json") else raw
        return resp.status, dict(resp.getheaders()), data
    finally:
        conn.close()


def post_job(port, body, tok=None, ctype="application/json"):
    headers = {"Content-Type": ctype}
    if tok is not None:
        headers["Authorization"] = "Bearer " + tok
    return request(port, "POST", "/v1/jobs", body, headers)


def sign(msg_id, ts, body, key=WEBHOOK_KEY):
    mac = hmac.new(key, ("%s.%s." % (msg_id, ts)).encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def post_hook(port, body, msg_id="msg_1", ts=None, sig=None, source="billing"):
    if isinstance(body, dict):
        body = json.dumps(body).encode()
    ts = str(int(time.time())) if ts is None else str(ts)
    headers = {"Content-Type": "application/json", "webhook-id": msg_id,
               "webhook-timestamp": ts,
               "webhook-signature": sig if sig is not None else sign(msg_id, ts, body)}
    return request(port, "POST", "/v1/webhooks/" + source, body, headers)


def metric(port, name):
    """Sum of every sample of `name` (with any labels) in /metrics."""
    _, _, text = request(port, "GET", "/metrics")
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            total += float(line.rsplit(" ", 1)[1])
    return total


def jobs_count(db):
    return db.val("select count(*) from rlsworker.jobs")


@pytest.fixture
def tasks(tmp_path):
    d = tmp_path / "tasks"
    shutil.copytree(DEMO_TASKS, d)
    write_task(d, "record_hook", """
        -- task: record_hook
        -- run_as: system
        -- scope: global
        insert into todos (user_id, task) values ('hook', :title);
    """)
    write_task(d, "slow_user", """
        -- task: slow_user
        -- run_as: user
        -- enqueue: user
        select pg_sleep(0);
    """)
    return d


def start_worker(rlsworker, db, tasks, tmp_path, *extra, env_extra=None, wait=True):
    port = free_port()
    conf = tmp_path / "worker.conf"
    conf.write_text("webhook.billing.secret = %s\nwebhook.billing.task = record_hook\n"
                    "webhook.raw.secret = plain-text-secret\nwebhook.raw.task = record_hook\n"
                    % WEBHOOK_SECRET)
    env = db.env(**(env_extra if env_extra is not None else {"JWT_SECRET": SECRET}))
    w = rlsworker.spawn("run", "--listen", "127.0.0.1:%d" % port, "--tasks", str(tasks),
                        "--config", str(conf), *extra, env=env)
    if wait:
        w.wait_for(r"http intake listening on")
        wait_until(lambda: request(port, "GET", "/readyz")[0] == 200, what="readyz")
    return w, port


# ---------------------------------------------------------------- /v1/jobs

def test_good_token_enqueues_a_job_that_runs_as_that_user(rlsworker, db, tasks, tmp_path):
    db.sql("insert into todos (user_id, task) values ('bob', 'bob open')")
    w, port = start_worker(rlsworker, db, tasks, tmp_path)

    status, headers, body = post_job(port, {"task": "add_todo", "payload": {"title": "from http"}},
                                     token("alice"))
    assert status == 202, body
    assert isinstance(body["id"], int)
    wait_until(lambda: db.sql("select user_id from todos where task = 'from http'"),
               what="the job to run")
    assert db.sql("select user_id from todos where task = 'from http'") == [("alice",)]

    # a user job that touches every row it can see changes only alice's rows
    status, _, body = post_job(port, {"task": "complete_todos"}, token("alice"))
    assert status == 202, body
    wait_until(lambda: db.val("select bool_and(is_complete) from todos where user_id = 'alice'"),
               what="complete_todos")
    assert db.val("select is_complete from todos where user_id = 'bob'") is False
    w.wait_for(r"http POST /v1/jobs 202 job=\d+")
    log = w.read_stderr()
    assert token("alice") not in log and SECRET not in log


def test_stored_claims_are_the_verified_ones(rlsworker, db, tasks, tmp_path):
    w, port = start_worker(rlsworker, db, tasks, tmp_path)
    tok = token("carol", team="blue")
    status, _, body = post_job(port, {"task": "add_todo", "payload": {"title": "x"},
                                      "run_at": "2099-01-01T00:00:00Z", "key": "k1"}, tok)
    assert status == 202, body
    row = db.one("select claims, subject, run_as, job_key, payload from rlsworker.jobs where id = %s",
                 (body["id"],))
    claims, subject, run_as, key, payload = row
    assert claims["sub"] == "carol" and claims["team"] == "blue"
    assert subject == "carol" and run_as == "user" and payload == {"title": "x"}
    assert key != "k1" and key.endswith(":k1")   # scoped per user

    # the same key from another user is another job; from the same user, the same
    s1, _, b1 = post_job(port, {"task": "add_todo", "payload": {"title": "y"},
                                "run_at": "2099-01-01T00:00:00Z", "key": "k1"}, token("dave"))
    s2, _, b2 = post_job(port, {"task": "add_todo", "payload": {"title": "z"},
                                "run_at": "2099-01-01T00:00:00Z", "key": "k1"}, tok)
    assert s1 == 202 and s2 == 202
    assert b1["id"] != body["id"] and b2["id"] == body["id"]
    assert db.val("select payload->>'title' from rlsworker.jobs where id = %s", (body["id"],)) == "z"


@pytest.mark.security
@pytest.mark.parametrize("case", ["forged", "expired", "none_alg", "no_sub", "garbage", "missing",
                                  "basic"])
def test_bad_tokens_enqueue_nothing(rlsworker, db, tasks, tmp_path, case):
    w, port = start_worker(rlsworker, db, tasks, tmp_path)
    body = {"task": "add_todo", "payload": {"title": "evil"}}
    headers = {"Content-Type": "application/json"}
    toks = {
        "forged": token("alice", secret="not-the-secret-" + "z" * 40),
        "expired": token("alice", exp_in=-3600),
        "none_alg": jwt.encode({"sub": "alice", "exp": int(time.time()) + 300}, None,
                               algorithm="none"),
        "no_sub": jwt.encode({"exp": int(time.time()) + 300}, SECRET, algorithm="HS256"),
        "garbage": "a.b.c",
    }
    if case in toks:
        headers["Authorization"] = "Bearer " + toks[case]
    elif case == "basic":
        headers["Authorization"] = "Basic YWxpY2U6cHc="
    before = metric(port, "rlsworker_token_rejections_total")
    status, resp_headers, data = request(port, "POST", "/v1/jobs", json.dumps(body), headers)
    assert status == 401, data
    assert data["error"] == "invalid_token" and data["message"]
    assert resp_headers.get("WWW-Authenticate") == "Bearer"
    assert jobs_count(db) == 0
    assert metric(port, "rlsworker_token_rejections_total") == before + 1
    time.sleep(0.3)
    assert db.val("select count(*) from todos where task = 'evil'") == 0
    if case in toks:
        assert toks[case] not in w.read_stderr()


def test_body_cannot_set_claims_role_or_subject(rlsworker, db, tasks, tmp_path):
    w, port = start_worker(rlsworker, db, tasks, tmp_path)
    for field, value in (("claims", {"sub": "bob"}), ("subject", "bob"), ("role", "admin"),
                         ("run_as", "system")):
        status, _, data = post_job(port, {"task": "add_todo", field: value}, token("alice"))
        assert status == 400, (field, data)
        assert field in data["message"]
    assert jobs_count(db) == 0


def test_error_statuses(rlsworker, db, tasks, tmp_path):
    w, port = start_worker(rlsworker, db, tasks, tmp_path, "--body-limit", "2048")
    tok = token("alice")
    cases = [
        (post_job(port, "{not json", tok), 400, "bad_request"),
        (post_job(port, "[1, 2]", tok), 400, "bad_request"),
        (post_job(port, {"payload": {}}, tok), 400, "bad_request"),
        (post_job(port, {"task": "add_todo", "payload": [1]}, tok), 400, "bad_request"),
        (post_job(port, {"task": "add_todo", "run_at": "tomorrow"}, tok), 400, "bad_request"),
        (post_job(port, {"task": "add_todo", "extra": 1}, tok), 400, "bad_request"),
        (post_job(port, '{"task": "add_todo", "task": "add_todo"}', tok), 400, "bad_request"),
        (post_job(port, {"task": "add_todo"}), 401, "invalid_token"),
        (post_job(port, {"task": "stats_global"}, tok), 403, "task_not_allowed"),
        (post_job(port, {"task": "no_such_task"}, tok), 403, "task_not_allowed"),
        (request(port, "GET", "/nope"), 404, "not_found"),
        (request(port, "POST", "/v1/webhooks/unknown", "{}",
                 {"Content-Type": "application/json"}), 404, "not_found"),
        (request(port, "GET", "/v1/jobs"), 405, "method_not_allowed"),
        (request(port, "POST", "/healthz", "{}"), 405, "method_not_allowed"),
        (post_job(port, {"task": "add_todo", "payload": {"t": "x" * 4000}}, tok), 413,
         "body_too_large"),
        (post_job(port, {"task": "add_todo"}, tok, ctype="text/plain"), 415,
         "unsupported_media_type"),
        (post_job(port, {"task": "add_todo"}, tok, ctype="application/jsonx"), 415,
         "unsupported_media_type"),
    ]
    for i, ((status, headers, data), want, code) in enumerate(cases):
        assert status == want, (i, data)
        assert headers["Content-Type"] == "application/json", i
        assert data["error"] == code and data["message"], (i, data)
    assert cases[12][0][1]["Allow"] == "POST"
    assert jobs_count(db) == 0
    # still serving, and charset parameters are fine
    status, _, data = post_job(port, {"task": "add_todo", "payload": {"title": "ok"}}, tok,
                               ctype="application/json; charset=utf-8")
    assert status == 202, data
    assert metric(port, "rlsworker_intake_requests_total") >= len(cases) + 1


def test_chunked_body_over_the_limit_is_413(rlsworker, db, tasks, tmp_path):
    w, port = start_worker(rlsworker, db, tasks, tmp_path, "--body-limit", "2048")
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    chunks = (b'{"task": "add_todo", "payload": {"t": "' + b"x" * 1000 + b'"}}',) * 3

    conn.request("POST", "/v1/jobs", body=iter(chunks), encode_chunked=True,
                 headers={"Content-Type": "application/json",
                          "Authorization": "Bearer " + token("alice")})
    resp = conn.getresponse()
    assert resp.status == 413
    assert json.loads(resp.read())["error"] == "body_too_large"
    conn.close()
    assert jobs_count(db) == 0


def test_listen_port_in_use_is_a_clear_error(rlsworker, db, tasks):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    port = s.getsockname()[1]
    try:
        w = rlsworker.spawn("run", "--listen", "127.0.0.1:%d" % port, "--tasks", str(tasks),
                            env=db.env(JWT_SECRET=SECRET))
        assert w.wait(20) == 1
        assert "Address already in use" in w.read_stderr()
        bad = rlsworker.spawn("run", "--listen", "localhost", "--tasks", str(tasks),
                              env=db.env(JWT_SECRET=SECRET))
        assert bad.wait(20) == 1
        assert "is not ADDR:PORT" in bad.read_stderr()
    finally:
        s.close()


# ---------------------------------------------------------------- webhooks

@pytest.mark.security
def test_webhook_good_once_then_replay(rlsworker, db, tasks, tmp_path):
    w, port = start_worker(rlsworker, db, tasks, tmp_path)
    body = json.dumps({"title": "paid"}).encode()
    ts = str(int(time.time()))
    sig = sign("msg_A", ts, body)

    status, _, first = post_hook(port, body, "msg_A", ts, sig)
    assert status == 202, first
    wait_until(lambda: db.sql("select 1 from todos where task = 'paid'"), what="webhook job")
    status, _, again = post_hook(port, body, "msg_A", ts, sig)
    assert status == 200, again
    assert again == {"id": first["id"], "replay": True}
    time.sleep(0.5)
    assert db.val("select count(*) from todos where task = 'paid'") == 1
    # a raw (non-whsec) secret and several signatures, one of them right
    raw = json.dumps({"title": "raw"}).encode()
    sigs = "v1,AAAA " + sign("m2", ts, raw, key=b"plain-text-secret") + " v2,zzz"
    status, _, data = post_hook(port, raw, "m2", ts, sigs, source="raw")
    assert status == 202, data
    assert WEBHOOK_SECRET not in w.read_stderr()


@pytest.mark.security
def test_webhook_refusals_store_nothing(rlsworker, db, tasks, tmp_path):
    w, port = start_worker(rlsworker, db, tasks, tmp_path, "--body-limit", "2048")
    body = json.dumps({"title": "x"}).encode()
    now = int(time.time())
    good = sign("m", now, body)
    cases = [
        (post_hook(port, body, "m", now, sign("m", now, body, key=b"wrong" * 8)), 401),
        (post_hook(port, body, "m", now, good.replace("v1,", "v2,")), 401),
        (post_hook(port, body + b" ", "m", now, good), 401),             # body changed
        (post_hook(port, body, "other-id", now, good), 401),             # id changed
        (post_hook(port, body, "m", now - 301, sign("m", now - 301, body)), 401),   # stale
        (post_hook(port, body, "m", now + 301, sign("m", now + 301, body)), 401),   # future
        (post_hook(port, body, "m", "12abc", sign("m", "12abc", body)), 401),
        (post_hook(port, body, "m", now, ""), 401),
        (post_hook(port, b"[1]", "m", now, sign("m", now, b"[1]")), 400),
        (post_hook(port, b"{bad", "m", now, sign("m", now, b"{bad")), 400),
    ]
    big = json.dumps({"title": "x" * 3000}).encode()
    cases.append((post_hook(port, big, "m", now, sign("m", now, big)), 413))
    for i, ((status, _, data), want) in enumerate(cases):
        assert status == want, (i, data)
        assert data["error"] and data["message"], i
    assert jobs_count(db) == 0
    assert db.val("select count(*) from rlsworker.webhook_seen") == 0


def test_webhook_task_must_not_run_as_user(rlsworker, db, tasks, tmp_path):
    conf = tmp_path / "bad.conf"
    conf.write_text("webhook.x.secret = abc\nwebhook.x.task = add_todo\n")
    w = rlsworker.spawn("run", "--listen", "127.0.0.1:%d" % free_port(), "--tasks", str(tasks),
                        "--config", str(conf), env=db.env(JWT_SECRET=SECRET))
    assert w.wait(20) == 1
    assert "runs as user" in w.read_stderr()


# ---------------------------------------------------------------- health

def test_health_ready_metrics(rlsworker, db, tasks, tmp_path):
    w, port = start_worker(rlsworker, db, tasks, tmp_path)
    assert request(port, "GET", "/healthz")[:3:2] == (200, {"status": "ok"})
    status, _, data = request(port, "GET", "/readyz")
    assert status == 200 and data["status"] == "ready" and data["schema_version"] >= 4
    post_job(port, {"task": "add_todo", "payload": {"title": "m"}}, token("alice"))
    post_job(port, {"task": "add_todo"}, "bad")
    status, headers, text = request(port, "GET", "/metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    assert 'rlsworker_intake_requests_total{status="202"}' in text
    assert 'rlsworker_token_rejections_total{reason="malformed"}' in text
    wait_until(lambda: 'rlsworker_queue_jobs{state="queued"}' in request(port, "GET", "/metrics")[2],
               what="queue depth")


@pytest.mark.chaos
def test_keeps_serving_while_the_database_restarts(rlsworker, db, pg, tasks, tmp_path):
    w, port = start_worker(rlsworker, db, tasks, tmp_path)
    pg.stop()
    try:
        wait_until(lambda: request(port, "GET", "/readyz")[0] == 503, what="readyz 503")
        assert request(port, "GET", "/healthz")[0] == 200
        status, headers, data = post_job(port, {"task": "add_todo", "payload": {"title": "down"}},
                                         token("alice"))
        assert status == 503, data
        assert headers["Retry-After"] == "1"
        body = json.dumps({"title": "down"}).encode()
        assert post_hook(port, body, "down-1")[0] == 503
    finally:
        pg.start()
    wait_until(lambda: request(port, "GET", "/readyz")[0] == 200, timeout=40,
               what="readyz back")
    assert db.val("select count(*) from rlsworker.jobs where payload->>'title' = 'down'") == 0
    status, _, data = post_job(port, {"task": "add_todo", "payload": {"title": "up"}},
                               token("alice"))
    assert status == 202, data
    # the refused webhook was not recorded: its sender's retry goes through
    assert post_hook(port, json.dumps({"title": "down"}).encode(), "down-1")[0] == 202
    assert w.poll() is None


class SlowJwks(BaseHTTPRequestHandler):
    delay = 5.0

    def do_GET(self):
        time.sleep(self.delay)
        body = b'{"keys": []}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


def test_overload_answers_503_with_retry_after(rlsworker, db, tasks, tmp_path):
    srv = ThreadingHTTPServer(("127.0.0.1", 0), SlowJwks)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        w, port = start_worker(rlsworker, db, tasks, tmp_path, "--intake-max-inflight", "1",
                               env_extra={"JWKS_URL": "http://127.0.0.1:%d/jwks" %
                                          srv.server_address[1]})
        results = []
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        now = int(time.time())
        rs = jwt.encode({"sub": "alice", "iat": now, "exp": now + 300}, key,
                        algorithm="RS256", headers={"kid": "k1"})

        def first():
            results.append(post_job(port, {"task": "add_todo"}, rs))
        t = threading.Thread(target=first)
        t.start()
        time.sleep(0.5)          # the first request now waits for the key set
        status, headers, data = post_job(port, {"task": "add_todo"}, rs)
        assert status == 503 and data["error"] == "overloaded", data
        assert headers["Retry-After"] == "1"
        t.join(20)
        assert results and results[0][0] == 401       # empty key set: refused
        assert jobs_count(db) == 0
    finally:
        srv.shutdown()


def test_sigterm_stops_the_intake_cleanly(rlsworker, db, tasks, tmp_path):
    w, port = start_worker(rlsworker, db, tasks, tmp_path)
    assert post_job(port, {"task": "add_todo", "payload": {"title": "t"}}, token("alice"))[0] == 202
    # a connection left open mid-request must not hold up or crash the stop
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Content-Length: 100\r\n\r\n{\"task\"")
    time.sleep(0.2)
    assert w.stop() == 0
    s.close()
    err = w.read_stderr()
    assert "http intake stopped" in err
    assert "Sanitizer" not in err and "runtime error" not in err
