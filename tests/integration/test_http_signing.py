"""Signed outgoing webhooks (docs/http-task.md, "Signing requests"): the `http`
built-in signs requests to a host configured with `http_sign.<host>` the
Standard Webhooks way. A receiver on 127.0.0.1 records each request; the
signature is checked here with an independent implementation (Python's hmac
and base64), never with rlsworker's own code."""
import base64
import hashlib
import hmac
import json
import secrets
import time

import pytest

from test_http_task import ALLOW, add, hook, job  # noqa: F401  (hook is a fixture)

pytestmark = pytest.mark.integration

KEY = secrets.token_bytes(32)
SECRET = "whsec_" + base64.b64encode(KEY).decode()


def expected_signature(key, msg_id, timestamp, body):
    """Standard Webhooks v1: base64(HMAC-SHA256(key, "id.timestamp.body"))."""
    content = msg_id.encode() + b"." + timestamp.encode() + b"." + body
    return base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode()


def signature_ok(request, key=KEY):
    h = request["headers"]
    sigs = [s.split(",", 1)[1] for s in h["webhook-signature"].split(" ") if s.startswith("v1,")]
    want = expected_signature(key, h["webhook-id"], h["webhook-timestamp"], request["body"])
    return any(hmac.compare_digest(s, want) for s in sigs)


@pytest.fixture
def config(tmp_path):
    """Writes a config file of lines; returns its path."""
    def write(*lines):
        p = tmp_path / "rlsworker.conf"
        p.write_text("".join(line + "\n" for line in lines))
        return str(p)
    return write


@pytest.fixture
def run_signed(rlsworker, db, tasks_dir):
    """`run --once` with a config file; returns the finished process."""
    def run(conf, *flags, env=None, expect_rc=0):
        r = rlsworker.cli("run", "--once", "--config", conf, "--tasks", str(tasks_dir),
                          "--log-level", "debug", *ALLOW, *flags, env=env or db.env(),
                          timeout=60)
        assert r.returncode == expect_rc, r.stderr
        return r
    return run


def test_signed_request_verifies_with_python_hmac(db, hook, config, run_signed):
    h = hook()
    body = {"event": "todo.completed", "id": 42, "note": "caf\u00e9"}
    i = add(db, {"url": h.url("/hook"), "body": body})
    started = int(time.time())
    r = run_signed(config("http_sign.127.0.0.1 = " + SECRET))
    assert job(db, i) is None                       # delivered
    [req] = h.requests
    hd = req["headers"]
    assert hd["webhook-id"] == str(i)
    assert started - 1 <= int(hd["webhook-timestamp"]) <= int(time.time()) + 1
    assert hd["webhook-signature"].startswith("v1,")
    assert signature_ok(req)
    assert json.loads(req["body"]) == body
    # a different key does not verify: the check above can fail
    assert not signature_ok(req, key=secrets.token_bytes(32))
    # the secret (and its key bytes) reach neither the log nor the output
    for s in (SECRET, SECRET[6:], KEY.hex()):
        assert s not in r.stderr + r.stdout


def test_retries_keep_the_id_and_sign_afresh(db, hook, config, run_signed):
    h = hook(statuses=[503])
    i = add(db, {"url": h.url("/retry"), "method": "PUT", "body": "plain text body"})
    conf = config("http_sign.127.0.0.1 = " + SECRET)
    run_signed(conf, "--backoff-base", "300")
    state, attempts, err = job(db, i)
    assert (state, attempts) == ("queued", 1)
    assert SECRET not in err and SECRET[6:] not in err
    time.sleep(1.1)                                 # a later timestamp for the retry
    run_signed(conf, "--backoff-base", "300")
    assert job(db, i) is None
    first, second = h.requests
    assert first["headers"]["webhook-id"] == second["headers"]["webhook-id"] == str(i)
    assert int(second["headers"]["webhook-timestamp"]) > int(first["headers"]["webhook-timestamp"])
    assert signature_ok(first) and signature_ok(second)
    assert first["body"] == second["body"] == b"plain text body"


def test_get_without_body_and_secret_from_environment(db, hook, config, run_signed):
    h = hook()
    i = add(db, {"url": h.url("/ping"), "method": "GET"})
    run_signed(config("http_sign.127.0.0.1 = $HOOK_SIGNING_SECRET"),
               env=db.env(HOOK_SIGNING_SECRET=SECRET))
    assert job(db, i) is None
    [req] = h.requests
    assert req["body"] == b"" and signature_ok(req)


def test_raw_secret_is_used_as_bytes(db, hook, config, run_signed):
    h = hook()
    raw = "plain-shared-secret-0123456789"
    add(db, {"url": h.url("/raw"), "body": {"a": 1}})
    run_signed(config("http_sign.127.0.0.1 = " + raw))
    assert signature_ok(h.requests[0], key=raw.encode())


def test_only_the_configured_host_is_signed(db, hook, config, run_signed):
    h = hook()
    add(db, {"url": h.url("/unsigned"), "body": {"a": 1}})
    run_signed(config("http_sign.hooks.example.com = " + SECRET))
    [req] = h.requests
    assert not any(k.startswith("webhook-") for k in req["headers"])


def test_payload_cannot_set_the_signature_headers(db, hook, config, run_signed):
    h = hook()
    forged = add(db, {"url": h.url("/forged"), "body": {"a": 1},
                      "headers": {"Webhook-Signature": "v1,Zm9yZ2Vk"}})
    run_signed(config("http_sign.127.0.0.1 = " + SECRET))
    assert h.requests == []
    state, attempts, err = job(db, forged)
    assert state == "dead"
    assert err == ("payload.headers: webhook-signature is set by the worker when it signs "
                   "requests to 127.0.0.1 (http_sign)")


def test_bad_secret_refuses_to_start(rlsworker, db, config, tasks_dir):
    bad = "whsec_not*base64"
    r = rlsworker.cli("run", "--once", "--config", config("http_sign.127.0.0.1 = " + bad),
                      "--tasks", str(tasks_dir), env=db.env())
    assert r.returncode == 1
    assert "http_sign.127.0.0.1: the secret must be whsec_" in r.stderr
    assert "not*base64" not in r.stderr
    r = rlsworker.cli("run", "--once", "--config", config("http_sign.bad/host = " + SECRET),
                      "--tasks", str(tasks_dir), env=db.env())
    assert r.returncode == 1 and "is not a host name or address" in r.stderr
    assert SECRET[6:] not in r.stderr
