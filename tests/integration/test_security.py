"""The security model (issue 3), tried as an attacker and a careless operator
would: other users' rows, claims without sub, leftovers on reused
connections, the queue from the restricted role, forged chaining, unscoped
system tasks, and the moderator/admin roles of Neon's guide."""
import json
import os
import time
import uuid

import psycopg
import pytest

from helpers import REPO, write_task

DEMO_TASKS = os.path.join(REPO, "deploy", "demo", "tasks")
pytestmark = pytest.mark.security


def run_once(rlsworker, db, tasks, *extra, env=None):
    r = rlsworker.cli("run", "--once", "--tasks", str(tasks), *extra,
                      env=env or db.env(), timeout=180)
    assert r.returncode == 0, r.stderr
    return r


def probe_table(db):
    """A table any restricted role may insert into, to record what a job saw."""
    db.sql("""
        create table probe (id serial primary key, job_id bigint, who text, sub text,
                            claims text, role text, foreign_rows bigint, pid int,
                            xact timestamptz);
        alter table probe enable row level security;
        create policy probe_insert on probe for insert with check (true);
        grant insert on probe to authenticated_backend, moderator_backend, admin_backend;
        grant usage on sequence probe_id_seq to authenticated_backend, moderator_backend,
                                            admin_backend;
    """)


def test_forty_users_never_see_or_touch_each_other(rlsworker, db, tasks_dir):
    users = [f"user{i:02d}" for i in range(40)]
    db.sql("insert into todos (user_id, task) select u, 'seed ' || u "
           "from unnest(%s::text[]) u", (users,))
    write_task(tasks_dir, "probe_user", """
        -- task: probe_user
        -- run_as: user
        insert into todos (task)
        select :expect || '|' || :job_id || '|' ||
               (select count(*) from todos where user_id is distinct from :expect) || '|' ||
               (select count(*) from todos where user_id = :expect);
        update todos set is_complete = true where task like 'seed %%';
    """.replace("%%", "%"))
    # 10 rounds alternating over all 40 users: neighbours on a connection differ
    with db.connect() as c:
        for rnd in range(10):
            for u in users:
                c.execute("select rlsworker.add_job('probe_user', jsonb_build_object('expect', %s::text),"
                          " claims => jsonb_build_object('sub', %s::text))", (u, u))
        c.commit()
    run_once(rlsworker, db, tasks_dir, "--concurrency", "8", "--pool-size", "3")
    rows = db.sql("select user_id, task from todos where task not like 'seed %%'")
    assert len(rows) == 400, db.sql("select id, state, attempts, run_at > now(), last_error from rlsworker.jobs")
    for user_id, text in rows:
        expect, job_id, foreign, own = text.split("|")
        assert user_id == expect, f"job {job_id} for {expect} wrote a row of {user_id}"
        assert foreign == "0", f"job {job_id} for {expect} saw {foreign} rows of others"
        assert int(own) >= 1
    # every seed row was completed, each by its own user's jobs only
    assert db.val("select count(*) from todos where task like 'seed %%' and not is_complete") == 0
    assert db.val("select count(*) from rlsworker.jobs") == 0


def test_claims_without_sub_see_nothing_and_write_nothing(rlsworker, db, tasks_dir):
    db.sql("insert into todos (user_id, task) values ('alice', 'a'), ('bob', 'b')")
    write_task(tasks_dir, "peek", """
        -- task: peek
        -- run_as: user
        -- max_attempts: 1
        update todos set is_complete = true;
        insert into todos (task) select 'saw ' || count(*) from todos;
    """)
    db.sql("select rlsworker.add_job('peek', claims => '{\"role\": \"authenticated\"}')")
    db.sql("select rlsworker.add_job('complete_todos', claims => '{\"aud\": \"x\"}')")
    run_once(rlsworker, db, tasks_dir)
    run_once(rlsworker, db, DEMO_TASKS)
    assert db.sql("select task, is_complete from todos order by task") == \
        [("a", False), ("b", False)]
    # the peek job failed (its insert has no user) and changed nothing
    assert db.val("select state from rlsworker.jobs where task = 'peek'") == "dead"


