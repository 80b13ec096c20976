"""The `http` built-in (docs/http-task.md): delivery, retries, timeouts, bad
payloads, and the outgoing-HTTP guard (DESIGN.md security model 7) against a
real server on 127.0.0.1, which the guard refuses unless allowlisted."""
import http.server
import json
import threading
import time

import pytest

from helpers import free_port

pytestmark = pytest.mark.integration

SECRET = "s3cret-query-token"


class Hook:
    """A webhook receiver in a thread: records every request and answers
    with the next scripted status (then 200), after an optional delay."""

    def __init__(self, statuses=(), delay=0.0):
        self.requests = []
        self.statuses = list(statuses)
        self.delay = delay
        self.port = free_port()
        hook = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _any(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                hook.requests.append({"method": self.command, "path": self.path,
                                      "headers": {k.lower(): v for k, v in self.headers.items()},
                                      "body": body})
                if hook.delay:
                    time.sleep(hook.delay)
                status = hook.statuses.pop(0) if hook.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _any

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path="/hook"):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hook():
    servers = []

    def make(*args, **kwargs):
        servers.append(Hook(*args, **kwargs))
        return servers[-1]
    yield make
    for s in servers:
        s.close()


def add(db, payload):
    return db.val("select rlsworker.add_job('http', %s::jsonb)", (json.dumps(payload),))


@pytest.fixture
def run_once(rlsworker, db, tasks_dir):
    """Runs `rlsworker run --once` (debug log) with extra flags; returns the result."""
    def run(*flags, timeout=60):
        r = rlsworker.cli("run", "--once", "--tasks", str(tasks_dir), "--log-level", "debug",
                          *flags, env=db.env(), timeout=timeout)
        assert r.returncode == 0, r.stderr
        return r
    return run


def job(db, job_id):
    """(state, attempts, last_error) or None once the job succeeded."""
    rows = db.sql("select state, attempts, last_error from rlsworker.jobs where id = %s",
                  (job_id,))
    return rows[0] if rows else None


ALLOW = ("--http-allow", "127.0.0.1/32")


def test_loopback_refused_by_default(rlsworker, db, hook, run_once):
    h = hook()
    ids = [add(db, {"url": h.url("/hook?token=" + SECRET), "body": {"a": 1}}),
           add(db, {"url": "http://localhost:%d/hook" % h.port}),
           add(db, {"url": "http://[::ffff:127.0.0.1]:%d/" % h.port}),
           add(db, {"url": "http://metadata.google.internal/computeMetadata/v1/"})]
    r = run_once()
    assert h.requests == []
    # the query string (a secret) is in neither the job's error nor the log
    assert SECRET not in job(db, ids[0])[2]
    assert SECRET not in r.stderr + r.stdout
    for i in ids[:3]:
        state, attempts, err = job(db, i)
        assert (state, attempts) == ("dead", 1), err
        assert "is a loopback address" in err and "allow it with http_allow" in err
    assert job(db, ids[0])[2] == ("POST 127.0.0.1:%d/hook: refused: 127.0.0.1 is a loopback "
                                  "address; allow it with http_allow" % h.port)
    assert "::ffff:127.0.0.1 is a loopback address (IPv4-mapped form)" in job(db, ids[2])[2]
    state, attempts, err = job(db, ids[3])
    assert state == "dead" and "metadata.google.internal is a cloud metadata host" in err
    # an IP in decimal is the same loopback address once resolved
    r = rlsworker.cli("add", "http", "--payload",
                      json.dumps({"url": "http://2130706433:%d/x" % h.port}), env=db.env())
    assert r.returncode == 0, r.stderr
    run_once()
    assert h.requests == []
    err = db.val("select last_error from rlsworker.jobs where payload->>'url' like '%2130706433%'")
    assert "refused: 127.0.0.1 is a loopback address" in err


def test_allowlist_other_range_still_refuses(rlsworker, db, hook, run_once):
    h = hook()
    i = add(db, {"url": h.url()})
    run_once("--http-allow", "10.0.0.0/8, 127.0.0.2/32")
    assert h.requests == []
    assert job(db, i)[0] == "dead"


