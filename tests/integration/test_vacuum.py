"""The worker vacuums rlsworker.jobs every vacuum_every jobs it claims
(scheduler/vacuum.c): each claimed job leaves a dead entry at the head of
the claim index until a vacuum, so a long drain slowed down as it went.
The vacuums are counted by PostgreSQL (pg_stat_user_tables), not by the
worker's word."""
import pytest

pytestmark = pytest.mark.integration

JOBS = 600


def vacuums(db):
    return db.val("select vacuum_count from pg_stat_user_tables"
                  " where relid = 'rlsworker.jobs'::regclass", role="postgres")


def queue_noops(db, n):
    db.sql("select count(*) from rlsworker.add_jobs((select jsonb_agg(jsonb_build_object("
           "'task', 'noop')) from generate_series(1, %s)))", (n,))


def drain(rlsworker, db, tmp_path, *extra):
    r = rlsworker.cli("run", "--once", "--tasks", str(tmp_path), "--concurrency", "2",
                      "--claim-batch", "50", "--log-level", "debug", *extra,
                      env=db.env(), timeout=120)
    assert r.returncode == 0, r.stderr
    assert db.val("select count(*) from rlsworker.jobs") == 0
    assert db.val("select count(*) from rlsworker.job_runs where outcome = 'succeeded'") == JOBS
    return r.stderr


def test_the_worker_vacuums_the_queue_every_vacuum_every_claims(rlsworker, db, tmp_path):
    queue_noops(db, JOBS)
    before = vacuums(db)
    log = drain(rlsworker, db, tmp_path, "--vacuum-every", "200")
    # 600 claims, a vacuum after each 200 (one at a time: a claim that
    # comes while one runs waits for the next 200). The count is the
    # server's: a --once run this short can stop before the answer of its
    # last vacuum arrives, so its own "vacuumed" line is not always there.
    assert 1 <= vacuums(db) - before <= 3, log
    assert "could not vacuum" not in log


def test_vacuum_every_0_leaves_the_queue_to_autovacuum(rlsworker, db, tmp_path):
    queue_noops(db, JOBS)
    before = vacuums(db)
    log = drain(rlsworker, db, tmp_path, "--vacuum-every", "0")
    assert vacuums(db) == before
    assert "vacuumed rlsworker.jobs" not in log


def test_a_role_that_does_not_own_the_queue_says_so_once_and_drains(rlsworker, db, tmp_path):
    db.sql("alter table rlsworker.jobs owner to postgres;"
           " grant all on rlsworker.jobs to neondb_owner;"
           " grant all on sequence rlsworker.jobs_id_seq to neondb_owner", role="postgres")
    try:
        queue_noops(db, JOBS)
        before = vacuums(db)
        log = drain(rlsworker, db, tmp_path, "--vacuum-every", "100")
        assert vacuums(db) == before
        assert log.count("does not own rlsworker.jobs") == 1, log
        assert "vacuum_every 0" in log
    finally:
        db.sql("alter table rlsworker.jobs owner to neondb_owner", role="postgres")