def test_user_job_without_claims_never_runs(rlsworker, db):
    db.sql("select rlsworker.add_job('complete_todos')")
    db.sql("insert into todos (user_id, task) values ('alice', 'a')")
    run_once(rlsworker, db, DEMO_TASKS)
    state, err = db.one("select state, last_error from rlsworker.jobs")
    assert state == "dead" and "has no claims" in err
    assert db.val("select is_complete from todos") is False


def test_failed_job_leaves_no_claims_on_its_connection(rlsworker, db, tasks_dir):
    probe_table(db)
    write_task(tasks_dir, "fail_mid", """
        -- task: fail_mid
        -- run_as: user
        -- max_attempts: 1
        insert into probe (who, sub) values ('fail_mid', auth.user_id());
        select 1 / 0;
    """)
    write_task(tasks_dir, "record", """
        -- task: record
        -- run_as: user
        insert into probe (job_id, who, sub, claims, role, pid, xact)
        values (:job_id::bigint, 'record', auth.user_id(),
                current_setting('request.jwt.claims', true), current_user,
                pg_backend_pid(), now());
    """)
    # one connection, one job at a time: alice fails mid-transaction, then a
    # job whose claims have no sub runs on the very same connection
    db.sql("select rlsworker.add_job('fail_mid', claims => '{\"sub\":\"alice\"}', priority => 1)")
    db.sql("select rlsworker.add_job('record', claims => '{\"role\":\"anon\"}', priority => 2)")
    w = rlsworker.spawn("run", "--tasks", str(tasks_dir), "--concurrency", "1",
                        "--pool-size", "1", env=db.env())
    deadline = time.time() + 20
    while time.time() < deadline and db.val("select count(*) from probe") == 0:
        time.sleep(0.05)
    rows = db.sql("select who, sub, claims, role, pid from probe")
    assert len(rows) == 1, rows                      # fail_mid's insert rolled back
    who, sub, claims, role, pid = rows[0]
    assert (who, sub, role) == ("record", None, "authenticated_backend")
    assert json.loads(claims) == {"role": "anon"}
    # the restricted connection is idle (not in a transaction) between jobs
    states = db.sql("select state from pg_stat_activity where usename = 'authenticated_backend'"
                    " and datname = current_database()", role="postgres")
    assert states and all(s[0] == "idle" for s in states), states
    assert w.stop() == 0
    assert "division by zero" in db.val("select last_error from rlsworker.jobs")


def test_database_role_never_comes_from_a_claim(rlsworker, db, tasks_dir):
    probe_table(db)
    write_task(tasks_dir, "record", """
        -- task: record
        -- run_as: user
        insert into probe (who, sub, role) values ('r', auth.user_id(), current_user);
    """)
    db.sql("select rlsworker.add_job('record', claims => "
           "'{\"sub\":\"alice\",\"role\":\"neondb_owner\"}')")
    run_once(rlsworker, db, tasks_dir)
    assert db.sql("select sub, role from probe") == [("alice", "authenticated_backend")]
    # nor from run_as: a user task cannot be pushed onto the admin connection
    db.sql("select rlsworker.add_job('record', claims => '{\"sub\":\"eve\"}', run_as => 'system')")
    run_once(rlsworker, db, tasks_dir)
    state, err = db.one("select state, last_error from rlsworker.jobs")
    assert state == "dead" and "cannot run as system" in err


def restricted(db, role="authenticated_backend"):
    return psycopg.connect(db.conninfo(role), autocommit=True)


