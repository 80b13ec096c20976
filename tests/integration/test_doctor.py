"""`rlsworker doctor` and the fail-closed start of `rlsworker run` (issue 3,
docs/security.md).

Every misconfiguration in MISCONFIGURATIONS is tested twice: `doctor` must
exit 1 with a FAIL that names the role and the problem, and `run --once`
must refuse to start (exit 1, the role named).

NOTE for the `test_run_refuses_*` tests: they pass once `rlsworker run` calls
rw_rolecheck_startup() (worker/checks/rolecheck.h) before it runs any job. They are
deliberately not skipped: until run is wired up, they fail.

Roles are cluster-wide, so each test creates its own with a random suffix
and drops them afterwards.
"""
import json
import secrets

import pytest

pytestmark = pytest.mark.integration

WRONG_PASSWORD = "not-the-password-9f3a"


class Setup:
    """One test's roles and environment. Roles it creates are dropped by
    cleanup(); the database goes with the `db` fixture."""

    def __init__(self, pg, db):
        self.pg = pg
        self.db = db
        self.roles = []
        self.env = db.env()
        # only the authenticated role unless a case adds more
        self.env.pop("DATABASE_MODERATOR_URL", None)
        self.env.pop("DATABASE_ADMIN_BACKEND_URL", None)

    def su(self, query, db=None):
        self.pg.su_exec(query, db or self.db.name)

    def nologin(self, prefix, attributes=""):
        name = "%s_%s" % (prefix, secrets.token_hex(3))
        self.su("create role %s nologin %s" % (name, attributes), "postgres")
        self.roles.append(name)
        return name

    def role(self, prefix, attributes=""):
        """A LOGIN role with the test password and authenticated_backend's grants."""
        name = "%s_%s" % (prefix, secrets.token_hex(3))
        self.pg.create_role(name, "login " + (attributes or "nosuperuser nobypassrls"))
        self.roles.append(name)
        self.su("grant usage on schema public, auth to %s;"
                "grant select, insert, update, delete on todos to %s;"
                "grant select on todo_stats to %s" % (name, name, name))
        return name

    def restrict(self, role, suffix=""):
        """Makes `role` the DATABASE_AUTHENTICATED_URL role."""
        self.env["DATABASE_AUTHENTICATED_URL"] = self.pg.url(role, self.db.name) + suffix

    def cleanup(self):
        for name in reversed(self.roles):
            self.su("drop owned by %s cascade" % name)
        for name in reversed(self.roles):
            self.su("drop role if exists %s" % name, "postgres")


@pytest.fixture
def setup(pg, db):
    s = Setup(pg, db)
    yield s
    s.cleanup()


def doctor(rlsworker, env, *args):
    r = rlsworker.cli("doctor", "--json", *args, env=env, timeout=120)
    try:
        report = json.loads(r.stdout)
    except ValueError:
        raise AssertionError("doctor printed no JSON (exit %d):\n%s%s" % (
            r.returncode, r.stdout, r.stderr))
    return r, report


def checks(report, status=None, id=None, role=None):
    return [c for c in report["checks"]
            if (status is None or c["status"] == status) and (id is None or c["id"] == id)
            and (role is None or c.get("role") == role)]


def describe(report):
    return "\n".join("%s %s %s: %s" % (c["status"], c["id"], c.get("role"), c["message"])
                     for c in report["checks"])


# ---- misconfigurations: each returns (role, check id, word in the message) ----

def superuser(s):
    r = s.role("rw_su", "superuser")
    s.restrict(r)
    return r, "restricted.superuser", "superuser"


def bypassrls(s):
    r = s.role("rw_byp", "bypassrls")
    s.restrict(r)
    return r, "restricted.bypassrls", "BYPASSRLS"


def member_of_bypassrls_direct(s):
    priv = s.nologin("rw_priv", "bypassrls")
    r = s.role("rw_mem")
    s.su("grant %s to %s" % (priv, r))
    s.restrict(r)
    return r, "restricted.member_privileged", priv


def member_of_bypassrls_inherited(s):
    priv = s.nologin("rw_priv", "bypassrls")
    mid = s.nologin("rw_mid")
    r = s.role("rw_mem")
    s.su("grant %s to %s; grant %s to %s" % (priv, mid, mid, r))
    s.restrict(r)
    return r, "restricted.member_privileged", "%s -> %s" % (mid, priv)


def member_of_superuser_noinherit(s):
    """NOINHERIT does not help: the role can still SET ROLE."""
    priv = s.nologin("rw_priv", "superuser")
    r = s.role("rw_noinh", "noinherit")
    s.su("grant %s to %s" % (priv, r))
    s.restrict(r)
    return r, "restricted.member_privileged", priv


