"""Migration 011 (issue 11, enqueue speed) keeps what enqueueing did: a
transaction that queues a ready job wakes the workers when it commits (and
not when it rolls back), a named queue gets its row, the row rules refuse
what they refused, job keys replace or keep, run_as is checked, add_jobs
pairs positions with ids."""
import json
import time

import psycopg
import pytest

# A worker that polls only every 10 minutes: a job it starts within seconds
# was announced by the notification.
NO_POLL = ("--poll-interval", "600000")


def wait_gone(db, where, timeout=15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if db.val("select count(*) from rlsworker.jobs where " + where) == 0:
            return True
        time.sleep(0.05)
    return False


def notifications(conn, wait=0.5):
    """Notifications on conn's channels that arrived by now or within `wait`
    seconds (each query lets psycopg read the ones that came)."""
    time.sleep(wait)
    conn.execute("select 1")
    got, conn.received = conn.received, []
    return got


@pytest.fixture
def listener(db):
    conn = psycopg.connect(db.conninfo(), autocommit=True)
    conn.received = []
    conn.add_notify_handler(lambda n: conn.received.append((n.channel, n.payload)))
    conn.execute("listen rlsworker_jobs")
    yield conn
    conn.close()


def test_idle_worker_wakes_for_add_job_and_add_jobs(rlsworker, db, tasks_dir):
    w = rlsworker.spawn("run", "--tasks", str(tasks_dir), *NO_POLL, env=db.env())
    w.wait_for("connected to the queue database")
    # the first job may be found by the start-up claim; after it the worker
    # only wakes for notifications
    db.sql("select rlsworker.add_job('noop', payload => '{\"probe\": 1}')")
    assert wait_gone(db, "true"), w.read_stderr()

    db.sql("select rlsworker.add_job('noop', payload => '{\"n\": 1}')")
    assert wait_gone(db, "true", timeout=5), "add_job did not wake the idle worker"

    db.sql("select count(*) from rlsworker.add_jobs(%s::jsonb)",
           (json.dumps([{"task": "noop", "payload": {"n": i}} for i in range(50)]),))
    assert wait_gone(db, "true", timeout=5), "add_jobs did not wake the idle worker"

    # per-row add_job in one statement, one named queue among them
    db.sql("select count(rlsworker.add_job('noop', queue => case when i = 3 then 'q.fast' end))"
           " from generate_series(1, 20) i")
    assert wait_gone(db, "true", timeout=5), "a statement of add_job calls did not wake it"
    assert db.val("select count(*) from rlsworker.queues where name = 'q.fast'") == 1
    w.stop()


def test_one_notification_per_transaction_none_on_rollback(db, listener):
    # no worker, nobody to wake (020); a registered worker waits for work
    db.sql("select rlsworker.add_job('noop')")
    assert notifications(listener) == []
    db.sql("select rlsworker.register_worker('w-waits', 'h', 1, 0)")
    db.sql("select rlsworker.add_job('noop')")
    assert notifications(listener) == [("rlsworker_jobs", "")]

    db.sql("select count(rlsworker.add_job('noop')) from generate_series(1, 100)")
    assert notifications(listener) == [("rlsworker_jobs", "")]

    db.sql("select count(*) from rlsworker.add_jobs(%s::jsonb)",
           (json.dumps([{"task": "noop"}] * 100),))
    assert notifications(listener) == [("rlsworker_jobs", "")]

    with db.connect() as conn:
        conn.execute("select rlsworker.add_job('noop')")
        conn.execute("select count(*) from rlsworker.add_jobs('[{\"task\": \"noop\"}]')")
        conn.rollback()
    assert notifications(listener) == []

    # a job for later wakes nobody; a ready one in the same transaction does
    db.sql("select rlsworker.add_job('noop', run_at => now() + interval '1 hour')")
    assert notifications(listener) == []
    db.sql("select count(*) from rlsworker.add_jobs(%s::jsonb)",
           (json.dumps([{"task": "noop", "run_at": "2999-01-01T00:00:00Z"}]),))
    assert notifications(listener) == []
    with db.connect() as conn:
        conn.execute("select rlsworker.add_job('noop', run_at => now() + interval '1 hour')")
        conn.execute("select rlsworker.add_job('noop')")
        conn.commit()
    assert notifications(listener) == [("rlsworker_jobs", "")]

    # a rolled-back savepoint takes its notification with it, and the next
    # ready job of the same transaction notifies again
    with db.connect() as conn:
        conn.execute("savepoint a")
        conn.execute("select rlsworker.add_job('noop')")
        conn.execute("rollback to savepoint a")
        conn.commit()
    assert notifications(listener) == []
    with db.connect() as conn:
        conn.execute("savepoint a")
        conn.execute("select rlsworker.add_job('noop')")
        conn.execute("rollback to savepoint a")
        conn.execute("select rlsworker.add_job('noop')")
        conn.commit()
    assert notifications(listener) == [("rlsworker_jobs", "")]

    # a plain INSERT (the path chain_job takes) notifies too
    db.sql("insert into rlsworker.jobs (task) values ('noop')")
    assert notifications(listener) == [("rlsworker_jobs", "")]

    # a busy worker (its claims come back full) is not notified (020)
    db.sql("select rlsworker.set_wants_notify('w-waits', false)")
    db.sql("select rlsworker.add_job('noop')")
    assert notifications(listener) == []

    # a job key that replaces a queued job follows the same rule (021): no
    # notification while the worker is busy (001's replace path sent one
    # on every call) ...
    first = db.val("select rlsworker.add_job('noop', job_key => 'debounce')")
    assert notifications(listener) == []
    assert db.val("select rlsworker.add_job('noop', '{\"v\": 2}', job_key => 'debounce')") == first
    assert notifications(listener) == []
    # ... one while it waits for work, none for a job replaced for later
    db.sql("select rlsworker.set_wants_notify('w-waits', true)")
    assert db.val("select rlsworker.add_job('noop', '{\"v\": 3}', job_key => 'debounce')") == first
    assert notifications(listener) == [("rlsworker_jobs", "")]
    db.sql("select rlsworker.add_job('noop', job_key => 'debounce',"
           " run_at => now() + interval '1 hour')")
    assert notifications(listener) == []
    assert db.val("select payload from rlsworker.jobs where id = %s", (first,)) == {}


def test_named_queue_rows(db):
    db.sql("select rlsworker.add_job('noop', queue => 'qa')")
    db.sql("select count(*) from rlsworker.add_jobs(%s::jsonb)",
           (json.dumps([{"task": "noop", "queue": q} for q in ("qb", "qb", "qc", "qb")]),))
    db.sql("select count(rlsworker.add_job('noop', queue => 'qd' || (i % 2))) "
           "from generate_series(1, 10) i")
    db.sql("insert into rlsworker.jobs (task, queue) values ('noop', 'qe')")
    # a queue registered in a rolled-back savepoint is registered again
    with db.connect() as conn:
        conn.execute("savepoint a")
        conn.execute("select rlsworker.add_job('noop', queue => 'qf')")
        conn.execute("rollback to savepoint a")
        conn.execute("select rlsworker.add_job('noop', queue => 'qf')")
        conn.commit()
    names = [r[0] for r in db.sql("select name from rlsworker.queues order by name")]
    assert names == ["qa", "qb", "qc", "qd0", "qd1", "qe", "qf"]
    # every queued job's queue has its row (claim_jobs needs it)
    assert db.val("select count(*) from rlsworker.jobs j where j.queue is not null and "
                  "not exists (select 1 from rlsworker.queues q where q.name = j.queue)") == 0


@pytest.mark.parametrize("call, message", [
    ("rlsworker.add_job(null)", "rlsworker.add_job: task must not be null"),
    ("rlsworker.add_job('noop', '[]')", "rlsworker.add_job: payload must be a JSON object, got array"),
    ("rlsworker.add_job('noop', claims => '[]')", "rlsworker.add_job: claims must be a JSON object"),
    ("rlsworker.add_job('noop', claims => '{\"sub\": 1}')", "rlsworker.add_job: claims.sub must be a string"),
    ("rlsworker.add_job('noop', claims => '{\"sub\": \"a\"}', subject => 'b')",
     'rlsworker.add_job: subject "b" differs from claims.sub'),
    ("rlsworker.add_job('noop', job_key_mode => 'merge')",
     'rlsworker.add_job: job_key_mode must be replace or keep, got "merge"'),
    ("rlsworker.add_jobs('{}')", "rlsworker.add_jobs: jobs must be a JSON array of job objects"),
    ("rlsworker.add_jobs('[{\"task\": \"noop\"}, 3]')", "rlsworker.add_jobs: job 2 is invalid: it is not a JSON object"),
    ("rlsworker.add_jobs('[{\"payload\": {}}]')", "rlsworker.add_jobs: job 1 is invalid: task must be a string"),
    ("rlsworker.add_jobs('[{\"task\": \"noop\", \"when\": 1}]')",
     "rlsworker.add_jobs: job 1 is invalid: it has a key add_job does not take"),
    ("rlsworker.add_jobs('[{\"task\": \"noop\", \"payload\": []}]')",
     "rlsworker.add_jobs: job 1 is invalid: payload must be a JSON object"),
    ("rlsworker.add_jobs('[{\"task\": \"noop\", \"claims\": 1}]')",
     "rlsworker.add_jobs: job 1 is invalid: claims must be a JSON object"),
    ("rlsworker.add_jobs('[{\"task\": \"noop\", \"claims\": {\"sub\": 2}}]')",
     "rlsworker.add_jobs: job 1 is invalid: claims.sub must be a string"),
    ("rlsworker.add_jobs('[{\"task\": \"noop\", \"subject\": \"x\", \"claims\": {\"sub\": \"y\"}}]')",
     "rlsworker.add_jobs: job 1 is invalid: subject differs from claims.sub"),
])
def test_validation_messages(db, call, message):
    with pytest.raises(psycopg.errors.RaiseException) as e:
        db.sql("select * from " + call)
    assert e.value.diag.message_primary == message
    assert db.val("select count(*) from rlsworker.jobs") == 0


def test_big_claims_refused(db):
    claims = json.dumps({"sub": "a", "pad": "x" * 9000})
    with pytest.raises(psycopg.errors.RaiseException, match="claims are [0-9]+ bytes, more than the 8192"):
        db.sql("select rlsworker.add_job('noop', claims => %s::jsonb)", (claims,))
    with pytest.raises(psycopg.errors.RaiseException,
                       match="job 1 is invalid: claims are more than the 8192 bytes allowed"):
        db.sql("select * from rlsworker.add_jobs(%s::jsonb)",
               (json.dumps([{"task": "noop", "claims": json.loads(claims)}]),))


@pytest.mark.parametrize("column, value, constraint", [
    ("task", "'bad task'", "jobs_task_check"),
    ("task", "'" + "t" * 129 + "'", "jobs_task_check"),
    ("queue", "''", "jobs_queue_check"),
    ("queue", "'" + "q" * 129 + "'", "jobs_queue_check"),
    ("subject", "'" + "s" * 256 + "'", "jobs_subject_check"),
    ("max_attempts", "0", "jobs_max_attempts_check"),
    ("max_attempts", "1001", "jobs_max_attempts_check"),
    ("payload", "'[]'", "jobs_payload_check"),
    ("claims", "'\"x\"'", "jobs_claims_check"),
    ("state", "'done'", "jobs_state_check"),
    ("errors", "'{}'", "jobs_errors_check"),
])
def test_row_rules_refuse_what_they_refused(db, column, value, constraint):
    with pytest.raises(psycopg.errors.CheckViolation) as e:
        db.sql("insert into rlsworker.jobs (task, %s) values ('noop', %s)" % (column, value)
               if column != "task" else "insert into rlsworker.jobs (task) values (%s)" % value)
    assert e.value.diag.constraint_name == constraint
    assert db.val("select count(*) from rlsworker.jobs") == 0


def test_row_rules_accept_the_limits(db):
    db.sql("insert into rlsworker.jobs (task, queue, subject, run_as, max_attempts) values "
           "(%s, %s, %s, 'user', 1000)", ("A-z_0.9:" + "t" * 120, "q" * 128, "s" * 255))
    db.sql("select rlsworker.add_job('noop', run_as => 'system', max_attempts => 1)")
    assert db.val("select count(*) from rlsworker.jobs") == 2


def test_add_job_through_a_bad_task_name_is_refused(db):
    with pytest.raises(psycopg.errors.CheckViolation) as e:
        db.sql("select rlsworker.add_job('no spaces')")
    assert e.value.diag.constraint_name == "jobs_task_check"
    with pytest.raises(psycopg.errors.CheckViolation):
        db.sql("select * from rlsworker.add_jobs('[{\"task\": \"noop\"}, {\"task\": \"a b\"}]')")
    assert db.val("select count(*) from rlsworker.jobs") == 0


def test_job_keys_replace_and_keep(db):
    first = db.val("select rlsworker.add_job('noop', '{\"v\": 1}', job_key => 'k')")
    again = db.val("select rlsworker.add_job('noop', '{\"v\": 2}', job_key => 'k')")
    assert again == first
    assert db.val("select payload->>'v' from rlsworker.jobs where id = %s", (first,)) == "2"
    kept = db.val("select rlsworker.add_job('noop', '{\"v\": 3}', job_key => 'k', "
                  "job_key_mode => 'keep')")
    assert kept == first
    assert db.val("select payload->>'v' from rlsworker.jobs where id = %s", (first,)) == "2"
    rows = db.sql("select idx, id from rlsworker.add_jobs(%s::jsonb) order by idx",
                  (json.dumps([{"task": "noop"}, {"task": "noop", "job_key": "k",
                                                  "payload": {"v": 4}},
                               {"task": "noop", "job_key": None}]),))
    assert [r[0] for r in rows] == [1, 2, 3]
    assert rows[1][1] == first
    assert db.val("select payload->>'v' from rlsworker.jobs where id = %s", (first,)) == "4"
    assert db.val("select count(*) from rlsworker.jobs") == 3
    # a running job with the key keeps running; a new job is queued after it
    db.sql("update rlsworker.jobs set state = 'running', locked_by = 'w' where id = %s", (first,))
    after = db.val("select rlsworker.add_job('noop', job_key => 'k')")
    assert after != first
    assert db.val("select job_key from rlsworker.jobs where id = %s", (first,)) is None


def test_add_jobs_pairs_positions_with_ids(db):
    specs = [{"task": "noop", "payload": {"i": i}} for i in range(300)]
    specs[7]["job_key"] = "seven"
    specs[100]["queue"] = "q1"
    specs[200]["claims"] = {"sub": "alice", "role": "authenticated"}
    rows = db.sql("select idx, id from rlsworker.add_jobs(%s::jsonb)", (json.dumps(specs),))
    assert sorted(r[0] for r in rows) == list(range(1, 301))
    for idx, jid in rows:
        assert db.val("select (payload->>'i')::int from rlsworker.jobs where id = %s",
                      (jid,)) == idx - 1
    unkeyed = [jid for idx, jid in sorted(rows) if idx != 8]
    assert unkeyed == sorted(unkeyed)
    assert db.one("select subject, claims_verified_at is not null from rlsworker.jobs "
                  "where payload->>'i' = '200'") == ("alice", True)
    # ids keep coming from the identity afterwards
    nxt = db.val("select rlsworker.add_job('noop')")
    assert nxt > max(r[1] for r in rows)


def test_run_as_still_refused(db):
    db.pg.create_role("enq_super_role", "login superuser")
    # 006's trigger answers first, as before 011, even for a name no role
    # could have (its hint says what run_as may be)
    for role, code in (("enq_super_role", "42501"), ("no_such_role_x", "42704"),
                       ("pg_monitor", "42939"), ("neondb_owner", "42501"),
                       ("1role", "42704"), ("r" * 64, "42704")):
        with pytest.raises(psycopg.Error) as e:
            db.sql("select rlsworker.add_job('noop', run_as => %s)", (role,))
        assert e.value.sqlstate == code, (role, e.value)
        assert e.value.diag.message_primary.startswith('run_as "%s" is refused' % role[:63])
        assert e.value.diag.message_hint.startswith("use run_as user")
        with pytest.raises(psycopg.Error) as e:
            db.sql("select * from rlsworker.add_jobs(%s::jsonb)",
                   (json.dumps([{"task": "noop", "run_as": role}]),))
        assert e.value.sqlstate == code
    db.sql("select rlsworker.add_job('noop', run_as => 'authenticated_backend')")
    assert db.val("select count(*) from rlsworker.jobs") == 1


def test_run_as_naming_a_role_that_is_no_plain_identifier(db):
    """001's run_as pattern (now checked in 006's trigger) still refuses an
    existing, restricted role whose name needs quotes, with the message the
    table's check constraint gave."""
    db.pg.create_role("enq role")
    for call in ("select rlsworker.add_job('noop', run_as => %s)",
                 "select * from rlsworker.add_jobs(jsonb_build_array("
                 "jsonb_build_object('task', 'noop', 'run_as', %s::text)))"):
        with pytest.raises(psycopg.errors.CheckViolation) as e:
            db.sql(call, ("enq role",))
        assert e.value.diag.constraint_name == "jobs_run_as_check"
        assert e.value.diag.message_primary == \
            'new row for relation "jobs" violates check constraint "jobs_run_as_check"'
    jid = db.val("select rlsworker.add_job('noop', run_as => 'authenticated_backend')")
    with pytest.raises(psycopg.errors.CheckViolation):
        db.sql("update rlsworker.jobs set run_as = 'enq role' where id = %s", (jid,))
    assert db.val("select run_as from rlsworker.jobs") == "authenticated_backend"


def test_job_keys_are_unique_through_a_partial_index(db):
    """015: keys are unique among the jobs that have one; the index holds no
    entry for the others, so claiming, failing or releasing a keyless job
    writes no entry into it."""
    indexes = db.sql("select pg_get_indexdef(i.indexrelid), i.indisunique from pg_index i"
                     " where i.indrelid = 'rlsworker.jobs'::regclass"
                     " and pg_get_indexdef(i.indexrelid) like '%(job_key)%'")
    assert indexes == [("CREATE UNIQUE INDEX jobs_job_key_idx ON rlsworker.jobs USING btree"
                        " (job_key) WHERE (job_key IS NOT NULL)", True)], indexes
    first = db.val("select rlsworker.add_job('noop', job_key => 'k1')")
    assert db.val("select rlsworker.add_job('noop', job_key => 'k1', job_key_mode => 'keep')") == first
    db.sql("select rlsworker.add_job('noop') from generate_series(1, 3)")
    with pytest.raises(psycopg.errors.UniqueViolation):
        db.sql("insert into rlsworker.jobs (task, job_key) values ('noop', 'k1')")
    assert db.val("select count(*) from rlsworker.jobs") == 4
