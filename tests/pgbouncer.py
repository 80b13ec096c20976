"""A real PgBouncer for the pooler tests (issue 12): transaction pooling on
127.0.0.1 in front of the test cluster, with a server pool smaller than the
number of clients, as Neon's -pooler endpoint is.

PgBouncer runs as the `postgres` OS user when the tests run as root (it
refuses root), in a temporary directory, and is stopped by stop() (the
fixture's finalizer), also when tests fail. Clients authenticate with SCRAM;
the auth_file holds the test roles' passwords in plain text, so PgBouncer
can log in to PostgreSQL with SCRAM too."""
import os
import shutil
import signal
import subprocess
import tempfile
import textwrap
import time
import urllib.parse

import psycopg

from helpers import TEST_PASSWORD, clean_env, free_port

PGBOUNCER = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
ROLES = ("neondb_owner", "authenticated_backend", "moderator_backend", "admin_backend")


class PgBouncer:
    def __init__(self, pg, pool_size=2, max_client_conn=400, pool_mode="transaction"):
        if not os.access(PGBOUNCER, os.X_OK):
            raise RuntimeError("pgbouncer not found at %s: run deploy/install-packages.sh "
                               "(Debian package pgbouncer, listed in deploy/packages.txt)"
                               % PGBOUNCER)
        self.pg = pg
        self.pool_size = pool_size
        self.base = tempfile.mkdtemp(prefix="rlsworker-pgbouncer-")
        self.ini = os.path.join(self.base, "pgbouncer.ini")
        self.logfile = os.path.join(self.base, "pgbouncer.log")
        self.pidfile = os.path.join(self.base, "pgbouncer.pid")
        self.port = free_port()
        self.proc = None
        self._as_root = os.geteuid() == 0
        users = "".join('"%s" "%s"\n' % (r, TEST_PASSWORD) for r in ROLES)
        with open(os.path.join(self.base, "userlist.txt"), "w") as f:
            f.write(users)
        with open(self.ini, "w") as f:
            f.write(textwrap.dedent("""\
                [databases]
                * = host=127.0.0.1 port=%d
                [pgbouncer]
                listen_addr = 127.0.0.1
                listen_port = %d
                unix_socket_dir =
                auth_type = scram-sha-256
                auth_file = %s
                pool_mode = %s
                default_pool_size = %d
                min_pool_size = 0
                reserve_pool_size = 0
                max_client_conn = %d
                ignore_startup_parameters = extra_float_digits
                logfile = %s
                pidfile = %s
                """) % (pg.port, self.port, os.path.join(self.base, "userlist.txt"),
                        pool_mode, pool_size, max_client_conn, self.logfile, self.pidfile))
        os.chmod(os.path.join(self.base, "userlist.txt"), 0o600)
        if self._as_root:
            for name in os.listdir(self.base):
                shutil.chown(os.path.join(self.base, name), "postgres", "postgres")
            shutil.chown(self.base, "postgres", "postgres")

    def start(self):
        cmd = [PGBOUNCER, self.ini]
        if self._as_root:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        self.proc = subprocess.Popen(cmd, env=clean_env(), cwd=self.base,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 15
        while time.time() < deadline:
            try:
                with psycopg.connect(self.url("neondb_owner", "postgres"),
                                     connect_timeout=2, prepare_threshold=None) as c:
                    c.execute("select 1")
                return self
            except psycopg.OperationalError:
                if self.proc.poll() is not None:
                    break
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("pgbouncer did not start:\n" + self.log_tail())

    def stop(self):
        """Stops PgBouncer (SIGINT: at once) and removes its directory. Idempotent."""
        if self.proc and self.proc.poll() is None:
            try:
                with open(self.pidfile) as f:
                    os.kill(int(f.read().strip()), signal.SIGINT)
            except (OSError, ValueError):
                self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        shutil.rmtree(self.base, ignore_errors=True)

    def log_tail(self, n=30):
        try:
            with open(self.logfile, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    def log(self):
        try:
            with open(self.logfile, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def url(self, role, db):
        return "postgresql://%s:%s@127.0.0.1:%d/%s" % (
            urllib.parse.quote(role, safe=""), urllib.parse.quote(TEST_PASSWORD, safe=""),
            self.port, db)

    def connect(self, role, db, autocommit=True):
        """A client connection through PgBouncer (no server-side prepared
        statements, which transaction pooling does not keep)."""
        return psycopg.connect(self.url(role, db), autocommit=autocommit,
                               prepare_threshold=None)


class PooledDatabase:
    """A test Database whose env() points every worker URL at PgBouncer;
    the test's own queries (sql, val, connect) still go direct."""

    def __init__(self, db, bouncer, direct=False):
        self._db = db
        self.bouncer = bouncer
        self.direct = direct

    def __getattr__(self, name):
        return getattr(self._db, name)

    def env(self, **extra):
        b, name = self.bouncer, self._db.name
        pooled = {
            "DATABASE_URL": b.url("neondb_owner", name),
            "DATABASE_AUTHENTICATED_URL": b.url("authenticated_backend", name),
            "DATABASE_MODERATOR_URL": b.url("moderator_backend", name),
            "DATABASE_ADMIN_BACKEND_URL": b.url("admin_backend", name),
        }
        if self.direct:
            pooled["DATABASE_DIRECT_URL"] = self._db.admin_url
        pooled.update(extra)
        env = self._db.env(**pooled)
        if not self.direct and "DATABASE_DIRECT_URL" not in extra:
            env.pop("DATABASE_DIRECT_URL", None)
        return env