def member_of_table_owner(s):
    owner = s.nologin("rw_owner")
    r = s.role("rw_mem")
    table = "owned_%s" % secrets.token_hex(3)
    s.su("create table %s (id int); alter table %s owner to %s;"
         "alter table %s enable row level security; grant select on %s to %s;"
         "grant %s to %s" % (table, table, owner, table, table, r, owner, r))
    s.restrict(r)
    return r, "restricted.member_owner", table


def role_default_claims(s):
    r = s.role("rw_rdef")
    s.su("""alter role %s set request.jwt.claims = '{"sub": "alice"}'""" % r)
    s.restrict(r)
    return r, "restricted.defaults", "role default for request.jwt.claims"


def database_default_claims(s):
    s.su("""alter database %s set request.jwt.claims = '{"sub": "alice"}'""" % s.db.name)
    return "authenticated_backend", "restricted.defaults", "database default for request.jwt.claims"


def role_default_role(s):
    other = s.nologin("rw_other")
    r = s.role("rw_rrole")
    s.su("grant %s to %s; alter role %s in database %s set role = %s"
         % (other, r, r, s.db.name, other))
    s.restrict(r)
    return r, "restricted.defaults", "role default for role"


def connects_as_other_current_user(s):
    other = s.nologin("rw_other")
    r = s.role("rw_switch")
    s.su("grant %s to %s" % (other, r))
    s.restrict(r, "?options=-c%%20role%%3D%s" % other)
    return r, "restricted.identity", 'current_user is "%s"' % other


def url_for_role_logs_in_as_other(s):
    s.env["DATABASE_MODERATOR_URL"] = s.db.auth_url
    return "moderator_backend", "restricted.identity", 'logs in as "authenticated_backend"'


def cannot_log_in(s):
    s.env["DATABASE_AUTHENTICATED_URL"] = s.pg.url("authenticated_backend", s.db.name,
                                                   password=WRONG_PASSWORD)
    return "authenticated_backend", "restricted.login", "could not log in"


def granted_usage_on_queue(s):
    s.db.sql("grant usage on schema rlsworker to authenticated_backend;"
             "grant select on rlsworker.jobs to authenticated_backend")
    return "authenticated_backend", "restricted.queue_access", "rlsworker"


def admin_serializable(s):
    """The worker's claims and completions fail with serialization errors
    at serializable (two workers: claims, outcome batches, the sweep)."""
    s.su("alter database %s set default_transaction_isolation = 'serializable'" % s.db.name)
    return "neondb_owner", "admin.isolation", "default_transaction_isolation = serializable"


MISCONFIGURATIONS = [
    superuser, bypassrls, member_of_bypassrls_direct, member_of_bypassrls_inherited,
    member_of_superuser_noinherit, member_of_table_owner, role_default_claims,
    database_default_claims, role_default_role, connects_as_other_current_user,
    url_for_role_logs_in_as_other, cannot_log_in, granted_usage_on_queue,
    admin_serializable,
]
IDS = [f.__name__ for f in MISCONFIGURATIONS]


@pytest.mark.parametrize("misconfigure", MISCONFIGURATIONS, ids=IDS)
def test_doctor_fails(rlsworker, setup, misconfigure):
    role, check_id, word = misconfigure(setup)
    r, report = doctor(rlsworker, setup.env)
    assert r.returncode == 1, describe(report)
    assert report["ok"] is False
    found = checks(report, "FAIL", check_id, role)
    assert found, "no FAIL %s for %s in:\n%s" % (check_id, role, describe(report))
    assert any(word in c["message"] for c in found), describe(report)
    assert any("fix:" in c["message"] for c in found), describe(report)
    assert WRONG_PASSWORD not in r.stdout + r.stderr


@pytest.mark.parametrize("misconfigure", MISCONFIGURATIONS, ids=IDS)
def test_run_refuses(rlsworker, setup, misconfigure, tmp_path):
    """Needs rw_rolecheck_startup() wired into `rlsworker run` (see module doc)."""
    role, check_id, word = misconfigure(setup)
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    r = rlsworker.cli("run", "--once", "--tasks", tasks, env=setup.env, timeout=120)
    out = r.stdout + r.stderr
    assert r.returncode == 1, out
    assert role in out and word in out, out
    assert WRONG_PASSWORD not in out


# ---- a clean set-up, the canary, output and usage ----

def test_clean_setup_passes_with_canary(rlsworker, db):
    r, report = doctor(rlsworker, db.env())
    assert r.returncode == 0, describe(report)
    assert report["ok"] is True and report["summary"]["fail"] == 0
    for role in ("authenticated_backend", "moderator_backend", "admin_backend"):
        assert checks(report, "PASS", "canary", role), describe(report)
        assert checks(report, "PASS", "restricted.bypassrls", role)
    assert checks(report, "PASS", "admin.schema", "neondb_owner")
    assert checks(report, "INFO", "admin.bypassrls", "neondb_owner")
    assert checks(report, "PASS", "admin.isolation", "neondb_owner")
    for role in ("authenticated_backend", "moderator_backend", "admin_backend"):
        assert checks(report, "PASS", "restricted.isolation", role), describe(report)


