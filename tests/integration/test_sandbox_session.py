"""Nothing of one job's session reaches the next job on the same connection
(issue 9, hole 3), and a restricted role that could make itself admin is
refused (issue 9, hole 4).

Session state: on a pool of ONE connection, a job of alice leaves one kind
of session state behind (through DO ... EXECUTE or a plain session-level
function, which the task-file checker cannot see), then a job of bob runs on
the very same backend (same pid) and records what its session looks like
into a table the test reads as admin. bob's job must see none of alice's
state, and its own writes must land in the real, RLS-guarded table.
"""
import json
import secrets

import psycopg
import pytest

from helpers import write_task

pytestmark = pytest.mark.security

RUN = ("--concurrency", "1", "--pool-size", "1")

# What bob's job records about its session. `temp_rels` counts relations in
# this backend's temporary schema (0 when it has none).
RECORD_SQL = """
insert into seen (who, sub, role, temp_rels, search_path, prepared, advisory, listening,
                  claims, pid)
values (:who, auth.user_id(), current_user::text,
        (select count(*) from pg_catalog.pg_class
          where relnamespace = pg_catalog.pg_my_temp_schema()),
        current_setting('search_path'),
        (select count(*) from pg_catalog.pg_prepared_statements),
        (select count(*) from pg_catalog.pg_locks
          where locktype = 'advisory' and pid = pg_backend_pid()),
        (select count(*) from pg_catalog.pg_listening_channels()),
        current_setting('request.jwt.claims', true), pg_backend_pid());
"""

# Each kind of leftover: the statements alice's job runs after recording.
LEFTOVERS = {
    "temp_table_shadowing_todos": """
        do $$ begin
            execute 'create temp table todos (id bigint, user_id text, task text,'
                    ' is_complete boolean default false)';
            execute 'insert into todos (id, user_id, task) values (1, ''alice'', ''secret'')';
        end $$;
    """,
    "session_search_path": """
        do $$ begin execute 'set search_path = auth, public'; end $$;
    """,
    "prepared_statement": """
        do $$ begin execute 'prepare leftover as select 1'; end $$;
    """,
    "advisory_lock": """
        select pg_advisory_lock(4242);
    """,
    "listen": """
        do $$ begin execute 'listen leftover_channel'; end $$;
    """,
    "set_role": """
        do $$ begin execute 'set role OTHER_ROLE'; end $$;
    """,
}


@pytest.fixture
def other_role(pg, db):
    """A plain role authenticated_backend is a member of (so it may SET ROLE
    to it), with what bob's job needs to record what it sees."""
    name = "rw_other_%s" % secrets.token_hex(3)
    pg.su_exec("create role %s nologin nosuperuser nobypassrls; "
               "grant %s to authenticated_backend, neondb_owner" % (name, name))
    db.sql("grant usage on schema auth to %s; grant select, insert on todos to %s"
           % (name, name), role="postgres")
    yield name
    pg.su_exec("drop owned by %s cascade" % name, db.name)
    pg.su_exec("drop role if exists %s" % name)


def seen_table(db):
    db.sql("""
        create table seen (id serial primary key, who text, sub text, role text,
                           temp_rels bigint, search_path text, prepared bigint,
                           advisory bigint, listening bigint, claims text, pid int);
        alter table seen enable row level security;
        create policy seen_insert on seen for insert with check (true);
        grant insert on seen to public;
        grant usage on sequence seen_id_seq to public;
    """)


def write_tasks(tasks_dir, kind, other, run_as="user"):
    header = "-- run_as: %s\n" % run_as
    if run_as == "system":
        header += "-- scope: global\n"
    write_task(tasks_dir, "leave", "-- task: leave\n" + header + "-- max_attempts: 1\n"
               + RECORD_SQL + LEFTOVERS[kind].replace("OTHER_ROLE", other))
    write_task(tasks_dir, "record", "-- task: record\n" + header + "-- max_attempts: 1\n"
               + RECORD_SQL + "insert into todos (user_id, task) select "
               "coalesce(auth.user_id(), 'system'), 'bob saw ' || count(*) from todos;\n")