def test_allowlist_by_host_name(rlsworker, db, hook, run_once):
    h = hook()
    by_name = add(db, {"url": "http://LocalHost:%d/named" % h.port})
    by_addr = add(db, {"url": h.url("/by-address")})
    run_once("--http-allow", "localhost")
    assert job(db, by_name) is None
    assert "loopback" in job(db, by_addr)[2]     # the name allows that host only
    assert [r["path"] for r in h.requests] == ["/named"]


def test_delivered_once_with_method_headers_body(rlsworker, db, hook, run_once):
    h = hook()
    post = add(db, {"url": h.url("/hook?token=" + SECRET),
                    "headers": {"X-Signature": "sig-123", "X-Empty": ""},
                    "body": {"event": "todo.done", "id": 7}})
    r = run_once(*ALLOW)
    assert job(db, post) is None
    assert len(h.requests) == 1
    got = h.requests[0]
    assert got["method"] == "POST" and got["path"] == "/hook?token=" + SECRET
    assert got["headers"]["content-type"] == "application/json"
    assert got["headers"]["x-signature"] == "sig-123"
    assert got["headers"]["x-empty"] == ""
    assert got["headers"]["user-agent"].startswith("rlsworker/")
    assert "expect" not in got["headers"]
    assert json.loads(got["body"]) == {"event": "todo.done", "id": 7}
    assert SECRET not in r.stderr + r.stdout
    assert "sig-123" not in r.stderr + r.stdout


def test_methods_and_string_bodies(rlsworker, db, hook, run_once):
    h = hook()
    big = "x" * 5000      # past curl's Expect: 100-continue threshold
    add(db, {"url": h.url("/put"), "method": "put", "body": big})
    add(db, {"url": h.url("/get"), "method": "GET"})
    add(db, {"url": h.url("/del"), "method": "DELETE",
             "headers": {"Content-Type": "text/csv"}, "body": "a,b"})
    add(db, {"url": h.url("/patch"), "method": "PATCH", "body": [1, "two", None]})
    start = time.time()
    run_once(*ALLOW)
    assert time.time() - start < 10
    assert db.val("select count(*) from rlsworker.jobs") == 0
    by_path = {r["path"]: r for r in h.requests}
    assert sorted(by_path) == ["/del", "/get", "/patch", "/put"]
    assert by_path["/put"]["method"] == "PUT" and by_path["/put"]["body"] == big.encode()
    assert by_path["/put"]["headers"]["content-type"].startswith("text/plain")
    assert by_path["/get"]["method"] == "GET" and by_path["/get"]["body"] == b""
    assert by_path["/del"]["headers"]["content-type"] == "text/csv"
    assert by_path["/del"]["body"] == b"a,b"
    assert json.loads(by_path["/patch"]["body"]) == [1, "two", None]


def test_500_is_retried_then_succeeds(rlsworker, db, hook, run_once):
    h = hook(statuses=[500, 429])
    i = add(db, {"url": h.url("/hook?token=" + SECRET)})
    flags = (*ALLOW, "--backoff-base", "300")    # the first retry waits 150..300 ms
    run_once(*flags)
    state, attempts, err = job(db, i)
    assert (state, attempts) == ("queued", 1)
    assert err == "HTTP 500 from 127.0.0.1:%d" % h.port
    time.sleep(0.35)
    run_once(*flags)
    assert job(db, i)[:2] == ("queued", 2) and "HTTP 429" in job(db, i)[2]
    time.sleep(0.65)                                # the second retry waits 300..600 ms
    run_once(*flags)
    assert job(db, i) is None
    assert [r["path"] for r in h.requests] == ["/hook?token=" + SECRET] * 3


def test_client_error_is_final_unless_expected(rlsworker, db, hook, run_once):
    h = hook(statuses=[404, 404, 301])
    bad = add(db, {"url": h.url("/a")})
    ok = add(db, {"url": h.url("/b"), "expect": [404, 410]})
    moved = add(db, {"url": h.url("/c"), "expect": [200]})
    run_once(*ALLOW, "--concurrency", "1")
    assert len(h.requests) == 3
    state, attempts, err = job(db, bad)
    assert (state, attempts) == ("dead", 1) and err.startswith("HTTP 404 from 127.0.0.1")
    assert job(db, ok) is None
    state, attempts, err = job(db, moved)
    assert state == "dead" and "HTTP 301" in err and "redirects are not followed" in err


