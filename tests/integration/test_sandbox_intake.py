"""Issue 9, hole 5: the HTTP intake cannot be held open without authenticating.

Real slow clients (python sockets trickling bytes on loopback) against a real
worker: a trickling client is cut off at `intake_request_timeout`, whether it
trickles headers or a body; many trickling clients from one address hit
`intake_conns_per_address` and cannot starve `/healthz`; `/healthz`, `/readyz`
and `/metrics` keep answering 200 through an attack that reconnects.

The attackers bind to 127.0.0.2 (still loopback) so the probes from 127.0.0.1
are another client address, as a load balancer's health check would be.

Run: /usr/bin/python3 -m pytest -q tests/integration/test_sandbox_intake.py
"""
import http.client
import socket
import threading
import time

import pytest

from helpers import free_port, wait_until, write_task

pytestmark = [pytest.mark.integration, pytest.mark.security]

ATTACKER = "127.0.0.2"


def get(port, path, timeout=3):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        resp.read()
        return resp.status
    except OSError as e:
        return "error: %s" % e
    finally:
        conn.close()


def start_worker(rlsworker, db, tasks_dir, *extra):
    write_task(tasks_dir, "noop_user", """
        -- task: noop_user
        -- run_as: user
        -- enqueue: user
        select 1;
    """)
    port = free_port()
    w = rlsworker.spawn("run", "--listen", "127.0.0.1:%d" % port, "--tasks", str(tasks_dir),
                        *extra, env=db.env(JWT_SECRET="sandbox-intake-secret-" + "x" * 32))
    w.wait_for(r"http intake listening on")
    wait_until(lambda: get(port, "/readyz") == 200, what="readyz")
    return w, port


def trickler(port, source="127.0.0.1", body=False):
    """A connected socket that has sent the start of a request."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(5)
    s.bind((source, 0))
    s.connect(("127.0.0.1", port))
    if body:
        s.sendall(b"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 100000\r\n\r\n{")
    else:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    return s


def drip(s, body):
    """Sends one more byte of the request; False once the server has hung up."""
    try:
        s.sendall(b" " if body else b"X-Slow: 1\r\n")
        s.setblocking(False)
        try:
            if s.recv(4096) == b"":
                return False
        except BlockingIOError:
            pass
        finally:
            s.setblocking(True)
        return True
    except OSError:
        return False


def seconds_until_cut(s, body, limit):
    start = time.monotonic()
    while time.monotonic() - start < limit:
        if not drip(s, body):
            return time.monotonic() - start
        time.sleep(0.3)
    return None


@pytest.mark.parametrize("part", ["headers", "body"])
def test_trickling_client_is_cut_off_at_the_request_deadline(rlsworker, db, tasks_dir, part):
    # the idle timeout (30 s) never fires for a client that sends a byte every 0.3 s
    w, port = start_worker(rlsworker, db, tasks_dir, "--intake-request-timeout", "2",
                           "--intake-conn-timeout", "30")
    s = trickler(port, body=(part == "body"))
    try:
        took = seconds_until_cut(s, part == "body", limit=12)
    finally:
        s.close()
    assert took is not None, "a client trickling its %s stayed connected for 12 s" % part
    assert 1.5 <= took <= 6, took
    # an honest client on a kept-alive connection is unaffected
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    for _ in range(3):
        conn.request("GET", "/healthz")
        r = conn.getresponse()
        r.read()
        assert r.status == 200
    conn.close()


def test_many_trickling_clients_from_one_address_cannot_starve_healthz(rlsworker, db, tasks_dir):
    # intake_max_inflight 1 gives a connection cap of 66; the deadline is long
    # here so only the per-address cap stands between the attacker and health
    w, port = start_worker(rlsworker, db, tasks_dir, "--intake-max-inflight", "1",
                           "--intake-request-timeout", "60",
                           "--intake-conns-per-address", "8")
    socks, refused = [], 0
    try:
        for _ in range(70):
            try:
                socks.append(trickler(port, ATTACKER))
            except OSError:
                refused += 1
        time.sleep(0.5)
        alive = [s for s in socks if drip(s, False)]
        assert len(alive) <= 8, "%d connections from one address stayed open" % len(alive)
        assert len(alive) >= 6, "the per-address cap should still admit a few clients"
        # another address still gets answers
        assert get(port, "/healthz") == 200
        assert get(port, "/readyz") == 200
        assert get(port, "/metrics") == 200
    finally:
        for s in socks:
            s.close()


def test_health_stays_200_during_a_reconnecting_slowloris(rlsworker, db, tasks_dir):
    w, port = start_worker(rlsworker, db, tasks_dir, "--intake-max-inflight", "1",
                           "--intake-request-timeout", "2")
    stop = threading.Event()
    opened = [0]

    def attack():
        socks = []
        while not stop.is_set():
            while len(socks) < 80 and not stop.is_set():
                try:
                    socks.append(trickler(port, ATTACKER))
                    opened[0] += 1
                except OSError:
                    break
            socks = [s for s in socks if drip(s, False) or s.close()]
            time.sleep(0.2)
        for s in socks:
            s.close()

    t = threading.Thread(target=attack)
    t.start()
    results = []
    try:
        time.sleep(1)
        end = time.monotonic() + 6
        while time.monotonic() < end:
            for path in ("/healthz", "/readyz", "/metrics"):
                results.append((path, get(port, path, timeout=2)))
            time.sleep(0.2)
    finally:
        stop.set()
        t.join()
    bad = [r for r in results if r[1] != 200]
    assert not bad, "health probes failed during the attack: %r" % bad[:5]
    # the attack really ran: it kept reopening connections the deadline cut
    assert opened[0] > 80, opened[0]