def test_text_report_names_status_role_and_fix(rlsworker, setup):
    r_role, _, _ = bypassrls(setup)
    r = rlsworker.cli("doctor", env=setup.env, timeout=120)
    assert r.returncode == 1
    line = [l for l in r.stdout.splitlines() if l.startswith("FAIL") and "bypassrls" in l]
    assert line and r_role in line[0] and "NOBYPASSRLS" in line[0], r.stdout
    assert "PASS  canary" not in r.stdout or "1 failed" in r.stdout
    assert r.stdout.rstrip().splitlines()[-1].endswith("failed")


def test_passwords_never_printed(rlsworker, db):
    from helpers import TEST_PASSWORD
    r = rlsworker.cli("doctor", env=db.env(), timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert TEST_PASSWORD not in r.stdout + r.stderr


def test_usage(rlsworker, db):
    assert rlsworker.cli("doctor", "--bogus", env=db.env()).returncode == 2
    h = rlsworker.cli("doctor", "--help", env=db.env())
    assert h.returncode == 0 and "--json" in h.stdout


def test_unmigrated_database_fails_admin_schema(rlsworker, bare_db):
    r, report = doctor(rlsworker, bare_db.env())
    assert r.returncode == 1
    found = checks(report, "FAIL", "admin.schema", "neondb_owner")
    assert found and "rlsworker migrate" in found[0]["message"], describe(report)


def test_admin_role_at_read_committed_passes_where_the_database_is_serializable(
        rlsworker, setup):
    """The fix the FAIL names: the admin role's own default, in this
    database, wins over the database's; restricted roles keep
    serializable and are warned."""
    admin_serializable(setup)
    setup.su("alter role neondb_owner in database %s set default_transaction_isolation"
             " = 'read committed'" % setup.db.name)
    r, report = doctor(rlsworker, setup.env)
    assert checks(report, "PASS", "admin.isolation", "neondb_owner"), describe(report)
    warned = checks(report, "WARN", "restricted.isolation", "authenticated_backend")
    assert warned and "serializable" in warned[0]["message"], describe(report)
    assert "fix, unless your tasks need it: ALTER ROLE authenticated_backend IN DATABASE" \
        in warned[0]["message"]
    assert r.returncode == 0, describe(report)


def test_run_warns_of_a_restricted_role_at_repeatable_read(rlsworker, setup, tmp_path):
    setup.su("alter role authenticated_backend in database %s set"
             " default_transaction_isolation = 'repeatable read'" % setup.db.name)
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    r = rlsworker.cli("run", "--once", "--tasks", tasks, env=setup.env, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "restricted.isolation: role \"authenticated_backend\": its sessions start at" \
        " default_transaction_isolation = repeatable read" in r.stderr, r.stderr
    _, report = doctor(rlsworker, setup.env)
    assert checks(report, "PASS", "admin.isolation", "neondb_owner"), describe(report)


def test_superuser_admin_is_a_warning(rlsworker, db):
    r, report = doctor(rlsworker, db.env(DATABASE_URL=db.su_url))
    assert checks(report, "WARN", "admin.superuser", "postgres"), describe(report)
    assert r.returncode == 0, describe(report)


def test_missing_database_url_fails(rlsworker, db):
    env = db.env()
    del env["DATABASE_URL"]
    r, report = doctor(rlsworker, env)
    assert r.returncode == 1
    assert any("DATABASE_URL" in c["message"] for c in checks(report, "FAIL", "admin.login"))


# ---- what weakens RLS: WARN (exit 0) unless said otherwise ----

def warn_setup(db, sql):
    db.sql(sql)   # as neondb_owner, the tables' owner


def test_table_without_rls_warns(rlsworker, db):
    warn_setup(db, "create table plain_notes (id int); "
                   "grant select on plain_notes to authenticated_backend")
    r, report = doctor(rlsworker, db.env())
    found = checks(report, "WARN", "rls.disabled", "authenticated_backend")
    assert any("plain_notes" in c["message"] for c in found), describe(report)
    assert r.returncode == 0, describe(report)


def test_table_without_rls_not_granted_is_not_reported(rlsworker, db):
    warn_setup(db, "create table private_notes (id int); revoke all on private_notes "
                   "from authenticated_backend, moderator_backend, admin_backend")
    r, report = doctor(rlsworker, db.env())
    assert not any("private_notes" in c["message"] for c in report["checks"])
    assert checks(report, "PASS", "rls.disabled", "authenticated_backend")


def test_owned_table_without_force_fails(rlsworker, setup):
    """Decision (docs/security.md): FAIL, because the owner's policies silently do
    not apply; `run` does not check it (the issue lists it as a doctor check)."""
    setup.su("create table owned_notes (id int, user_id text);"
             "alter table owned_notes enable row level security;"
             "alter table owned_notes owner to authenticated_backend")
    r, report = doctor(rlsworker, setup.env)
    found = checks(report, "FAIL", "rls.owned_not_forced", "authenticated_backend")
    assert any("owned_notes" in c["message"] for c in found), describe(report)
    assert r.returncode == 1
    setup.su("alter table owned_notes force row level security")
    r, report = doctor(rlsworker, setup.env)
    assert r.returncode == 0, describe(report)
    assert checks(report, "PASS", "rls.owned_not_forced", "authenticated_backend")


def test_policy_true_warns(rlsworker, db):
    warn_setup(db, "create table announcements (id int); "
                   "alter table announcements enable row level security; "
                   "grant select on announcements to authenticated_backend; "
                   "create policy everyone on announcements for select "
                   "to authenticated_backend using (true)")
    r, report = doctor(rlsworker, db.env())
    found = checks(report, "WARN", "rls.policy_true", "authenticated_backend")
    assert any("everyone on announcements" in c["message"] and "USING (true)" in c["message"]
               for c in found), describe(report)
    assert r.returncode == 0


def test_security_definer_function_warns(rlsworker, db):
    warn_setup(db, "create function count_all_todos() returns bigint language sql "
                   "security definer as 'select count(*) from todos'; "
                   "grant execute on function count_all_todos() to authenticated_backend")
    r, report = doctor(rlsworker, db.env())
    found = checks(report, "WARN", "functions.security_definer", "authenticated_backend")
    assert any("count_all_todos()" in c["message"] and "neondb_owner" in c["message"]
               for c in found), describe(report)
    assert r.returncode == 0


def test_immutable_function_that_reads_the_claims_warns(rlsworker, db):
    """Marked IMMUTABLE, it is evaluated while a plan is made, so a reused
    plan keeps one user's claims for the next (docs/guarantees.md, "Plans").
    Named by its body (current_setting), by a call to a STABLE function, or
    as a SQL-standard body by what it depends on; a true IMMUTABLE function
    and a STABLE reader are not named."""
    warn_setup(db, """
        create function app_uid_imm() returns text language sql immutable
            as $$ select current_setting('request.jwt.claims', true) $$;
        create function app_uid_wrap() returns text language plpgsql immutable
            as $$ begin return auth.user_id(); end $$;
        create function app_uid_atomic() returns text language sql immutable
            begin atomic select auth.user_id(); end;
        create function app_slug(t text) returns text language sql immutable
            as $$ select lower(t) $$;
        create function app_uid_stable() returns text language sql stable
            as $$ select current_setting('request.jwt.claims', true) $$;""")
    r, report = doctor(rlsworker, db.env())
    found = checks(report, "WARN", "functions.immutable_reads_settings", "authenticated_backend")
    named = " ".join(c["message"] for c in found)
    for f in ("app_uid_imm()", "app_uid_wrap()", "app_uid_atomic()"):
        assert f in named, describe(report)
    assert "app_slug" not in named and "app_uid_stable" not in named, describe(report)
    assert all("ALTER FUNCTION ... STABLE" in c["message"] for c in found)
    assert r.returncode == 0


def test_view_without_security_invoker_warns(rlsworker, db):
    warn_setup(db, "create view all_todos as select * from todos; "
                   "create view my_todos with (security_invoker = true) as select * from todos; "
                   "grant select on all_todos, my_todos to authenticated_backend")
    r, report = doctor(rlsworker, db.env())
    found = checks(report, "WARN", "views.security_invoker", "authenticated_backend")
    assert any("all_todos" in c["message"] for c in found), describe(report)
    assert not any("my_todos" in c["message"] for c in report["checks"])
    assert r.returncode == 0


def test_missing_user_id_function_warns_and_canary_uses_the_setting(rlsworker, db):
    db.sql("drop function auth.user_id() cascade", role="postgres")
    r, report = doctor(rlsworker, db.env())
    assert checks(report, "WARN", "auth.user_id", "authenticated_backend"), describe(report)
    assert checks(report, "PASS", "canary", "authenticated_backend"), describe(report)
    assert r.returncode == 0


def test_canary_fails_when_user_id_ignores_claims(rlsworker, db):
    db.sql("create or replace function auth.user_id() returns text language sql "
           "stable as $$ select 'always-alice'::text $$", role="postgres")
    r, report = doctor(rlsworker, db.env())
    found = checks(report, "FAIL", "canary", "authenticated_backend")
    assert found and "always-alice" in found[0]["message"], describe(report)
    assert r.returncode == 1