def run_pair(rlsworker, db, tasks_dir, kind, other, run_as="user"):
    """alice's job leaves `kind` behind, then bob's job records its session."""
    write_tasks(tasks_dir, kind, other, run_as)
    if run_as == "user":
        db.sql("select rlsworker.add_job('leave', '{\"who\": \"alice\"}', "
               "claims => '{\"sub\":\"alice\"}', priority => 1)")
        db.sql("select rlsworker.add_job('record', '{\"who\": \"bob\"}', "
               "claims => '{\"sub\":\"bob\"}', priority => 2)")
    else:
        db.sql("select rlsworker.add_job('leave', '{\"who\": \"alice\"}', "
               "priority => 1)")
        db.sql("select rlsworker.add_job('record', '{\"who\": \"bob\"}', priority => 2)")
    r = rlsworker.cli("run", "--once", "--tasks", str(tasks_dir), *RUN, env=db.env(),
                      timeout=120)
    assert r.returncode == 0, r.stderr
    jobs = db.sql("select task, state, last_error from rlsworker.jobs")
    assert jobs == [], jobs                     # both completed (and were deleted)
    cols = "who, sub, role, temp_rels, search_path, prepared, advisory, listening, claims, pid"
    rows = db.sql("select %s from seen order by id" % cols)
    assert [r[0] for r in rows] == ["alice", "bob"], rows
    names = [c.strip() for c in cols.split(",")]
    return dict(zip(names, rows[0])), dict(zip(names, rows[1]))


def assert_clean(alice, bob, login_role):
    # the same backend served both jobs: the session was reset, not replaced
    assert bob["pid"] == alice["pid"], (alice, bob)
    assert bob["role"] == login_role, bob
    assert bob["temp_rels"] == 0, bob
    assert bob["search_path"] == '"$user", public', bob
    assert bob["prepared"] == 0, bob
    assert bob["advisory"] == 0, bob
    assert bob["listening"] == 0, bob


@pytest.mark.parametrize("kind", sorted(LEFTOVERS))
def test_user_session_state_never_reaches_the_next_job(rlsworker, db, tasks_dir, other_role,
                                                       kind):
    seen_table(db)
    db.sql("insert into todos (user_id, task) values ('alice', 'a1')")
    alice, bob = run_pair(rlsworker, db, tasks_dir, kind, other_role)
    assert alice["sub"] == "alice"
    assert_clean(alice, bob, "authenticated_backend")
    assert bob["sub"] == "bob" and '"bob"' in bob["claims"], bob
    # bob's write went to the real table, under RLS: he saw none of alice's rows
    assert db.sql("select user_id, task from todos where task like 'bob%%'") == \
        [("bob", "bob saw 0")]
    assert db.val("select count(*) from todos where user_id = 'alice'") == 1


@pytest.mark.parametrize("kind", ["temp_table_shadowing_todos", "session_search_path",
                                  "advisory_lock", "set_role"])
def test_system_session_state_never_reaches_the_next_job(rlsworker, db, tasks_dir,
                                                         other_role, kind):
    seen_table(db)
    alice, bob = run_pair(rlsworker, db, tasks_dir, kind, other_role, run_as="system")
    assert_clean(alice, bob, "neondb_owner")
    assert db.sql("select user_id, task from todos") == [("system", "bob saw 0")]


def test_failed_job_session_is_reset_too(rlsworker, db, tasks_dir):
    """A job that leaves state and then fails: the rollback path resets."""
    seen_table(db)
    write_task(tasks_dir, "leave", """
        -- task: leave
        -- run_as: user
        -- max_attempts: 1
        select pg_advisory_lock(4242);
        do $$ begin execute 'prepare leftover as select 1'; end $$;
        select 1 / 0;
    """)
    write_task(tasks_dir, "record", "-- task: record\n-- run_as: user\n" + RECORD_SQL)
    db.sql("select rlsworker.add_job('leave', claims => '{\"sub\":\"alice\"}', priority => 1)")
    db.sql("select rlsworker.add_job('record', '{\"who\": \"bob\"}', "
           "claims => '{\"sub\":\"bob\"}', priority => 2)")
    r = rlsworker.cli("run", "--once", "--tasks", str(tasks_dir), *RUN, env=db.env(),
                      timeout=120)
    assert r.returncode == 0, r.stderr
    assert db.val("select state from rlsworker.jobs where task = 'leave'") == "dead"
    prepared, advisory = db.one("select prepared, advisory from seen where who = 'bob'")
    assert (prepared, advisory) == (0, 0)


# ---- hole 4: a restricted role that can make itself admin ----------------

