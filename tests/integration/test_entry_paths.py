"""Issue 15: every way a job comes in works as documented and is checked when
it loads. Cron lines for a user, crontab task checks, webhook subjects, CLI
flags, unknown tasks over HTTP, the cancelled state, attempt errors."""
import json
import os
import signal
import time

import pytest

from helpers import write_task

pytestmark = pytest.mark.integration

COMPLETE_TODOS = """
-- run_as: user

update todos set is_complete = true where is_complete = false;
"""

PURGE = """
-- run_as: system
-- scope: subject

delete from todos where user_id = :subject and is_complete;
"""


def write(dir, name, text):
    path = os.path.join(str(dir), name)
    with open(path, "w") as f:
        f.write(text)
    return path


def wait_until(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.2)
    raise AssertionError("timed out waiting for " + what)


def demo_tasks(tasks_dir):
    write_task(tasks_dir, "todos.complete_all", COMPLETE_TODOS)
    write_task(tasks_dir, "purge_completed", PURGE)


# --- 1. cron lines for a user, crontab task checks -------------------------

def test_user_cron_line_runs_with_the_subjects_claims(db, rlsworker, tasks_dir, tmp_path):
    demo_tasks(tasks_dir)
    db.sql("insert into todos (user_id, task) values ('carol', 'c1'), ('dave', 'd1')")
    crontab = write(tmp_path, "crontab", "*/1 * * * * * todos.complete_all "
                    "?id=complete-carol&run_as=user&subject=carol\n")
    w = rlsworker.spawn("run", "--crontab", crontab, "--tasks", tasks_dir, env=db.env())
    wait_until(lambda: db.val("select is_complete from todos where user_id = 'carol'"),
               20, "carol's todo completed by the cron line")
    # RLS held: the claims are carol's only
    assert db.val("select is_complete from todos where user_id = 'dave'") is False
    w.stop()
    assert "no claims" not in w.read_stderr()


def test_cron_line_claims_are_exactly_sub(db):
    job = db.val("select rlsworker.cron_fire('l', '2024-01-01T00:00:00Z', 't', '{}', false,"
                 " null, 0, null, 'user', 'carol', '{\"sub\": \"carol\"}')")
    assert db.one("select claims, subject, claims_verified_at is not null"
                  " from rlsworker.jobs where id = %s", (job,)) == ({"sub": "carol"}, "carol", True)


@pytest.mark.parametrize("line,msg", [
    ("@daily no_such_task", 'unknown task "no_such_task"'),
    ("@daily todos.complete_all", "user-scoped, so each job needs the claims of a user"),
    ("@daily todos.complete_all ?run_as=system&subject=x", "cannot run as system"),
    ("@daily purge_completed", "has scope: subject"),
    ("@daily purge_completed ?run_as=user&subject=carol", "runs as system, but run_as"),
])
def test_cron_check_with_tasks_refuses_lines_that_cannot_run(rlsworker, tasks_dir, tmp_path,
                                                              line, msg):
    demo_tasks(tasks_dir)
    crontab = write(tmp_path, "crontab", "@hourly noop\n" + line + "\n")
    r = rlsworker.cli("cron", "check", crontab, "--tasks", tasks_dir)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "%s:2: " % crontab in r.stderr and msg in r.stderr, r.stderr
    # without --tasks only the syntax is checked
    assert rlsworker.cli("cron", "check", crontab).returncode == 0


def test_cron_check_with_tasks_accepts_runnable_lines(rlsworker, tasks_dir, tmp_path):
    demo_tasks(tasks_dir)
    crontab = write(tmp_path, "crontab",
                    "@hourly noop\n"
                    "@daily todos.complete_all ?id=c&run_as=user&subject=carol\n"
                    "@daily todos.complete_all ?id=d&subject=dave\n"
                    "@daily purge_completed ?subject=carol\n")
    r = rlsworker.cli("cron", "check", crontab, "--tasks", tasks_dir)
    assert r.returncode == 0, r.stderr


def test_run_refuses_crontab_with_unknown_task(db, rlsworker, tasks_dir, tmp_path):
    crontab = write(tmp_path, "crontab", "@daily noop\n@daily no_such_task\n")
    r = rlsworker.cli("run", "--crontab", crontab, "--tasks", tasks_dir, env=db.env(),
                      timeout=30)
    assert r.returncode != 0
    assert '%s:2: unknown task "no_such_task"' % crontab in r.stderr, r.stderr


def test_sighup_refuses_crontab_with_unrunnable_line(db, rlsworker, tasks_dir, tmp_path):
    demo_tasks(tasks_dir)
    crontab = write(tmp_path, "crontab", "*/1 * * * * * noop ?id=old\n")
    w = rlsworker.spawn("run", "--crontab", crontab, "--tasks", tasks_dir, env=db.env())
    wait_until(lambda: db.val("select count(*) from rlsworker.cron_state where id = 'old'") > 0,
               20, "the old line to fire")
    write(tmp_path, "crontab", "*/1 * * * * * noop ?id=new\n"
          "*/1 * * * * * todos.complete_all ?id=nosub\n")
    w.send_signal(signal.SIGHUP)
    w.wait_for(r"could not reload crontab.*crontab:2: task todos.complete_all is user-scoped",
               timeout=10)
    time.sleep(2.5)
    assert db.val("select count(*) from rlsworker.cron_state where id in ('new', 'nosub')") == 0
    w.stop()
