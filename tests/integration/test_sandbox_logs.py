"""Issue 9, hole 6: logs and errors neither leak nor can be forged.

- A job whose PostgreSQL error carries a newline and a payload value writes
  one escaped log line, and its last_error (and `jobs show`) holds neither
  the value PostgreSQL echoes nor the claims.
- A token whose `sub` holds a newline, sent to the HTTP intake, cannot write
  a forged log line.
- A malformed DATABASE_URL (no "://", a bad %-escape) is reported by name,
  never echoed: the password appears in no output of migrate, doctor or run.
- A config file that holds a secret and is readable by group or others draws
  a warning naming the file and the chmod fix.

Run: /usr/bin/python3 -m pytest -q tests/integration/test_sandbox_logs.py
"""
import http.client
import json
import os
import re
import time

import jwt
import pytest

from helpers import free_port, write_task

pytestmark = [pytest.mark.integration, pytest.mark.security]

# What a forged line would start with: a timestamp in the log's own format.
FORGED_STAMP = "2030-01-01T00:00:00.000Z"
FORGED = FORGED_STAMP + " LOG job=1 task=pay attempt=1: succeeded"
SECRET = "sandbox-logs-secret-" + "q" * 32
PASSWORD = "Pw5ecretXYZ"


def forged_lines(text):
    return [line for line in text.splitlines() if line.startswith(FORGED_STAMP)]


def run_once(rlsworker, db, tasks_dir):
    r = rlsworker.cli("run", "--once", "--tasks", str(tasks_dir), env=db.env(), timeout=120)
    assert r.returncode == 0, r.stderr
    return r


def failing_tasks(db, tasks_dir):
    db.sql("""create function public.fail_with(t text) returns int language plpgsql
              as $$ begin raise exception '%', t; end $$""")
    write_task(tasks_dir, "cast_title", """
        -- task: cast_title
        -- run_as: user
        -- max_attempts: 1
        select (:title)::int;
    """)
    write_task(tasks_dir, "raise_title", """
        -- task: raise_title
        -- run_as: user
        -- max_attempts: 1
        select fail_with(:title);
    """)
    write_task(tasks_dir, "cast_claims", """
        -- task: cast_claims
        -- run_as: user
        -- max_attempts: 1
        select current_setting('request.jwt.claims')::int;
    """)


def test_job_errors_write_one_line_without_values_or_claims(rlsworker, db, tasks_dir):
    failing_tasks(db, tasks_dir)
    payload = json.dumps({"title": "card-4111\n" + FORGED})
    claims = json.dumps({"sub": "alice", "email": "alice-private@example.com"})
    ids = {}
    for task in ("cast_title", "raise_title", "cast_claims"):
        ids[task] = db.val("select rlsworker.add_job(%s, %s::jsonb, claims => %s::jsonb)",
                           (task, payload, claims))
    r = run_once(rlsworker, db, tasks_dir)

    # the log: no forged line, the newline written as \n
    assert not forged_lines(r.stderr), r.stderr
    assert "\\n" + FORGED in r.stderr, r.stderr

    errors = dict(db.sql("select task, last_error from rlsworker.jobs"))
    assert all(db.val("select state from rlsworker.jobs where id = %s", (i,)) == "dead"
               for i in ids.values())
    for task, err in errors.items():
        assert "\n" not in err, (task, err)
        assert "alice-private" not in err, (task, err)
        assert len(err) <= 1200, (task, len(err))
    # PostgreSQL's echo of the bad value is elided; the code stays
    assert "card-4111" not in errors["cast_title"], errors["cast_title"]
    assert 'invalid input syntax for type integer: "..."' in errors["cast_title"]
    assert "SQLSTATE 22P02" in errors["cast_title"]
    assert "SQLSTATE 22P02" in errors["cast_claims"]
    # a message the task raises itself is kept, on one line
    assert errors["raise_title"].endswith("card-4111\\n" + FORGED + " (SQLSTATE P0001)"), \
        errors["raise_title"]

    shown = rlsworker.cli("jobs", "show", str(ids["raise_title"]), env=db.env())
    assert shown.returncode == 0, shown.stderr
    assert not forged_lines(shown.stdout) and not forged_lines(shown.stderr), shown.stdout
    shown = rlsworker.cli("jobs", "show", str(ids["cast_claims"]), env=db.env())
    assert "alice-private" not in shown.stdout + shown.stderr