class Roles:
    """Roles one test creates (cluster-wide, random suffix), dropped after."""

    def __init__(self, pg, db):
        self.pg, self.db, self.names = pg, db, []
        self.env = db.env()
        self.env.pop("DATABASE_MODERATOR_URL", None)
        self.env.pop("DATABASE_ADMIN_BACKEND_URL", None)

    def nologin(self, prefix, attributes=""):
        name = "%s_%s" % (prefix, secrets.token_hex(3))
        self.pg.su_exec("create role %s nologin %s" % (name, attributes))
        self.names.append(name)
        return name

    def restricted(self, prefix, attributes="nosuperuser nobypassrls"):
        """A LOGIN role with authenticated_backend's grants, made the
        DATABASE_AUTHENTICATED_URL role."""
        name = "%s_%s" % (prefix, secrets.token_hex(3))
        self.pg.create_role(name, "login " + attributes)
        self.names.append(name)
        self.pg.su_exec("grant usage on schema public, auth to %s; grant select, insert, "
                        "update, delete on todos to %s" % (name, name), self.db.name)
        self.env["DATABASE_AUTHENTICATED_URL"] = self.pg.url(name, self.db.name)
        return name

    def cleanup(self):
        for name in reversed(self.names):
            self.pg.su_exec("drop owned by %s cascade" % name, self.db.name)
        for name in reversed(self.names):
            self.pg.su_exec("drop role if exists %s" % name)


@pytest.fixture
def roles(pg, db):
    r = Roles(pg, db)
    yield r
    r.cleanup()


def doctor_json(rlsworker, env):
    r = rlsworker.cli("doctor", "--json", env=env, timeout=120)
    try:
        return r, json.loads(r.stdout)
    except ValueError:
        raise AssertionError("doctor printed no JSON (exit %d):\n%s%s"
                             % (r.returncode, r.stdout, r.stderr))


def found(report, status, check_id, role=None):
    return [c for c in report["checks"] if c["status"] == status and c["id"] == check_id
            and (role is None or c.get("role") == role)]


def createrole_direct(roles):
    return roles.restricted("rw_cr", "nosuperuser nobypassrls createrole"), \
        "restricted.createrole", "CREATEROLE"


def createrole_through_chain(roles):
    """Member of a member of a CREATEROLE role (it can SET ROLE up the chain)."""
    top = roles.nologin("rw_crtop", "createrole")
    mid = roles.nologin("rw_crmid")
    r = roles.restricted("rw_crmem")
    roles.pg.su_exec("grant %s to %s; grant %s to %s" % (top, mid, mid, r))
    return r, "restricted.member_privileged", "CREATEROLE"


ESCALATIONS = [createrole_direct, createrole_through_chain]


@pytest.mark.parametrize("make", ESCALATIONS, ids=[f.__name__ for f in ESCALATIONS])
def test_createrole_makes_doctor_fail_and_run_refuse(rlsworker, db, roles, tmp_path, make):
    role, check_id, word = make(roles)
    if check_id == "restricted.createrole":
        # the threat is real: the role can make itself the admin (BYPASSRLS)
        # role (rolled back, so only CREATEROLE is left for the checks)
        with psycopg.connect(db.pg.url(role, db.name)) as c:
            c.execute("grant neondb_owner to %s" % role)
            c.execute("set local role neondb_owner")
            assert c.execute("select current_user").fetchone()[0] == "neondb_owner"
            c.rollback()
    r, report = doctor_json(rlsworker, roles.env)
    assert r.returncode == 1, r.stdout
    fails = found(report, "FAIL", check_id, role)
    assert fails and any(word in c["message"] and "fix:" in c["message"] for c in fails), \
        r.stdout
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    r = rlsworker.cli("run", "--once", "--tasks", tasks, env=roles.env, timeout=120)
    assert r.returncode == 1, r.stdout + r.stderr
    assert role in r.stderr and word in r.stderr, r.stderr


def test_doctor_knows_the_job_api_functions(rlsworker, db):
    """complete_job and chain_job are meant for restricted roles: no warning
    (revoking them, as the old warning advised, breaks every user job); any
    other SECURITY DEFINER function they can execute still warns."""
    r, report = doctor_json(rlsworker, db.env())
    assert r.returncode == 0, r.stdout
    text = json.dumps(report)
    assert "complete_job" not in text and "chain_job" not in text, text
    assert found(report, "PASS", "functions.security_definer", "authenticated_backend")
    db.sql("create function rlsworker_api.peek() returns bigint language sql "
           "security definer as 'select count(*) from rlsworker.jobs'; "
           "grant execute on function rlsworker_api.peek() to authenticated_backend")
    r, report = doctor_json(rlsworker, db.env())
    warns = found(report, "WARN", "functions.security_definer", "authenticated_backend")
    assert any("rlsworker_api.peek()" in c["message"] for c in warns), r.stdout
    assert not any("complete_job" in c["message"] or "chain_job" in c["message"]
                   for c in report["checks"]), r.stdout