def test_restricted_role_cannot_touch_the_queue(db):
    db.sql("select rlsworker.add_job('noop', claims => '{\"sub\":\"alice\"}')")
    with restricted(db) as c:
        for stmt in ("select * from rlsworker.jobs",
                     "select rlsworker.add_job('noop')",
                     "select rlsworker.add_job('noop', claims => '{\"sub\":\"bob\"}')",
                     "select * from rlsworker.add_jobs('[{\"task\": \"noop\"}]')",
                     "update rlsworker.jobs set claims = '{\"sub\":\"x\"}'",
                     "select * from rlsworker.claim_jobs('me', 10)",
                     "select rlsworker.complete_jobs('me', array[1::bigint])",
                     "select rlsworker.cancel_job(1)"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                c.execute(stmt)
        # the narrow API needs a lock token only the worker knows
        with pytest.raises(psycopg.Error, match="no longer held"):
            c.execute("select rlsworker_api.complete_job(1, %s::uuid)", (str(uuid.uuid4()),))
        with pytest.raises(psycopg.Error, match="may only be called by a running job"):
            c.execute("select rlsworker_api.chain_job('noop')")
        with c.transaction():
            c.execute("select set_config('rlsworker.chain_token', %s, true)", (str(uuid.uuid4()),))
            with pytest.raises(psycopg.Error, match="no running user job"):
                c.execute("select rlsworker_api.chain_job('noop')")
        # there is no way to pass claims
        with pytest.raises(psycopg.errors.UndefinedFunction):
            c.execute("select rlsworker_api.chain_job('noop', claims => '{\"sub\":\"bob\"}')")
    assert db.val("select count(*) from rlsworker.jobs") == 1


def test_a_group_completion_needs_each_jobs_own_lock_token(db):
    """rlsworker_api.complete_jobs (a group's completion, migration 014) is
    callable by the restricted role, so it must take nothing on trust: each
    id needs its own job's token, and one wrong pair completes nothing."""
    for _ in range(3):
        db.sql("select rlsworker.add_job('noop', claims => '{\"sub\":\"alice\"}')")
    held = db.sql("select id, lock_token::text from rlsworker.claim_jobs('w1', 2) order by id")
    (a, ta), (b, tb) = held
    queued = db.val("select id from rlsworker.jobs where state = 'queued'")
    forged = str(uuid.uuid4())
    with restricted(db) as c:
        for ids, tokens in (([a, b], [tb, ta]),             # swapped: both tokens are real
                            ([a, b], [ta, forged]),         # one right, one forged
                            ([a, queued], [ta, ta]),        # a queued job with a held token
                            ([a, a], [ta, ta])):            # the same job twice
            with pytest.raises(psycopg.Error, match="no longer held by this worker"):
                c.execute("select rlsworker_api.complete_jobs(%s::bigint[], %s::uuid[])",
                          (ids, tokens))
        with pytest.raises(psycopg.Error, match="one lock token per job id"):
            c.execute("select rlsworker_api.complete_jobs(%s::bigint[], %s::uuid[])", ([a, b], [ta]))
        # nothing above completed anything; the right pairs complete both
        assert db.val("select count(*) from rlsworker.jobs where state = 'running'") == 2
        c.execute("select rlsworker_api.complete_jobs(%s::bigint[], %s::uuid[])", ([a, b], [ta, tb]))
    assert db.sql("select id, state from rlsworker.jobs") == [(queued, "queued")]
    assert db.val("select count(*) from rlsworker.job_runs where outcome = 'succeeded'") == 2


def test_chained_job_carries_the_parents_claims(rlsworker, db, tasks_dir):
    write_task(tasks_dir, "parent", """
        -- task: parent
        -- run_as: user
        -- chain: allow
        insert into todos (task) values ('parent');
        select rlsworker_api.chain_job('child', jsonb_build_object('title', 'from parent'));
    """)
    write_task(tasks_dir, "child", """
        -- task: child
        -- run_as: user
        -- chained: allow
        insert into todos (task) values (:title);
    """)
    write_task(tasks_dir, "sneaky", """
        -- task: sneaky
        -- run_as: user
        -- max_attempts: 1
        select rlsworker_api.chain_job('child', jsonb_build_object('title', 'sneaky'));
    """)
    db.sql("select rlsworker.add_job('parent', claims => '{\"sub\":\"alice\"}')")
    db.sql("select rlsworker.add_job('sneaky', claims => '{\"sub\":\"bob\"}')")
    run_once(rlsworker, db, tasks_dir)
    run_once(rlsworker, db, tasks_dir)
    assert sorted(db.sql("select user_id, task from todos")) == \
        [("alice", "from parent"), ("alice", "parent")]
    state, err = db.one("select state, last_error from rlsworker.jobs where task = 'sneaky'")
    assert state == "dead" and "chain: allow" in err


def test_a_task_cannot_set_claims_itself(rlsworker, db, tasks_dir):
    write_task(tasks_dir, "forge", """
        -- task: forge
        -- run_as: user
        select set_config('request.jwt.claims', '{"sub":"bob"}', true);
        update todos set is_complete = true;
    """)
    r = rlsworker.cli("run", "--once", "--tasks", str(tasks_dir), env=db.env())
    assert r.returncode == 1 and "forge.sql" in r.stderr and "set_config" in r.stderr


def test_unscoped_system_tasks_are_refused_at_load(rlsworker, db, tasks_dir):
    write_task(tasks_dir, "wipe", """
        -- task: wipe
        -- run_as: system
        delete from todos;
    """)
    r = rlsworker.cli("run", "--once", "--tasks", str(tasks_dir), env=db.env())
    assert r.returncode == 1 and "wipe.sql" in r.stderr and "scope" in r.stderr
    os.remove(tasks_dir / "wipe.sql")
    write_task(tasks_dir, "half", """
        -- task: half
        -- run_as: system
        -- scope: subject
        delete from todos where user_id = :subject and is_complete;
        delete from todo_stats;
    """)
    r = rlsworker.cli("run", "--once", "--tasks", str(tasks_dir), env=db.env())
    assert r.returncode == 1 and "half.sql" in r.stderr and ":subject" in r.stderr


def test_subject_scoped_system_job_touches_only_its_subject(rlsworker, db):
    db.sql("insert into todos (user_id, task, is_complete) values "
           "('alice', 'a-done', true), ('alice', 'a-open', false), ('bob', 'b-done', true)")
    db.sql("select rlsworker.add_job('purge_completed', subject => 'alice')")
    db.sql("select rlsworker.add_job('purge_completed')")   # no subject: must not run
    run_once(rlsworker, db, DEMO_TASKS)
    assert sorted(r[0] for r in db.sql("select task from todos")) == ["a-open", "b-done"]
    state, err = db.one("select state, last_error from rlsworker.jobs")
    assert state == "dead" and "no subject" in err


def test_moderator_and_admin_roles_follow_the_guides_policies(rlsworker, db, tasks_dir):
    probe_table(db)
    db.sql("insert into todos (user_id, task) values ('alice', 'a'), ('bob', 'b'), "
           "('mod1', 'm'), ('adm1', 'x')")
    for role in ("moderator_backend", "admin_backend"):
        write_task(tasks_dir, role, f"""
            -- task: {role}
            -- run_as: {role}
            insert into probe (who, sub, role, foreign_rows)
            select 'p', auth.user_id(), current_user, count(*) from todos;
            update todos set is_complete = true;
        """)
    db.sql("select rlsworker.add_job('moderator_backend', claims => '{\"sub\":\"mod1\"}')")
    run_once(rlsworker, db, tasks_dir)
    assert db.one("select sub, role, foreign_rows from probe") == ("mod1", "moderator_backend", 4)
    assert dict(db.sql("select task, is_complete from todos")) == \
        {"a": False, "b": False, "m": True, "x": False}
    db.sql("select rlsworker.add_job('admin_backend', claims => '{\"sub\":\"adm1\"}')")
    run_once(rlsworker, db, tasks_dir)
    assert all(r[0] for r in db.sql("select is_complete from todos"))
    # a role with no configured connection is refused when the tasks load
    write_task(tasks_dir, "ghost", """
        -- task: ghost
        -- run_as: ghost_backend
        select 1;
    """)
    r = rlsworker.cli("run", "--once", "--tasks", str(tasks_dir), env=db.env())
    assert r.returncode == 1 and "ghost.sql:2: run_as ghost_backend is not a configured " \
        "restricted role" in r.stderr


def test_claims_older_than_claims_max_age_fail(rlsworker, db, tasks_dir):
    write_task(tasks_dir, "fresh_only", """
        -- task: fresh_only
        -- run_as: user
        -- claims_max_age: 60s
        insert into todos (task) values ('ran');
    """)
    old = db.val("select rlsworker.add_job('fresh_only', claims => '{\"sub\":\"alice\"}')")
    db.sql("update rlsworker.jobs set claims_verified_at = now() - interval '2 hours' "
           "where id = %s", (old,))
    db.sql("select rlsworker.add_job('fresh_only', claims => '{\"sub\":\"bob\"}')")
    run_once(rlsworker, db, tasks_dir)
    assert db.sql("select user_id from todos") == [("bob",)]
    state, err = db.one("select state, last_error from rlsworker.jobs")
    assert state == "dead" and "claims_max_age" in err


def test_claims_are_stored_canonically_and_size_limited(rlsworker, db):
    r = rlsworker.cli("add", "noop", "--claims", '{ "sub" : "alice",  "b": 1, "a": [1, 2] }',
                      env=db.env())
    assert r.returncode == 0, r.stderr
    stored = db.one("select claims::text, subject, claims_verified_at is not null "
                    "from rlsworker.jobs")
    assert stored == ('{"a": [1, 2], "b": 1, "sub": "alice"}', "alice", True)
    big = json.dumps({"sub": "alice", "pad": "x" * 5000})
    r = rlsworker.cli("add", "noop", "--claims", big, env=db.env())
    assert r.returncode == 2 and "claims_max_bytes" in r.stderr
    with pytest.raises(psycopg.Error, match="more than the 8192 allowed"):
        db.sql("select rlsworker.add_job('noop', claims => jsonb_build_object('sub', 'a', "
               "'pad', repeat('x', 9000)))")
    with pytest.raises(psycopg.Error, match="differs from claims.sub"):
        db.sql("select rlsworker.add_job('noop', claims => '{\"sub\":\"a\"}', subject => 'b')")


SECRET = "s" * 40


def hs256(claims, secret=SECRET):
    import jwt as pyjwt
    return pyjwt.encode(claims, secret, algorithm="HS256")


def test_add_with_token_stores_verified_claims_only(rlsworker, db):
    now = int(time.time())
    env = db.env(JWT_SECRET=SECRET)
    good = hs256({"sub": "tina", "exp": now + 300, "iat": now})
    r = rlsworker.cli("add", "add_todo", "--token", good, "--payload", '{"title":"t"}', env=env)
    assert r.returncode == 0, r.stderr
    assert db.one("select subject, claims->>'sub', claims_verified_at > now() - interval '1 minute'"
                  " from rlsworker.jobs") == ("tina", "tina", True)
    # stdin keeps the token out of ps
    r = rlsworker.cli("add", "add_todo", "--token", "-", "--payload", '{"title":"u"}',
                      env=env, input=good + "\n")
    assert r.returncode == 0, r.stderr
    for bad, reason in [(hs256({"sub": "eve", "exp": now - 3600}), "expired"),
                        (hs256({"sub": "eve", "exp": now + 300}, "x" * 40), "bad signature"),
                        (good[:-2] + "AA", "bad signature"),
                        ("not.a.token", "")]:
        r = rlsworker.cli("add", "add_todo", "--token", bad, "--payload", '{"title":"x"}', env=env)
        assert r.returncode == 1 and "token rejected" in r.stderr and reason in r.stderr
        assert bad not in r.stderr
    run_once(rlsworker, db, DEMO_TASKS, env=env)
    assert sorted(db.sql("select user_id, task from todos")) == [("tina", "t"), ("tina", "u")]


def test_builtin_system_task_is_scoped_to_its_subject(rlsworker, db):
    for sub in ("alice", "alice", "bob"):
        db.sql("select rlsworker.add_job('noop', claims => jsonb_build_object('sub', %s::text))",
               (sub,))
    db.sql("update rlsworker.jobs set state = 'dead', last_error = 'old'")
    db.sql("select rlsworker.add_job('purge_dead_jobs', subject => 'alice')")
    db.sql("select rlsworker.add_job('purge_dead_jobs')")     # no subject: refused
    run_once(rlsworker, db, DEMO_TASKS)
    rows = db.sql("select task, subject, state, last_error from rlsworker.jobs order by id")
    assert [(r[0], r[1]) for r in rows] == [("noop", "bob"), ("purge_dead_jobs", None)]
    assert rows[1][2] == "dead" and "scoped to a subject" in rows[1][3]
