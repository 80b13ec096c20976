"""A claim commits without waiting for its WAL flush (worker/pg/queue.c,
docs/guarantees.md "Delivery"): the setting is local to the claim's own
transaction. The jobs' transactions, where effects and completion commit
together, keep the database's synchronous_commit; so do the outcome
statements after the claim on the same control connection."""
import pytest

from helpers import write_task

pytestmark = pytest.mark.integration

SCHEMA = """
create table sc_seen (
    task     text not null,
    setting  text not null,
    user_id  text default (auth.user_id())
);
alter table sc_seen enable row level security;
create policy sc_seen_own on sc_seen for all to authenticated_backend
    using ((select auth.user_id()) = user_id)
    with check ((select auth.user_id()) = user_id);
grant insert on sc_seen to authenticated_backend;
"""


def sync_on(db):
    # the test cluster runs with synchronous_commit off; this database, on
    db.sql("alter database \"%s\" set synchronous_commit = on" % db.name)
    assert db.val("show synchronous_commit") == "on"


def test_only_the_claim_commits_without_waiting_for_the_flush(rlsworker, db, tasks_dir):
    sync_on(db)
    db.sql(SCHEMA)
    write_task(tasks_dir, "sc_user", """
        -- task: sc.user
        -- run_as: user
        insert into sc_seen (task, setting) values ('user', current_setting('synchronous_commit'));
    """)
    write_task(tasks_dir, "sc_system", """
        -- task: sc.system
        -- run_as: system
        -- scope: global
        insert into sc_seen (task, setting, user_id)
        values ('system', current_setting('synchronous_commit'), 'sys');
    """)
    for i in range(5):
        db.sql("select rlsworker.add_job('sc.user', claims => '{\"sub\": \"u%d\"}')" % i)
        db.sql("select rlsworker.add_job('sc.system')")
    # user jobs run on the restricted pool, system jobs on the admin pool:
    # neither is the claim's connection, and neither may inherit its setting
    r = rlsworker.cli("run", "--once", "--tasks", str(tasks_dir), env=db.env(), timeout=120)
    assert r.returncode == 0, r.stderr
    assert db.val("select count(*) from rlsworker.jobs") == 0
    seen = db.sql("select task, setting, count(*) from sc_seen group by 1, 2 order by 1")
    assert seen == [("system", "on", 5), ("user", "on", 5)], seen


WATCH = """
create table sc_commit (what text not null, setting text not null);
create function sc_record() returns trigger language plpgsql as $$
begin
    insert into public.sc_commit values (tg_argv[0], current_setting('synchronous_commit'));
    return null;
end $$;
-- fires at the claim's commit, after the claim statement's set_config
create constraint trigger sc_claim after update on rlsworker.jobs
    deferrable initially deferred for each row
    when (old.state = 'queued' and new.state = 'running')
    execute function sc_record('claim');
-- fires in complete_jobs, the next statement on the same control connection
create trigger sc_complete after insert on rlsworker.job_history_batches
    for each row execute function sc_record('complete');
"""


def test_the_workers_claim_commits_asynchronously_and_nothing_after_it(rlsworker, db, tasks_dir):
    sync_on(db)
    db.sql(WATCH)
    db.sql("select rlsworker.add_job('noop') from generate_series(1, 3)")
    r = rlsworker.cli("run", "--once", "--tasks", str(tasks_dir), env=db.env(), timeout=120)
    assert r.returncode == 0, r.stderr
    assert db.val("select count(*) from rlsworker.jobs") == 0, \
        (r.stderr, db.sql("select state, last_error from rlsworker.jobs"))
    seen = db.sql("select what, setting from sc_commit group by 1, 2 order by 1")
    assert seen == [("claim", "off"), ("complete", "on")], seen
