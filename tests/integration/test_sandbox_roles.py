"""Issue 9, holes 1 and 2, tried as an attacker: `run_as` must never reach
the BYPASSRLS connection (whatever it is called, from add_job, add_jobs, the
CLI, the crontab or a task file), a role really named `admin` is just a
restricted role, and chaining neither switches role, nor reaches built-ins or
tasks that did not opt in, nor takes another job's key."""
import json

import psycopg
import pytest

from helpers import write_task

pytestmark = pytest.mark.security


def run_once(rlsworker, db, tasks, *extra):
    r = rlsworker.cli("run", "--once", "--tasks", str(tasks), *extra, env=db.env(), timeout=180)
    assert r.returncode == 0, r.stderr
    return r


def probe_table(db):
    """A table every restricted role may insert into: what a job saw."""
    db.sql("""
        create table probe (id serial primary key, tag text, sub text, role text,
                            rows_seen bigint);
        alter table probe enable row level security;
        create policy probe_insert on probe for insert with check (true);
        grant insert on probe to public;
        grant usage on sequence probe_id_seq to public;
    """)


def seed(db):
    db.sql("insert into todos (user_id, task) values ('alice', 'a'), ('bob', 'b'), ('carol', 'c')")


PROBE_SQL = """
    insert into probe (tag, sub, role, rows_seen)
    select :tag, auth.user_id(), current_user, count(*) from todos;
"""


# ---- hole 1: run_as -------------------------------------------------------

@pytest.mark.parametrize("name, why", [
    ("admin", "no role of that name exists"),
    ("neondb_owner", "BYPASSRLS"),          # the real admin login role
    ("postgres", "superuser"),
    ("pg_read_all_data", "reserved name"),
])
def test_add_job_refuses_a_privileged_or_unknown_run_as(db, name, why):
    with pytest.raises(psycopg.Error, match='run_as "%s" is refused: .*%s' % (name, why)):
        db.sql("select rlsworker.add_job('noop', claims => '{\"sub\":\"eve\"}', run_as => %s)",
               (name,))
    # keyed add_job replacing a queued job goes through the same check
    db.sql("select rlsworker.add_job('noop', job_key => 'k', claims => '{\"sub\":\"eve\"}')")
    with pytest.raises(psycopg.Error, match="is refused"):
        db.sql("select rlsworker.add_job('noop', job_key => 'k', run_as => %s)", (name,))
    for job in ({"task": "noop", "run_as": name},                 # set-based insert
                {"task": "noop", "run_as": name, "job_key": "j"}):  # through add_job
        with pytest.raises(psycopg.Error, match="is refused"):
            db.sql("select * from rlsworker.add_jobs(%s::jsonb)", (json.dumps([job]),))
    assert db.sql("select run_as from rlsworker.jobs") == [(None,)]
    # the restricted roles and the two keywords stay valid
    for ok in ("user", "system", "authenticated_backend", "moderator_backend"):
        db.sql("select rlsworker.add_job('noop', run_as => %s)", (ok,))


def test_cli_add_refuses_run_as_admin(rlsworker, db):
    r = rlsworker.cli("add", "noop", "--claims", '{"sub":"eve"}', "--run-as", "admin",
                      env=db.env())
    assert r.returncode == 1, r.stderr
    assert 'run_as "admin" is refused' in r.stderr
    assert db.val("select count(*) from rlsworker.jobs") == 0


def test_task_file_run_as_admin_fails_to_load(rlsworker, db, tasks_dir):
    write_task(tasks_dir, "sneaky", """
        -- task: sneaky
        -- run_as: admin
        update todos set is_complete = true;
    """)
    seed(db)
    db.sql("select rlsworker.add_job('sneaky', claims => '{\"sub\":\"eve\"}')")
    r = rlsworker.cli("run", "--once", "--tasks", str(tasks_dir), env=db.env(), timeout=60)
    assert r.returncode == 1
    assert "sneaky.sql:2: run_as admin is not a configured restricted role" in r.stderr
    assert "--role admin=URL" in r.stderr
    assert db.val("select count(*) from todos where is_complete") == 0


