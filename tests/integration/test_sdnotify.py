"""systemd notify protocol: `rlsworker run` with a NOTIFY_SOCKET of the
test's own (an AF_UNIX datagram socket, by path and abstract), checking
READY=1, STATUS=, WATCHDOG=1 pings from the loop, and STOPPING=1.

That the pings come from the loop itself is shown by blocking the loop while
the process keeps running: SIGHUP makes the loop re-read the crontab, and the
test has turned that file into a FIFO nobody writes to, so the loop waits in
open() until the test writes. (SIGSTOP would prove nothing: a stopped process
sends nothing, from whatever thread.)"""
import os
import signal
import socket
import tempfile
import threading
import time

import pytest

from helpers import write_task

pytestmark = pytest.mark.integration

WATCHDOG_USEC = 400000          # pings every 0.2 s
PING_S = WATCHDOG_USEC / 2e6


class NotifySocket:
    """Collects (monotonic time, message) from a datagram socket."""

    def __init__(self, abstract=False):
        self.dir = tempfile.mkdtemp(prefix="sdn")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if abstract:
            name = "rlsworker-test-%d-%d" % (os.getpid(), time.monotonic_ns())
            self.sock.bind("\0" + name)
            self.env_value = "@" + name
        else:
            self.env_value = os.path.join(self.dir, "notify")
            self.sock.bind(self.env_value)
        self.sock.settimeout(0.1)
        self.messages = []
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop:
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            self.messages.append((time.monotonic(), data.decode()))

    def lines(self, since=0.0, until=float("inf")):
        """Every KEY=value line received in [since, until)."""
        return [line for t, m in list(self.messages) if since <= t < until
                for line in m.splitlines()]

    def wait_for(self, prefix, timeout=20, since=0.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.lines(since):
                if line.startswith(prefix):
                    return line
            time.sleep(0.02)
        raise AssertionError("no %r from the worker within %s s; got %r"
                             % (prefix, timeout, self.lines()[-20:]))

    def close(self):
        self._stop = True
        self._thread.join()
        self.sock.close()
        if os.path.exists(os.path.join(self.dir, "notify")):
            os.unlink(os.path.join(self.dir, "notify"))
        for f in os.listdir(self.dir):
            os.unlink(os.path.join(self.dir, f))
        os.rmdir(self.dir)


@pytest.fixture
def notify():
    n = NotifySocket()
    yield n
    n.close()


def slow_task(tasks_dir):
    write_task(tasks_dir, "slow", """
        -- task: slow
        -- run_as: system
        -- scope: global
        select pg_sleep(2);
    """)


def pings(n, since, until):
    return sum(1 for line in n.lines(since, until) if line == "WATCHDOG=1")


def test_ready_status_watchdog_and_stopping(rlsworker, db, tasks_dir, notify):
    slow_task(tasks_dir)
    crontab = os.path.join(notify.dir, "crontab")
    with open(crontab, "w") as f:
        f.write("# nothing scheduled\n")
    w = rlsworker.spawn("run", "--tasks", str(tasks_dir), "--crontab", crontab,
                        "--poll-interval", "100",
                        env=db.env(NOTIFY_SOCKET=notify.env_value, WATCHDOG_USEC=WATCHDOG_USEC))
    notify.wait_for("READY=1")
    ready = [m for _, m in notify.messages if "READY=1" in m][0]
    assert "STATUS=jobs in flight: 0 (running: 0)" in ready, ready
    # the unit starts only when the worker is on the queue: it is registered
    assert db.val("select count(*) from rlsworker.workers") == 1

    # periodic pings, at about the period asked for
    t0 = time.monotonic()
    time.sleep(2.0)
    n = pings(notify, t0, time.monotonic())
    assert 2.0 / PING_S * 0.6 <= n <= 2.0 / PING_S * 1.5, n

    # STATUS follows the jobs in flight (on the timer, not per job)
    db.sql("select rlsworker.add_job('slow')")
    notify.wait_for("STATUS=jobs in flight: 1 (running: 1)", timeout=10)
    notify.wait_for("STATUS=jobs in flight: 0 (running: 0); completed: 1", timeout=10)

    # block the loop (not the process): the pings stop, then resume
    os.unlink(crontab)
    os.mkfifo(crontab)
    w.send_signal(signal.SIGHUP)
    blocked = time.monotonic()
    time.sleep(2.0)
    unblocked = time.monotonic()
    assert w.poll() is None
    assert pings(notify, blocked + 2 * PING_S, unblocked) == 0, \
        "WATCHDOG=1 arrived while the loop was blocked: not sent from the loop"
    with open(crontab, "w") as f:      # lets the loop's open() and read() return
        f.write("# still nothing\n")
    time.sleep(1.0)
    assert pings(notify, unblocked, time.monotonic()) >= 2

    since = time.monotonic()
    w.send_signal(signal.SIGTERM)
    assert w.wait(20) == 0
    notify.wait_for("STOPPING=1", timeout=1, since=since)
    assert w.read_stderr().count("systemd watchdog on") == 1


def test_abstract_socket_and_watchdog_pid_of_another_process(rlsworker, db, tasks_dir):
    n = NotifySocket(abstract=True)
    try:
        w = rlsworker.spawn("run", "--tasks", str(tasks_dir),
                            env=db.env(NOTIFY_SOCKET=n.env_value, WATCHDOG_USEC=WATCHDOG_USEC,
                                       WATCHDOG_PID=1))
        n.wait_for("READY=1")
        time.sleep(1.0)
        # the watchdog belongs to pid 1, not to this worker: no pings
        assert "WATCHDOG=1" not in n.lines()
        w.send_signal(signal.SIGTERM)
        assert w.wait(20) == 0
        n.wait_for("STOPPING=1", timeout=1)
    finally:
        n.close()


def test_without_notify_socket_nothing_changes(rlsworker, db, tasks_dir):
    env = db.env()
    env.pop("NOTIFY_SOCKET", None)
    w = rlsworker.spawn("run", "--tasks", str(tasks_dir), env=env)
    w.wait_for("worker .* started")
    w.send_signal(signal.SIGTERM)
    assert w.wait(20) == 0
    assert "NOTIFY_SOCKET" not in w.read_stderr()
