"""The claim and the failure path find their rows by primary key whatever
the statistics say (migration 013). A queue analyzed while empty is recorded
with 0 rows; a burst then arrives. Before 013 the claim's join back to the
table became a nested loop over the whole table for each picked row (2-7 s
per claim of 100 at 100 000 queued). The test counts the rows a claim and a
failure read in their transaction (pg_stat_get_xact_tuples_returned), not
time: 100 000 and more before, a few hundred now."""
import pytest

pytestmark = pytest.mark.integration

QUEUED = 20000


def read_rows(conn):
    return conn.execute(
        "select pg_stat_get_xact_tuples_returned('rlsworker.jobs'::regclass)"
        " + pg_stat_get_xact_tuples_fetched('rlsworker.jobs'::regclass)").fetchone()[0]


def test_claim_and_fail_read_few_rows_after_the_queue_was_analyzed_empty(db):
    db.sql("analyze rlsworker.jobs")
    assert db.val("select reltuples from pg_class where oid = 'rlsworker.jobs'::regclass") == 0
    db.sql("select count(*) from rlsworker.add_jobs((select jsonb_agg(jsonb_build_object("
           "'task', 'noop')) from generate_series(1, %s)))", (QUEUED,))
    db.sql("select rlsworker.register_worker('w-sp', 'h', 1, 0)")
    with db.connect() as conn:
        with conn.transaction():
            ids = [r[0] for r in conn.execute(
                "select id from rlsworker.claim_jobs('w-sp', 100)").fetchall()]
            assert len(ids) == 100
            claimed = read_rows(conn)
            assert claimed < 2000, "the claim read %d rows of %d" % (claimed, QUEUED)
            n = conn.execute(
                "select rlsworker.fail_jobs('w-sp', %s, array_fill('boom'::text, array[100]),"
                " array_fill(0::bigint, array[100]), array_fill(false, array[100]))",
                (ids,)).fetchone()[0]
            assert n == 100
            failed = read_rows(conn) - claimed
            assert failed < 2000, "fail_jobs read %d rows of %d" % (failed, QUEUED)
    assert db.val("select count(*) from rlsworker.jobs where state = 'queued'") == QUEUED
    assert db.val("select count(*) from rlsworker.job_runs where outcome = 'failed'") == 100


def test_completions_read_only_their_own_rows_while_many_are_held(db):
    """A completion finds each job by its primary key (migration 016). Its
    cached generic plan used to walk jobs_running_idx: every job the worker
    held (rlsworker.complete_jobs) or every running job (the group's token
    count, a job run alone), so a completion cost grew with the prefetch."""
    held = 1000
    db.sql("analyze rlsworker.jobs")
    db.sql("select count(*) from rlsworker.add_jobs((select jsonb_agg(jsonb_build_object("
           "'task', 'noop')) from generate_series(1, %s)))", (held,))
    db.sql("select rlsworker.register_worker('w-sp', 'h', 1, 0)")
    with db.connect() as conn:
        conn.execute("set plan_cache_mode = force_generic_plan")
        rows = conn.execute("select id, lock_token from rlsworker.claim_jobs('w-sp', %s)",
                            (held,)).fetchall()
        conn.commit()
        assert len(rows) == held
        for k in range(8):      # past the five custom plans plan_cache_mode = auto makes
            pair = rows[5 * k:5 * k + 5]
            with conn.transaction():
                before = read_rows(conn)
                n = conn.execute("select rlsworker.complete_jobs('w-sp', %s)",
                                 ([r[0] for r in pair[:2]],)).fetchone()[0]
                assert n == 2
                conn.execute("select rlsworker_api.complete_jobs(%s, %s)",
                             ([r[0] for r in pair[2:4]], [r[1] for r in pair[2:4]]))
                conn.execute("select rlsworker_api.complete_job(%s, %s)", pair[4])
                read = read_rows(conn) - before
                assert read < 50, "5 completions read %d rows of %d held" % (read, held)
        # a failure and a release named their rows the same way; their old
        # plans happened to stay on jobs_pkey here, so this guards the new ones
        for k in range(8):
            pair = [r[0] for r in rows[40 + 4 * k:44 + 4 * k]]
            with conn.transaction():
                before = read_rows(conn)
                n = conn.execute(
                    "select rlsworker.fail_jobs('w-sp', %s, array['boom', 'boom'],"
                    " array[0, 0]::bigint[], array[false, true])", (pair[:2],)).fetchone()[0]
                assert n == 2
                n = conn.execute("select rlsworker.release_jobs('w-sp', %s)",
                                 (pair[2:],)).fetchone()[0]
                assert n == 2
                read = read_rows(conn) - before
                assert read < 50, "a failure and a release read %d rows of %d held" % (read, held)
    assert db.val("select count(*) from rlsworker.jobs") == held - 40
    assert db.val("select count(*) from rlsworker.job_runs where outcome = 'succeeded'") == 40
    assert db.val("select count(*) from rlsworker.jobs where state = 'dead'") == 8
    assert db.val("select count(*) from rlsworker.jobs where state = 'queued'") == 24


def kept_plans(conn):
    """The generic plans this session keeps for the claim's UPDATE and the
    completion's statement: PL/pgSQL frees a plan made for one call's values
    when the call ends, and keeps a generic one in a CachedPlan context."""
    return {ident for (ident,) in conn.execute(
        "select case when ident ~ '^with u as' then 'claim' else 'completion' end"
        " from pg_backend_memory_contexts"
        " where name = 'CachedPlan' and ident ~ '^with (u|held) as \\(\\s+(update|select x.ctid)'")}


def test_the_claim_and_the_completion_keep_their_plan_from_the_first_call(db):
    """Migration 019: claim_jobs and complete_held use their generic plan.
    Under plan_cache_mode = auto a claim of one job and a completion of one
    job were planned again at every call (0.3 and 0.5 ms, more than they
    took to run); the plans they keep must still honour each call's limit,
    claim order and tokens."""
    db.sql("select count(*) from rlsworker.add_jobs(%s::jsonb)",
           ('[' + ','.join('{"task": "noop", "priority": %d}' % (k % 3) for k in range(30)) + ']',))
    db.sql("select rlsworker.register_worker('w-gp', 'h', 1, 0)")
    with db.connect(role="postgres", autocommit=True) as conn:
        one = conn.execute("select id, priority from rlsworker.claim_jobs('w-gp', 1)").fetchall()
        assert len(one) == 1 and one[0][1] == 0
        assert conn.execute("select rlsworker.complete_jobs('w-gp', %s)",
                            ([one[0][0]],)).fetchone()[0] == 1
        assert kept_plans(conn) == {"claim", "completion"}
        # the same plans, other values: a larger limit, claim order, tokens
        rows = conn.execute("select id, priority, lock_token"
                            " from rlsworker.claim_jobs('w-gp', 12)").fetchall()
        assert [r[1] for r in rows] == [0] * 9 + [1] * 3
        ids, tokens = [r[0] for r in rows], [r[2] for r in rows]
        with pytest.raises(Exception, match="no longer held"):
            conn.execute("select rlsworker_api.complete_jobs(%s, %s)",
                         (ids[:2], [tokens[1], tokens[0]]))
        conn.execute("select rlsworker_api.complete_jobs(%s, %s)", (ids, tokens))
        assert conn.execute("select count(*) from rlsworker.claim_jobs('w-gp', 3)").fetchone()[0] == 3
    assert db.val("select count(*) from rlsworker.jobs where state = 'queued'") == 14
    assert db.val("select count(*) from rlsworker.job_runs where outcome = 'succeeded'") == 13