def test_crontab_run_as_admin_is_refused_at_load(rlsworker, db, tasks_dir, tmp_path):
    write_task(tasks_dir, "mark", """
        -- task: mark
        -- run_as: user
        update todos set is_complete = true;
    """)
    seed(db)
    tab = tmp_path / "crontab"
    tab.write_text("# every minute\n* * * * * mark ?run_as=admin&subject=eve\n")
    r = rlsworker.cli("run", "--once", "--tasks", str(tasks_dir), "--crontab", str(tab),
                      env=db.env(), timeout=60)
    assert r.returncode == 1
    assert "%s:2: run_as admin is not a configured restricted role" % tab in r.stderr
    # and if a tick got queued anyway (another worker's crontab), SQL refuses it
    with pytest.raises(psycopg.Error, match='run_as "admin" is refused'):
        db.sql("select rlsworker.cron_fire('mark', now(), 'mark', '{}', false, "
               "p_run_as => 'admin', p_subject => 'eve')")
    assert db.val("select count(*) from todos where is_complete") == 0


def test_run_as_of_a_configured_but_privileged_pool_is_unreachable(rlsworker, db, tasks_dir):
    """A job whose run_as slipped past enqueue (row written before 006, or by
    hand) still never reaches the admin connection: the worker looks the role
    up among restricted roles only and fails the job for good."""
    probe_table(db)
    seed(db)
    write_task(tasks_dir, "look", """
        -- task: look
        -- run_as: user
    """ + PROBE_SQL)
    db.sql("alter table rlsworker.jobs disable trigger jobs_before_insert")   # 017: its run_as check
    db.sql("select rlsworker.add_job('look', '{\"tag\":\"x\"}', claims => '{\"sub\":\"eve\"}', "
           "run_as => 'admin')")
    db.sql("alter table rlsworker.jobs enable trigger jobs_before_insert")
    run_once(rlsworker, db, tasks_dir)
    state, err = db.one("select state, last_error from rlsworker.jobs")
    assert state == "dead" and 'no connection is configured for role "admin"' in err
    assert db.sql("select * from probe") == []


@pytest.fixture
def admin_named_role(db):
    """A real restricted role called `admin`: login, no BYPASSRLS, member of
    authenticated_backend (so the todos policies for that role apply)."""
    db.pg.create_role("admin")
    db.pg.su_exec("grant authenticated_backend to admin")
    yield db.pg.url("admin", db.name)
    db.pg.su_exec("drop owned by admin", db=db.name)
    db.pg.su_exec("drop role admin")


def test_a_role_really_named_admin_runs_under_rls(rlsworker, db, tasks_dir, admin_named_role):
    probe_table(db)
    seed(db)
    write_task(tasks_dir, "as_admin", """
        -- task: as_admin
        -- run_as: admin
    """ + PROBE_SQL)
    write_task(tasks_dir, "as_user", """
        -- task: as_user
        -- run_as: user
    """ + PROBE_SQL)
    db.sql("select rlsworker.add_job('as_admin', '{\"tag\":\"file\"}', "
           "claims => '{\"sub\":\"alice\"}')")
    db.sql("select rlsworker.add_job('as_user', '{\"tag\":\"job\"}', "
           "claims => '{\"sub\":\"bob\"}', run_as => 'admin')")
    run_once(rlsworker, db, tasks_dir, "--role", "admin=" + admin_named_role)
    assert db.val("select count(*) from rlsworker.jobs") == 0, \
        db.sql("select task, last_error from rlsworker.jobs")
    assert sorted(db.sql("select tag, sub, role, rows_seen from probe")) == [
        ("file", "alice", "admin", 1), ("job", "bob", "admin", 1)]


# ---- hole 2: chaining -----------------------------------------------------

def chainer(tasks_dir, target, key=None, name="parent"):
    args = "'%s', jsonb_build_object('tag', 'chained')" % target
    if key is not None:   # keyed chained jobs wait, so the test can look at their keys
        args += ", run_at => now() + interval '1 hour', job_key => '%s'" % key
    write_task(tasks_dir, name, """
        -- task: %s
        -- run_as: user
        -- chain: allow
        -- max_attempts: 1
        select rlsworker_api.chain_job(%s);
    """ % (name, args))


def test_chaining_cannot_switch_to_another_role(rlsworker, db, tasks_dir):
    probe_table(db)
    seed(db)
    chainer(tasks_dir, "moderate")
    write_task(tasks_dir, "moderate", """
        -- task: moderate
        -- run_as: moderator_backend
        -- chained: allow
    """ + PROBE_SQL)
    db.sql("select rlsworker.add_job('parent', claims => '{\"sub\":\"alice\"}')")
    run_once(rlsworker, db, tasks_dir)
    run_once(rlsworker, db, tasks_dir)
    # moderator_backend reads every row: it must not run with alice's claims
    assert db.sql("select * from probe") == []
    state, run_as, err = db.one("select state, run_as, last_error from rlsworker.jobs")
    assert state == "dead" and run_as == "authenticated_backend"
    assert "runs only on the role of the job that chained it" in err


