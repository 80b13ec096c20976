"""claim_settings (docs/security.md, "Where policies find the claims"): user
jobs can also get request.jwt.claim.<name>, transaction-locally, for policies
written for older PostgREST or Supabase's auth.uid() fallback. A real
policy reads current_setting('request.jwt.claim.sub', true)."""
import json

import pytest

from helpers import write_task

pytestmark = pytest.mark.integration


@pytest.fixture
def legacy(db, tasks_dir):
    """legacy_notes: RLS by request.jwt.claim.sub only; probe: what a job saw."""
    db.sql("""
        create table legacy_notes (owner text not null, body text not null);
        alter table legacy_notes enable row level security;
        create policy legacy_own on legacy_notes for all to authenticated_backend
            using (owner = current_setting('request.jwt.claim.sub', true))
            with check (owner = current_setting('request.jwt.claim.sub', true));
        grant select, insert, update on legacy_notes to authenticated_backend;
        insert into legacy_notes values ('alice', 'a'), ('bob', 'b'), ('bob', 'b2');

        create table probe (job_id bigint, sub text, email text, visible bigint,
                            settings text);
        alter table probe enable row level security;
        create policy probe_insert on probe for insert with check (true);
        grant insert on probe to authenticated_backend;
    """)
    write_task(tasks_dir, "legacy_probe", """
        -- task: legacy_probe
        -- run_as: user
        -- max_attempts: 1
        insert into probe
        select :job_id, current_setting('request.jwt.claim.sub', true),
               current_setting('request.jwt.claim.email', true),
               (select count(*) from legacy_notes),
               (select string_agg(n || '=' || v, ',' order by n)
                  from (select n, current_setting('request.jwt.claim.' || n, true) v
                          from unnest(array['sub', 'email', 'role', 'aal', 'app_metadata',
                                            'amr', 'under_score', 'bad_name']) n) s
                 where v <> '');
        update legacy_notes set body = body || '+';
    """)
    return db


def add(db, claims):
    return db.val("select rlsworker.add_job('legacy_probe', '{}', claims => %s::jsonb)",
                  (json.dumps(claims),))


def run(rlsworker, db, tasks_dir, *flags):
    r = rlsworker.cli("run", "--once", "--tasks", str(tasks_dir), "--concurrency", "1",
                      "--pool-size", "1", *flags, env=db.env(), timeout=120)
    assert r.returncode == 0, r.stderr
    return r


def probe(db, job_id):
    rows = db.sql("select sub, email, visible, settings from probe where job_id = %s",
                  (job_id,))
    assert len(rows) == 1, rows
    return rows[0]


def bodies(db):
    return dict(db.sql("select owner, string_agg(body, ',' order by body) from legacy_notes "
                       "group by owner"))


def test_off_by_default_a_claim_sub_policy_sees_nothing(rlsworker, legacy, tasks_dir):
    i = add(legacy, {"sub": "alice", "email": "a@example.test"})
    run(rlsworker, legacy, tasks_dir)
    sub, email, visible, settings = probe(legacy, i)
    assert (sub or "", email or "", visible, settings) == ("", "", 0, None)
    assert bodies(legacy) == {"alice": "a", "bob": "b,b2"}


def test_sub_sets_only_request_jwt_claim_sub(rlsworker, legacy, tasks_dir):
    alice = add(legacy, {"sub": "alice", "email": "a@example.test"})
    bob = add(legacy, {"sub": "bob"})
    run(rlsworker, legacy, tasks_dir, "--claim-settings", "sub")
    assert probe(legacy, alice) == ("alice", None, 1, "sub=alice")
    assert probe(legacy, bob) == ("bob", None, 2, "sub=bob")
    assert bodies(legacy) == {"alice": "a+", "bob": "b+,b2+"}


def test_all_sets_safe_top_level_string_claims(rlsworker, legacy, tasks_dir):
    i = add(legacy, {"sub": "alice", "email": "a@example.test", "role": "authenticated",
                     "aal": 1, "app_metadata": {"plan": "pro"}, "amr": ["pwd"],
                     "bad-name": "x", "bad_name ": "v", "x;drop table probe": "y", "1st": "z",
                     "caf\u00e9": "w", "under_score": "u"})
    run(rlsworker, legacy, tasks_dir, "--claim-settings", "all")
    sub, email, visible, settings = probe(legacy, i)
    assert (sub, email, visible) == ("alice", "a@example.test", 1)
    # numbers, objects, arrays and names that are not plain identifiers are
    # not set (a name PostgreSQL refused would have failed the job)
    assert settings == "email=a@example.test,role=authenticated,sub=alice,under_score=u"


def test_names_differing_only_in_case_are_skipped(rlsworker, legacy, tasks_dir):
    """Setting names are case-insensitive: "SUB" must not stand in for "sub"."""
    i = add(legacy, {"sub": "alice", "SUB": "bob"})
    run(rlsworker, legacy, tasks_dir, "--claim-settings", "all")
    sub, _, visible, settings = probe(legacy, i)
    assert (sub or "", visible, settings) == ("", 0, None)
    assert bodies(legacy) == {"alice": "a", "bob": "b,b2"}


def test_settings_do_not_outlive_the_job(rlsworker, legacy, tasks_dir):
    """One connection, two users in turn: the second sees only its own claims."""
    first = add(legacy, {"sub": "alice", "email": "a@example.test"})
    second = add(legacy, {"sub": "bob"})
    run(rlsworker, legacy, tasks_dir, "--claim-settings", "all")
    assert probe(legacy, first)[:3] == ("alice", "a@example.test", 1)
    sub, email, visible, settings = probe(legacy, second)
    assert (sub, email or "", visible, settings) == ("bob", "", 2, "sub=bob")


def test_bad_value_is_refused(rlsworker, db, tasks_dir):
    r = rlsworker.cli("run", "--once", "--tasks", str(tasks_dir), "--claim-settings", "yes",
                      env=db.env())
    assert r.returncode == 2
    assert 'option "claim_settings" must be one of off, sub, all, got "yes"' in r.stderr
