"""Test harness for rlsworker: a throw-away PostgreSQL cluster, per-test
databases with the roles and the todos demo of deploy/, and the rlsworker
binary. Used by tests/conftest.py; test files may import it directly
(`from helpers import write_task`).

Only Debian's python3-pytest and python3-psycopg are needed.
"""
import atexit
import glob
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import textwrap
import time
import urllib.parse

import psycopg
import psycopg.sql

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROLES_SQL = os.path.join(REPO, "deploy", "roles.sql")
SCHEMA_SQL = os.path.join(REPO, "deploy", "demo", "schema.sql")

# Every test role logs in with this password (scram over 127.0.0.1).
TEST_PASSWORD = "rlsworker-test-pw"
ROLE_PASSWORD_VARS = {
    "owner_password": "neondb_owner",
    "authenticated_password": "authenticated_backend",
    "moderator_password": "moderator_backend",
    "admin_backend_password": "admin_backend",
}
SUPERUSER = "postgres"


def find_pg_bindir():
    """RLSWORKER_PG_BINDIR, else the newest /usr/lib/postgresql/*/bin."""
    env = os.environ.get("RLSWORKER_PG_BINDIR")
    if env:
        return env
    dirs = [d for d in glob.glob("/usr/lib/postgresql/*/bin")
            if os.path.exists(os.path.join(d, "initdb"))]
    if not dirs:
        raise RuntimeError("no PostgreSQL server found in /usr/lib/postgresql/*/bin: "
                           "install postgresql-15 or set RLSWORKER_PG_BINDIR")
    dirs.sort(key=lambda d: int(re.sub(r"\D", "", d.split("/")[-2]) or 0))
    return dirs[-1]


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clean_env(extra=None):
    """os.environ without PG* variables that could redirect psql/libpq."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    if extra:
        env.update(extra)
    return env


class PgCluster:
    """A PostgreSQL cluster in a temporary directory, owned by the `postgres`
    OS user when we run as root (PostgreSQL refuses to run as root), else by
    the current user. TCP on 127.0.0.1 only (scram passwords); the Unix
    socket lives in the temporary directory (trust, superuser only used by
    the harness)."""

    def __init__(self, bindir=None):
        self.bindir = bindir or find_pg_bindir()
        self.host = "127.0.0.1"
        self.port = None
        self.base = tempfile.mkdtemp(prefix="rlsworker-pg-")
        self.datadir = os.path.join(self.base, "data")
        self.sockdir = self.base
        self.logfile = os.path.join(self.base, "postgresql.log")
        self.running = False
        self._removed = False
        self._as_root = os.geteuid() == 0
        if self._as_root:
            shutil.chown(self.base, "postgres", "postgres")

    # -- process control -------------------------------------------------

    def _pg_cmd(self, prog, *args, check=True, timeout=120):
        cmd = [os.path.join(self.bindir, prog), *args]
        if self._as_root:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        r = subprocess.run(cmd, env=clean_env({"LC_ALL": "C.UTF-8"}), cwd=self.base,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, timeout=timeout)
        if check and r.returncode != 0:
            raise RuntimeError("%s failed (exit %d):\n%s%s" % (
                " ".join(cmd), r.returncode, r.stdout, self.log_tail()))
        return r

    def log_tail(self, n=30):
        try:
            with open(self.logfile, errors="replace") as f:
                lines = f.readlines()[-n:]
            return "--- %s (tail) ---\n%s" % (self.logfile, "".join(lines))
        except OSError:
            return ""

    def init(self):
        self._pg_cmd("initdb", "-D", self.datadir, "-U", SUPERUSER, "-E", "UTF8",
                     "--locale=C.UTF-8", "--no-sync",
                     "--auth-local=trust", "--auth-host=scram-sha-256")
        self.port = free_port()
        conf = textwrap.dedent("""
            # rlsworker test harness
            listen_addresses = '127.0.0.1'
            port = %d
            unix_socket_directories = '%s'
            max_connections = 300
            fsync = off
            synchronous_commit = off
            full_page_writes = off
            password_encryption = 'scram-sha-256'
            log_line_prefix = '%%m [%%p] %%q%%u@%%d '
            log_min_messages = warning
        """ % (self.port, self.sockdir))
        conf_path = os.path.join(self.datadir, "postgresql.conf")
        with open(conf_path, "a") as f:
            f.write(conf)

    def start(self):
        if self.running:
            return
        self._pg_cmd("pg_ctl", "-D", self.datadir, "-l", self.logfile, "-w", "-t", "60", "start")
        self.running = True

    def stop(self, mode="fast"):
        if not self.running:
            return
        self._pg_cmd("pg_ctl", "-D", self.datadir, "-m", mode, "-w", "-t", "60", "stop",
                     check=False)
        self.running = False

    def restart(self, mode="fast"):
        self._pg_cmd("pg_ctl", "-D", self.datadir, "-l", self.logfile, "-m", mode,
                     "-w", "-t", "60", "restart")
        self.running = True

    def destroy(self):
        """Stops the server (immediate) and removes the directory. Idempotent."""
        if self._removed:
            return
        try:
            if os.path.exists(os.path.join(self.datadir, "postmaster.pid")):
                self.running = True
                self.stop(mode="immediate")
        finally:
            shutil.rmtree(self.base, ignore_errors=True)
            self._removed = True

    # -- connections -----------------------------------------------------

    def superuser_conninfo(self, db="postgres"):
        """libpq key=value string: the superuser over the Unix socket."""
        return "host=%s port=%d user=%s dbname=%s" % (self.sockdir, self.port, SUPERUSER, db)

    def superuser_url(self, db="postgres"):
        return "postgresql://%s@/%s?host=%s&port=%d" % (
            SUPERUSER, db, urllib.parse.quote(self.sockdir, safe=""), self.port)

    def url(self, role, db="postgres", password=TEST_PASSWORD):
        """postgresql:// URL for `role` over 127.0.0.1 with the test password."""
        return "postgresql://%s:%s@%s:%d/%s" % (
            urllib.parse.quote(role, safe=""), urllib.parse.quote(password, safe=""),
            self.host, self.port, db)

    def psql(self, conninfo, *args, input=None, check=True, timeout=120):
        """Runs psql (ON_ERROR_STOP) as the current OS user."""
        cmd = [os.path.join(self.bindir, "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1",
               "-d", conninfo, *args]
        r = subprocess.run(cmd, env=clean_env(), input=input, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, timeout=timeout)
        if check and r.returncode != 0:
            raise RuntimeError("psql %s failed (exit %d):\n%s%s" % (
                " ".join(args), r.returncode, r.stdout, r.stderr))
        return r

    def su_exec(self, query, db="postgres"):
        with psycopg.connect(self.superuser_conninfo(db), autocommit=True) as conn:
            conn.execute(query)

    def apply_roles(self):
        pw = []
        for var in ROLE_PASSWORD_VARS:
            pw += ["-v", "%s=%s" % (var, TEST_PASSWORD)]
        self.psql(self.superuser_conninfo("postgres"), *pw, "-f", ROLES_SQL)

    def create_role(self, name, attributes="login nobypassrls nosuperuser"):
        """Creates (or alters) a role with the test password."""
        with psycopg.connect(self.superuser_conninfo(), autocommit=True) as conn:
            exists = conn.execute("select 1 from pg_roles where rolname = %s", (name,)).fetchone()
            verb = "alter" if exists else "create"
            conn.execute("%s role %s with %s password '%s'" % (
                verb, psycopg.sql.Identifier(name).as_string(conn), attributes, TEST_PASSWORD))


def wait_until(pred, timeout=15, what="condition", step=0.05):
    """Calls pred until it returns something true, and returns that; fails
    the test after timeout seconds, naming what it waited for."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(step)
    raise AssertionError("timed out after %ss waiting for %s" % (timeout, what))


def start_cluster():
    """Creates, starts and prepares a cluster; removed at exit in any case."""
    pg = PgCluster()
    atexit.register(pg.destroy)
    try:
        pg.init()
        pg.start()
        pg.apply_roles()
    except Exception:
        pg.destroy()
        raise
    return pg


def db_name_for(test_name):
    base = re.sub(r"[^a-z0-9_]+", "_", test_name.lower()).strip("_")[:40]
    return "t_%s_%s" % (base or "db", secrets.token_hex(3))


class Database:
    """One database of the test cluster, owned by neondb_owner."""

    ROLES = ("neondb_owner", "authenticated_backend", "moderator_backend", "admin_backend")

    def __init__(self, pg, name):
        self.pg = pg
        self.name = name
        self.admin_url = pg.url("neondb_owner", name)
        self.auth_url = pg.url("authenticated_backend", name)
        self.moderator_url = pg.url("moderator_backend", name)
        self.admin_backend_url = pg.url("admin_backend", name)
        self.su_url = pg.superuser_url(name)

    def create(self, schema=True):
        self.pg.su_exec('create database "%s" owner neondb_owner' % self.name)
        if schema:
            self.pg.psql(self.admin_url, "-f", SCHEMA_SQL)

    def drop(self):
        if not self.pg.running:
            self.pg.start()
        self.pg.su_exec('drop database if exists "%s" with (force)' % self.name)

    def env(self, **extra):
        """os.environ plus the four URLs (and any extra KEY=value)."""
        env = dict(os.environ)
        env.update({
            "DATABASE_URL": self.admin_url,
            "DATABASE_AUTHENTICATED_URL": self.auth_url,
            "DATABASE_MODERATOR_URL": self.moderator_url,
            "DATABASE_ADMIN_BACKEND_URL": self.admin_backend_url,
        })
        env.update({k: str(v) for k, v in extra.items()})
        return env

    def conninfo(self, role="neondb_owner"):
        if role in ("postgres", "superuser"):
            return self.pg.superuser_conninfo(self.name)
        return self.pg.url(role, self.name)

    def connect(self, role="neondb_owner", autocommit=False):
        """A new psycopg connection as `role` (caller closes it)."""
        return psycopg.connect(self.conninfo(role), autocommit=autocommit)

    def sql(self, query, params=None, role="neondb_owner", claims=None):
        """Runs one statement in its own connection and transaction and
        returns its rows (a list of tuples; [] when it returns none). With
        `claims` (dict or JSON text), request.jwt.claims is set
        transaction-locally first, as the worker does."""
        with self.connect(role) as conn:
            with conn.transaction():
                if claims is not None:
                    text = claims if isinstance(claims, str) else json.dumps(claims)
                    conn.execute("select set_config('request.jwt.claims', %s, true)", (text,))
                cur = conn.execute(query, params)
                rows = cur.fetchall() if cur.description is not None else []
            return rows

    def one(self, query, params=None, role="neondb_owner", claims=None):
        """The single row of a query (AssertionError unless exactly one)."""
        rows = self.sql(query, params, role=role, claims=claims)
        assert len(rows) == 1, "expected one row, got %d: %r" % (len(rows), rows[:5])
        return rows[0]

    def val(self, query, params=None, role="neondb_owner", claims=None):
        """The first column of the single row of a query."""
        return self.one(query, params, role=role, claims=claims)[0]


class Spawned(subprocess.Popen):
    """A long-running rlsworker; stdout and stderr go to files."""

    def __init__(self, cmd, out_path, err_path, **kwargs):
        self.stdout_path = out_path
        self.stderr_path = err_path
        self._out = open(out_path, "w")
        self._err = open(err_path, "w")
        super().__init__(cmd, stdout=self._out, stderr=self._err, text=True, **kwargs)

    def read_stdout(self):
        with open(self.stdout_path, errors="replace") as f:
            return f.read()

    def read_stderr(self):
        with open(self.stderr_path, errors="replace") as f:
            return f.read()

    def wait_for(self, pattern, timeout=20, stream="stderr"):
        """Waits until `pattern` (regex) appears in stderr (or stdout);
        returns the match or raises AssertionError with the output."""
        deadline = time.monotonic() + timeout
        read = self.read_stderr if stream == "stderr" else self.read_stdout
        while time.monotonic() < deadline:
            m = re.search(pattern, read())
            if m:
                return m
            if self.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError("no %r in %s of %s (exit %r):\n%s" % (
            pattern, stream, self.args, self.poll(), read()[-4000:]))

    def stop(self, sig=signal.SIGTERM, timeout=30):
        """Sends `sig`, waits, returns the exit code (kills after timeout)."""
        if self.poll() is None:
            self.send_signal(sig)
            try:
                self.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                self.wait()
        self._out.close()
        self._err.close()
        return self.returncode

    def stop_clean(self, sig=signal.SIGTERM, timeout=30):
        """stop(), and asserts the exit code is 0, showing the end of stderr
        when it is not."""
        code = self.stop(sig, timeout)
        assert code == 0, "exit %r; stderr ends:\n%s" % (code, self.read_stderr()[-3000:])


class Worker:
    """The rlsworker binary: `cli` for commands that finish, `spawn` for
    workers that keep running (killed by the harness after the test)."""

    def __init__(self, path, logdir):
        self.path = path
        self.logdir = logdir
        self._spawned = []
        self._n = 0

    def exists(self):
        return os.access(self.path, os.X_OK)

    def cli(self, *args, env=None, timeout=60, input=None, cwd=None):
        return subprocess.run([self.path, *map(str, args)], env=env, input=input, cwd=cwd,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, timeout=timeout)

    def spawn(self, *args, env=None, cwd=None, **kwargs):
        self._n += 1
        out = os.path.join(self.logdir, "worker-%d.out" % self._n)
        err = os.path.join(self.logdir, "worker-%d.err" % self._n)
        p = Spawned([self.path, *map(str, args)], out, err, env=env, cwd=cwd, **kwargs)
        self._spawned.append(p)
        return p

    def reap(self):
        """Kills every spawned process still running."""
        for p in self._spawned:
            if p.poll() is None:
                p.kill()
                p.wait()
            p.stop()
        self._spawned = []


def write_task(dir, name, text):
    """Writes task file `dir/name` (.sql added when missing) from a
    triple-quoted string (dedented); returns its path."""
    if not name.endswith(".sql"):
        name += ".sql"
    path = os.path.join(str(dir), name)
    with open(path, "w") as f:
        f.write(textwrap.dedent(text).lstrip("\n"))
    return path


def system_task(dir, name, body):
    """Writes task `name`, run_as system, scope global, whose SQL is `body`."""
    return write_task(dir, name, "-- task: %s\n-- run_as: system\n-- scope: global\n%s\n"
                      % (name, body))