def test_chained_job_runs_on_the_chaining_role(rlsworker, db, tasks_dir):
    probe_table(db)
    seed(db)
    write_task(tasks_dir, "mod_parent", """
        -- task: mod_parent
        -- run_as: moderator_backend
        -- chain: allow
        select rlsworker_api.chain_job('mod_child', jsonb_build_object('tag', 'chained'));
    """)
    write_task(tasks_dir, "mod_child", """
        -- task: mod_child
        -- run_as: moderator_backend
        -- chained: allow
    """ + PROBE_SQL)
    db.sql("select rlsworker.add_job('mod_parent', claims => '{\"sub\":\"alice\"}')")
    run_once(rlsworker, db, tasks_dir)
    run_once(rlsworker, db, tasks_dir)
    assert db.val("select count(*) from rlsworker.jobs") == 0, \
        db.sql("select task, last_error from rlsworker.jobs")
    assert db.sql("select tag, sub, role from probe") == \
        [("chained", "alice", "moderator_backend")]


def test_chaining_to_http_is_refused(rlsworker, db, tasks_dir):
    chainer(tasks_dir, "http")
    db.sql("select rlsworker.add_job('parent', claims => '{\"sub\":\"alice\"}')")
    run_once(rlsworker, db, tasks_dir)
    task, state, err = db.one("select task, state, last_error from rlsworker.jobs")
    assert (task, state) == ("parent", "dead")
    assert 'task "http" cannot be chained to' in err


def test_chaining_to_a_task_that_did_not_opt_in_is_refused(rlsworker, db, tasks_dir):
    probe_table(db)
    chainer(tasks_dir, "plain")
    write_task(tasks_dir, "plain", """
        -- task: plain
        -- run_as: user
    """ + PROBE_SQL)
    db.sql("select rlsworker.add_job('parent', claims => '{\"sub\":\"alice\"}')")
    run_once(rlsworker, db, tasks_dir)
    run_once(rlsworker, db, tasks_dir)
    assert db.sql("select * from probe") == []
    task, state, err = db.one("select task, state, last_error from rlsworker.jobs")
    assert (task, state) == ("plain", "dead")
    assert "does not accept chained jobs" in err and "chained: allow" in err


def test_a_built_in_chained_past_the_sql_check_is_refused_by_the_worker(rlsworker, db,
                                                                         tasks_dir):
    """The worker checks the opt-in itself: a chained row for a built-in
    (e.g. from a worker whose task files differ) never runs."""
    db.sql("insert into rlsworker.jobs (task, payload, claims, subject, run_as, chained_by) "
           "values ('noop', '{}', '{\"sub\":\"alice\"}', 'alice', 'authenticated_backend', 1)")
    run_once(rlsworker, db, tasks_dir)
    state, err = db.one("select state, last_error from rlsworker.jobs")
    assert state == "dead" and "task noop does not accept chained jobs" in err


def test_a_chained_key_cannot_swallow_a_cron_tick_or_another_users_job(rlsworker, db,
                                                                      tasks_dir):
    tick = "2031-01-01T00:00:00Z"
    cron_key = "cron:nightly:" + tick
    chainer(tasks_dir, "child", key=cron_key)
    write_task(tasks_dir, "child", """
        -- task: child
        -- run_as: user
        -- chained: allow
        select 1;
    """)
    db.sql("select rlsworker.add_job('parent', claims => '{\"sub\":\"alice\"}')")
    db.sql("select rlsworker.add_job('parent', claims => '{\"sub\":\"bob\"}')")
    run_once(rlsworker, db, tasks_dir)
    # both users' chained jobs are queued, each under its own namespaced key
    assert sorted(db.sql("select subject, job_key from rlsworker.jobs")) == [
        ("alice", "c5:alice:" + cron_key), ("bob", "c3:bob:" + cron_key)]
    # the cron tick still fires with its own key and task
    job = db.val("select rlsworker.cron_fire('nightly', %s::timestamptz, 'stats_global', "
                 "'{}', false)", (tick,))
    assert db.one("select task, job_key from rlsworker.jobs where id = %s", (job,)) == \
        ("stats_global", cron_key)