def test_a_sub_with_a_newline_cannot_forge_an_intake_log_line(rlsworker, db, tasks_dir):
    write_task(tasks_dir, "noop_user", """
        -- task: noop_user
        -- run_as: user
        -- enqueue: user
        select 1;
    """)
    port = free_port()
    w = rlsworker.spawn("run", "--listen", "127.0.0.1:%d" % port, "--tasks", str(tasks_dir),
                        env=db.env(JWT_SECRET=SECRET))
    w.wait_for(r"http intake listening on")
    now = int(time.time())
    tok = jwt.encode({"sub": "mallory\n" + FORGED, "iat": now, "exp": now + 300,
                      "role": "authenticated"}, SECRET, algorithm="HS256")
    deadline = time.monotonic() + 15
    while True:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("POST", "/v1/jobs", body=json.dumps({"task": "noop_user"}),
                     headers={"Content-Type": "application/json",
                              "Authorization": "Bearer " + tok})
        status = conn.getresponse().status
        conn.close()
        if status != 503 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert status == 202
    w.wait_for(r"for sub mallory")
    time.sleep(0.5)
    log = w.read_stderr()
    assert not forged_lines(log), log
    assert "for sub mallory\\n" + FORGED in log, log
    assert tok not in log


MALFORMED = {
    "no_scheme_slashes": "postgres//app:%s@127.0.0.1/db" % PASSWORD,
    "bad_percent_escape": "postgresql://app:%s%%zz@127.0.0.1/db" % PASSWORD,
    "short_percent_escape": "postgresql://app:%s%%4@127.0.0.1/db" % PASSWORD,
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_a_malformed_database_url_is_never_echoed(rlsworker, db, tasks_dir, case):
    env = db.env(DATABASE_URL=MALFORMED[case])
    for args in (("migrate",), ("doctor",), ("jobs", "list"),
                 ("run", "--once", "--tasks", str(tasks_dir))):
        r = rlsworker.cli(*args, env=env, timeout=60)
        out = r.stdout + r.stderr
        assert r.returncode != 0, (args, out)
        assert PASSWORD not in out, (args, out)
        assert "DATABASE_URL is malformed" in out, (args, out)
    r = rlsworker.cli("migrate", env=env)
    if "percent" in case:
        assert "%25" in r.stderr, r.stderr
    # the restricted role's URL too, named by its own variable
    env = db.env(DATABASE_AUTHENTICATED_URL=MALFORMED[case])
    r = rlsworker.cli("doctor", env=env, timeout=60)
    assert PASSWORD not in r.stdout + r.stderr
    assert "DATABASE_AUTHENTICATED_URL is malformed" in r.stdout + r.stderr


def test_a_config_file_with_secrets_readable_by_others_is_warned(rlsworker, db, tmp_path):
    def doctor_with(text, mode):
        conf = tmp_path / "worker.conf"
        conf.write_text(text)
        os.chmod(conf, mode)
        r = rlsworker.cli("doctor", "--config", str(conf), env=db.env(SOME_SECRET=SECRET),
                          timeout=60)
        return str(conf), r.stdout + r.stderr

    secret_line = "jwt_secret = %s\n" % SECRET
    path, out = doctor_with(secret_line, 0o644)
    assert re.search(r'WARNING config file "%s" holds a secret \(jwt_secret at line 1\) '
                     r'and is readable by every user: run "chmod 600 %s"'
                     % (re.escape(path), re.escape(path)), out), out
    assert SECRET not in out
    path, out = doctor_with(secret_line, 0o640)
    assert "is readable by its group" in out, out
    path, out = doctor_with("webhook.billing.secret = whsec_abc\n", 0o604)
    assert "webhook.billing.secret at line 1" in out, out
    url = "role.moderator_backend = postgresql://m:%s@127.0.0.1/db\n" % PASSWORD
    path, out = doctor_with(url, 0o644)
    assert "role.moderator_backend at line 1" in out and PASSWORD not in out, out
    # no warning: owner-only, a secret taken from the environment, no secret
    for text, mode in ((secret_line, 0o600), ("jwt_secret = $SOME_SECRET\n", 0o644),
                       ("concurrency = 3\n", 0o644),
                       ("role.moderator_backend = postgresql://m@127.0.0.1/db\n", 0o644)):
        path, out = doctor_with(text, mode)
        assert "holds a secret" not in out, (text, out)