def test_slow_server_hits_the_job_timeout(rlsworker, db, hook, run_once):
    h = hook(delay=6)
    i = add(db, {"url": h.url()})
    start = time.time()
    run_once(*ALLOW, "--task-timeout", "1")
    assert time.time() - start < 5          # the request was cancelled, not waited for
    state, attempts, err = job(db, i)
    assert (state, attempts, err) == ("queued", 1, "timed out after 1 s")
    assert len(h.requests) == 1


def test_payload_timeout_is_retried(rlsworker, db, hook, run_once):
    h = hook(delay=4)
    i = add(db, {"url": h.url(), "timeout": 0.5})
    start = time.time()
    run_once(*ALLOW)
    assert time.time() - start < 3.5
    state, attempts, err = job(db, i)
    assert (state, attempts) == ("queued", 1)
    assert "timed out" in err.lower() and err.startswith("POST 127.0.0.1:%d/" % h.port)


def test_network_error_is_retried(rlsworker, db, run_once):
    i = add(db, {"url": "http://127.0.0.1:%d/nobody-listens" % free_port()})
    run_once(*ALLOW)
    state, attempts, err = job(db, i)
    assert (state, attempts) == ("queued", 1)
    assert err.startswith("POST 127.0.0.1:") and "/nobody-listens" in err


BAD_PAYLOADS = [
    ({}, "payload.url is required"),
    ({"url": 42}, "payload.url is required"),
    ({"url": "ftp://127.0.0.1/x"}, "must use http:// or https://"),
    ({"url": "not a url"}, "not a valid absolute URL"),
    ({"url": "URL", "headers": {"X-A": "ok\r\nX-Injected: 1"}}, "without CR, LF"),
    ({"url": "URL", "headers": {"X-A\r\nX-B": "v"}}, "not allowed in a header name"),
    ({"url": "URL", "headers": {"Host": "evil.example"}}, "Host is set by the worker"),
    ({"url": "URL", "headers": {"X-A": 1}}, "must be a string"),
    ({"url": "URL", "headers": ["X-A: 1"]}, "payload.headers must be an object"),
    ({"url": "URL", "method": "TRACE"}, "payload.method must be one of"),
    ({"url": "URL", "method": "GET", "body": "x"}, "GET request cannot have a body"),
    ({"url": "URL", "timeout": 0}, "payload.timeout must be"),
    ({"url": "URL", "expect": [200, 700]}, "payload.expect[1] must be an HTTP status"),
    ({"url": "URL", "expect": 200}, "payload.expect must be a list"),
]


def test_bad_payloads_fail_at_once(rlsworker, db, hook, run_once):
    h = hook()
    ids = []
    for payload, _ in BAD_PAYLOADS:
        payload = {k: (h.url() if v == "URL" else v) for k, v in payload.items()}
        ids.append(add(db, payload))
    run_once(*ALLOW)
    assert h.requests == []
    for i, (payload, msg) in zip(ids, BAD_PAYLOADS):
        state, attempts, err = job(db, i)
        assert (state, attempts) == ("dead", 1), (payload, err)
        assert msg in err, (payload, err)


def test_invalid_allowlist_refuses_to_start(rlsworker, db, hook, tasks_dir):
    h = hook()
    i = add(db, {"url": h.url()})
    r = rlsworker.cli("run", "--once", "--tasks", str(tasks_dir), "--http-allow", "10.0.0.0/33",
                      env=db.env())
    assert r.returncode == 1 and '"10.0.0.0/33"' in r.stderr
    assert job(db, i) == ("queued", 0, None)
    assert h.requests == []


def test_operator_cancel_stops_a_delivery(rlsworker, db, hook, tasks_dir):
    h = hook(delay=8)
    i = add(db, {"url": h.url()})
    w = rlsworker.spawn("run", "--tasks", str(tasks_dir), *ALLOW, "--poll-interval", "50",
                        env=db.env())
    deadline = time.time() + 10
    while not h.requests and time.time() < deadline:
        time.sleep(0.05)
    assert h.requests, "the request never arrived"
    r = rlsworker.cli("jobs", "cancel", str(i), env=db.env())
    assert r.returncode == 0, r.stderr
    deadline = time.time() + 5
    while time.time() < deadline and (job(db, i) or ("",))[0] != "cancelled":
        time.sleep(0.05)
    assert w.stop() == 0
    state, attempts, err = job(db, i)
    assert (state, err) == ("cancelled", "cancelled before the response arrived")
