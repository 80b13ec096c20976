"""Issue 15: every way a job comes in works as documented and is checked when
it loads. Cron lines for a user, crontab task checks, webhook subjects, CLI
flags, unknown tasks over HTTP, the cancelled state, attempt errors."""
import base64
import hashlib
import hmac
import http.client
import json
import os
import signal
import time

import pytest

from helpers import free_port, wait_until, write_task

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
    ("@daily todos.complete_all", "runs as user, so each job needs the claims of a user"),
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
    w.wait_for(r"could not reload crontab.*crontab:2: task todos.complete_all runs as user",
               timeout=10)
    time.sleep(2.5)
    assert db.val("select count(*) from rlsworker.cron_state where id in ('new', 'nosub')") == 0
    w.stop()


# --- 2. webhooks for a subject ------------------------------------------------

WEBHOOK_KEY = b"0123456789abcdef0123456789abcdef"
WEBHOOK_SECRET = "whsec_" + base64.b64encode(WEBHOOK_KEY).decode()


def sign(msg_id, ts, body):
    mac = hmac.new(WEBHOOK_KEY, ("%s.%s." % (msg_id, ts)).encode() + body,
                   hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def request(port, method, path, body=None, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        raw = resp.read().decode()
        ctype = resp.getheader("Content-Type", "")
        return resp.status, json.loads(raw) if ctype.startswith("application/json") else raw
    finally:
        conn.close()


def post_hook(port, source, payload, msg_id):
    body = json.dumps(payload).encode()
    ts = str(int(time.time()))
    return request(port, "POST", "/v1/webhooks/" + source, body,
                   {"Content-Type": "application/json", "webhook-id": msg_id,
                    "webhook-timestamp": ts, "webhook-signature": sign(msg_id, ts, body)})


def start_listener(rlsworker, db, tasks_dir, tmp_path, conf_text, env_extra=None):
    port = free_port()
    conf = tmp_path / "worker.conf"
    conf.write_text(conf_text.replace("SECRET", WEBHOOK_SECRET))
    w = rlsworker.spawn("run", "--listen", "127.0.0.1:%d" % port, "--tasks", str(tasks_dir),
                        "--config", str(conf), env=db.env(**(env_extra or {})))
    w.wait_for(r"http intake listening on")
    wait_until(lambda: request(port, "GET", "/readyz")[0] == 200, 20, "readyz")
    return w, port


HOOK_CONF = ("webhook.purge.secret = SECRET\nwebhook.purge.task = purge_completed\n"
             "webhook.purge.subject = /data/user~1id\n"
             "webhook.done.secret = SECRET\nwebhook.done.task = todos.complete_all\n"
             "webhook.done.subject = /data/owners/0\n")


def test_webhook_subject_from_json_pointer_runs_for_that_user(rlsworker, db, tasks_dir,
                                                              tmp_path):
    demo_tasks(tasks_dir)
    db.sql("insert into todos (user_id, task, is_complete) values"
           " ('carol', 'c-done', true), ('carol', 'c-open', false),"
           " ('dave', 'd-done', true), ('dave', 'd-open', false)")
    w, port = start_listener(rlsworker, db, tasks_dir, tmp_path, HOOK_CONF)
    # system task with scope: subject
    status, data = post_hook(port, "purge", {"data": {"user/id": "carol"}}, "m1")
    assert status == 202, data
    wait_until(lambda: not db.sql("select 1 from todos where task = 'c-done'"), 20, "purge")
    assert db.val("select count(*) from todos where task = 'd-done'") == 1
    # user task: claims {"sub": "dave"} from the body, RLS holds
    status, data = post_hook(port, "done", {"data": {"owners": ["dave", "carol"]}}, "m2")
    assert status == 202, data
    wait_until(lambda: db.val("select is_complete from todos where task = 'd-open'"), 20,
               "dave's todo completed")
    assert db.val("select is_complete from todos where task = 'c-open'") is False
    w.stop()


def test_webhook_without_subject_is_refused_and_not_remembered(rlsworker, db, tasks_dir,
                                                               tmp_path):
    demo_tasks(tasks_dir)
    w, port = start_listener(rlsworker, db, tasks_dir, tmp_path, HOOK_CONF)
    for body in ({"data": {}}, {"data": {"user/id": ""}}, {"data": {"user/id": {"a": 1}}},
                 {"data": "carol"}):
        status, data = post_hook(port, "purge", body, "m-missing")
        assert status == 422 and data["error"] == "no_subject", data
    assert db.val("select count(*) from rlsworker.webhook_seen") == 0
    assert db.val("select count(*) from rlsworker.jobs") == 0
    # the sender's redelivery, fixed, is not a replay
    status, data = post_hook(port, "purge", {"data": {"user/id": 42}}, "m-missing")
    assert status == 202, data
    # queued, running, or already run by the worker: the job or its run has it
    assert db.val("select string_agg(distinct subject, ',') from (select subject from"
                  " rlsworker.jobs union all select subject from rlsworker.job_runs) s") == "42"
    w.stop()


@pytest.mark.parametrize("conf,msg", [
    ("webhook.x.secret = SECRET\nwebhook.x.task = purge_completed\n",
     "webhook.x.task: task purge_completed has scope: subject"),
    ("webhook.x.secret = SECRET\nwebhook.x.task = todos.complete_all\n",
     "webhook.x.task: task todos.complete_all runs as user"),
    ("webhook.x.secret = SECRET\nwebhook.x.task = nope\n", 'webhook.x.task "nope" is not a loaded'),
    ("webhook.x.secret = SECRET\nwebhook.x.task = noop\nwebhook.x.subject = data\n",
     "webhook.x.subject must be a JSON pointer"),
])
def test_webhook_source_task_is_checked_at_start(rlsworker, db, tasks_dir, tmp_path, conf, msg):
    demo_tasks(tasks_dir)
    path = tmp_path / "bad.conf"
    path.write_text(conf.replace("SECRET", WEBHOOK_SECRET))
    r = rlsworker.cli("run", "--listen", "127.0.0.1:%d" % free_port(), "--tasks", str(tasks_dir),
                      "--config", str(path), env=db.env(), timeout=30)
    assert r.returncode != 0
    assert msg in r.stderr, r.stderr


# --- 4. a task name over HTTP: unknown and not-enqueueable answer the same ----

JWT_SECRET = "entry-paths-secret-" + "z" * 32


def test_unknown_and_not_enqueueable_tasks_answer_the_same(rlsworker, db, tasks_dir, tmp_path):
    import jwt
    demo_tasks(tasks_dir)
    w, port = start_listener(rlsworker, db, tasks_dir, tmp_path, "",
                             env_extra={"JWT_SECRET": JWT_SECRET})
    now = int(time.time())
    tok = jwt.encode({"sub": "carol", "iat": now, "exp": now + 300}, JWT_SECRET,
                     algorithm="HS256")

    def post(task, tok=tok):
        headers = {"Content-Type": "application/json"}
        if tok:
            headers["Authorization"] = "Bearer " + tok
        return request(port, "POST", "/v1/jobs", json.dumps({"task": task}), headers)

    unknown = post("todos.complet_all")                 # mistyped
    exists = post("todos.complete_all")                 # exists, no "-- enqueue: user"
    system = post("purge_completed")
    assert unknown[0] == exists[0] == system[0] == 403
    assert unknown[1]["message"] == ('unknown task "todos.complet_all": no task of that name '
                                     'accepts jobs over HTTP')
    assert exists[1]["message"] == unknown[1]["message"].replace("complet_all", "complete_all")
    assert "enqueue" not in json.dumps([unknown, exists, system]).replace("jobs over", "")
    # without a token nothing about tasks is said at all
    status, data = post("todos.complete_all", tok=None)
    assert status == 401 and "task" not in data["message"]
    assert db.val("select count(*) from rlsworker.jobs") == 0
    w.stop()
    log = w.read_stderr()
    assert "refused task todos.complet_all: no such task" in log
    assert "refused task todos.complete_all: its file lacks" in log


# --- 3. flags that are both global and a subcommand's -------------------------

def test_add_max_attempts_is_the_jobs(db, rlsworker):
    r = rlsworker.cli("add", "noop", "--max-attempts", "7", "--priority", "3", env=db.env())
    assert r.returncode == 0, r.stderr
    r = rlsworker.cli("add", "noop", "--max-attempts=9", env=db.env())
    assert r.returncode == 0, r.stderr
    assert [row[0] for row in db.sql("select max_attempts from rlsworker.jobs order by id")] \
        == [7, 9]
    # the global option still works for run, and is refused where add checks it
    r = rlsworker.cli("add", "noop", "--max-attempts", "x", env=db.env())
    assert r.returncode == 2 and "--max-attempts" in r.stderr


# Flags a subcommand lists in --help that are also global options, and what
# they mean there: "same" (the global option, e.g. run --tasks) or "own" (the
# subcommand's meaning wins: the config parser leaves them alone).
SHARED = {
    ("migrate", "--database-url"): "same", ("migrate", "--config"): "same",
    ("run", "--concurrency"): "same", ("run", "--config"): "same",
    ("run", "--crontab"): "same", ("run", "--listen"): "same", ("run", "--tasks"): "same",
    ("add", "--max-attempts"): "own",
    ("cron", "--tasks"): "same",   # cron check reads no config: its own flag, same meaning
    ("tasks", "--tasks"): "same",
}


def test_every_shared_flag_is_settled(rlsworker):
    import re
    glob = set(re.findall(r"^  (--[a-z][a-z-]*)", rlsworker.cli("--help").stdout, re.M))
    assert "--max-attempts" in glob and "--tasks" in glob
    for cmd in ("migrate", "run", "add", "jobs", "doctor", "cron", "token", "tasks"):
        r = rlsworker.cli(cmd, "--help")
        own = set(re.findall(r"--[a-z][a-z-]*", r.stdout + r.stderr)) - {"--help"}
        for flag in sorted(own & glob):
            assert (cmd, flag) in SHARED, (
                "rlsworker %s %s is also a global option: settle what it means "
                "(worker/cli/cli.c own_flags) and list it here" % (cmd, flag))


# --- 5. cancelled is not dead; bulk cancel and retry ---------------------------

def add(db, task, **kw):
    cols = ", ".join("%s => %%s" % k for k in kw)
    return db.val("select rlsworker.add_job(%%s%s)" % (", " + cols if cols else ""),
                  (task, *kw.values()))


def test_cancel_is_its_own_state_and_retry_brings_it_back(db, rlsworker):
    job = add(db, "noop", run_at="2999-01-01T00:00:00Z")
    r = rlsworker.cli("jobs", "cancel", str(job), env=db.env())
    assert r.returncode == 0 and "job %d: cancelled" % job in r.stdout, r.stdout + r.stderr
    assert db.val("select state from rlsworker.jobs where id = %s", (job,)) == "cancelled"
    r = rlsworker.cli("jobs", "cancel", str(job), env=db.env())
    assert r.returncode == 0 and "already cancelled" in r.stdout, r.stdout
    r = rlsworker.cli("jobs", "list", "--state", "cancelled", env=db.env())
    assert r.returncode == 0 and str(job) in r.stdout
    r = rlsworker.cli("jobs", "retry", str(job), env=db.env())
    assert r.returncode == 0 and "queued" in r.stdout
    assert db.val("select state from rlsworker.jobs where id = %s", (job,)) == "queued"


def test_bulk_cancel_and_retry_by_filter(db, rlsworker):
    later = "2999-01-01T00:00:00Z"
    a1 = add(db, "noop", queue="q1", subject="alice", job_key="imp:1", run_at=later)
    a2 = add(db, "noop", queue="q1", subject="bob", job_key="imp:2", run_at=later)
    a3 = add(db, "noop", queue="q2", subject="alice", job_key="exp:1", run_at=later)
    b1 = add(db, "other", queue="q1", subject="alice", run_at=later)
    db.sql("update rlsworker.jobs set state = 'dead' where id = %s", (a2,))

    def states():
        return dict(db.sql("select id, state from rlsworker.jobs"))

    r = rlsworker.cli("jobs", "cancel", "--task", "noop", "--queue", "q1", env=db.env())
    assert r.returncode == 0, r.stderr
    assert "cancelled 1 queued job; asked 0 running jobs to stop" in r.stdout, r.stdout
    assert states() == {a1: "cancelled", a2: "dead", a3: "queued", b1: "queued"}
    r = rlsworker.cli("jobs", "cancel", "--key-prefix", "exp:", "--json", env=db.env())
    assert json.loads(r.stdout) == {"cancelled": 1, "cancelling": 0}
    r = rlsworker.cli("jobs", "cancel", "--subject", "alice", "--state", "queued",
                      env=db.env())
    assert "cancelled 1 queued job" in r.stdout          # b1
    assert states() == {a1: "cancelled", a2: "dead", a3: "cancelled", b1: "cancelled"}
    # retry by filter: dead and cancelled by default
    r = rlsworker.cli("jobs", "retry", "--queue", "q1", "--task", "noop", env=db.env())
    assert r.returncode == 0 and "put 2 jobs back in the queue" in r.stdout, r.stdout
    assert states() == {a1: "queued", a2: "queued", a3: "cancelled", b1: "cancelled"}
    # SQL: the same functions
    assert db.val("select rlsworker.retry_jobs(state => 'cancelled', subject => 'alice')") == 2
    assert db.one("select * from rlsworker.cancel_jobs(key_prefix => 'imp:')") == (2, 0)
    # no filter at all is refused, and so is a state that cannot be cancelled
    r = rlsworker.cli("jobs", "cancel", env=db.env())
    assert r.returncode == 2
    r = rlsworker.cli("jobs", "cancel", "--state", "dead", env=db.env())
    assert r.returncode == 1 and "state must be one of queued, running" in r.stderr
    with pytest.raises(Exception, match="at least one filter"):
        db.val("select rlsworker.retry_jobs()")


SLEEPY = """
-- run_as: system
-- scope: global

select pg_sleep(30);
"""


def test_cancelling_a_running_job_ends_cancelled(db, rlsworker, tasks_dir):
    write_task(tasks_dir, "sleepy", SLEEPY)
    job = add(db, "sleepy", queue="slow")
    w = rlsworker.spawn("run", "--tasks", tasks_dir, env=db.env())
    wait_until(lambda: db.val("select state from rlsworker.jobs where id = %s", (job,))
               == "running", 20, "the job to run")
    r = rlsworker.cli("jobs", "cancel", "--queue", "slow", env=db.env())
    assert "asked 1 running job to stop" in r.stdout, r.stdout
    wait_until(lambda: db.val("select state from rlsworker.jobs where id = %s", (job,))
               == "cancelled", 20, "the job to end cancelled")
    w.stop()


# --- 6. each attempt's error is kept (the last 10) -----------------------------

FAILS_DIFFERENTLY = """
-- run_as: system
-- scope: global
-- max_attempts: 12

select case when :attempt::int % 2 = 0 then 1 / (:attempt::int - :attempt::int) else ('odd' || :attempt)::int end;
"""


def test_each_attempts_error_is_kept_bounded(db, rlsworker, tasks_dir):
    write_task(tasks_dir, "flaky", FAILS_DIFFERENTLY)
    job = add(db, "flaky")
    w = rlsworker.spawn("run", "--tasks", tasks_dir, "--backoff-base", "1", "--backoff-max", "1", "--poll-interval", "50",
                        env=db.env())
    wait_until(lambda: db.val("select state from rlsworker.jobs where id = %s", (job,))
               == "dead", 60, "the job to die")
    w.stop()
    errors = db.val("select errors from rlsworker.jobs where id = %s", (job,))
    assert [e["attempt"] for e in errors] == list(range(3, 13))
    for e in errors:
        want = "division by zero" if e["attempt"] % 2 == 0 else "invalid input syntax"
        assert want in e["error"] and e["at"], e
    long = db.val("select rlsworker.push_error('[]', 1, repeat('y', 5000))")
    assert len(long[0]["error"]) == 1024
    r = rlsworker.cli("jobs", "show", str(job), env=db.env())
    assert "errors        10 kept" in r.stdout, r.stdout
    assert "attempt 3 at " in r.stdout and "attempt 12 at " in r.stdout
    # a retry keeps the story; a job_key replace starts a new one
    assert db.val("select rlsworker.retry_job(%s)", (job,)) == "queued"
    assert len(db.val("select errors from rlsworker.jobs where id = %s", (job,))) == 10
    k = add(db, "noop", job_key="k1", run_at="2999-01-01T00:00:00Z")
    db.sql("update rlsworker.jobs set last_error = 'x', errors = '[{\"attempt\": 1}]'"
           " where id = %s", (k,))
    add(db, "noop", job_key="k1")
    assert db.val("select errors from rlsworker.jobs where id = %s", (k,)) == []


# --- 7. doctor says which configured connection each finding is about ---------

def test_doctor_labels_each_finding_with_its_configured_connection(db, rlsworker):
    env = db.env()
    env.pop("DATABASE_ADMIN_BACKEND_URL")
    r = rlsworker.cli("doctor", "--json", env=env, timeout=60)
    report = json.loads(r.stdout)
    configs = {c.get("config") for c in report["checks"]}
    assert configs == {"DATABASE_URL", "DATABASE_AUTHENTICATED_URL",
                       "role.moderator_backend"}, configs
    # moderator_backend reads every todo: its finding is labelled with its entry
    policy = [c for c in report["checks"] if c["id"] == "rls.policy_true"
              and c["status"] == "WARN"]
    assert policy and all(c["config"] == "role.moderator_backend" for c in policy), policy
    text = rlsworker.cli("doctor", env=env, timeout=60).stdout
    assert "[role.moderator_backend] role \"moderator_backend\": is subject to policy" in text
    # a URL under the moderator's name that logs in as someone else: the
    # finding names the configured entry, not only the login
    env["DATABASE_MODERATOR_URL"] = db.auth_url
    report = json.loads(rlsworker.cli("doctor", "--json", env=env, timeout=60).stdout)
    ident = [c for c in report["checks"] if c["id"] == "restricted.identity"
             and c["status"] == "FAIL"]
    assert ident and ident[0]["config"] == "role.moderator_backend", ident


def test_purge_dead_jobs_also_purges_cancelled(db, rlsworker, tasks_dir):
    later = "2999-01-01T00:00:00Z"
    dead = add(db, "noop", subject="alice", run_at=later)
    cancelled = add(db, "noop", subject="alice", run_at=later)
    bobs = add(db, "noop", subject="bob", run_at=later)
    db.sql("update rlsworker.jobs set state = 'dead' where id = %s", (dead,))
    assert db.val("select rlsworker.cancel_job(%s)", (cancelled,)) == "cancelled"
    assert db.val("select rlsworker.cancel_job(%s)", (bobs,)) == "cancelled"
    add(db, "purge_dead_jobs", subject="alice")
    r = rlsworker.cli("run", "--once", "--tasks", tasks_dir, env=db.env(), timeout=60)
    assert r.returncode == 0, r.stderr
    assert [row[0] for row in db.sql("select id from rlsworker.jobs order by id")] == [bobs]
