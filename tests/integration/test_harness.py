"""The harness itself: roles as in deploy/roles.sql, and the todos policies
of deploy/demo/schema.sql behaving like Drizzle's crudPolicy."""
import psycopg
import pytest

pytestmark = pytest.mark.integration

ALICE = {"sub": "alice"}
BOB = {"sub": "bob"}


def role_attrs(db, role):
    return db.one("select rolcanlogin, rolbypassrls, rolsuper, rolcreaterole"
                  " from pg_roles where rolname = %s", (role,))


def test_admin_role_is_login_bypassrls_not_superuser(bare_db):
    assert role_attrs(bare_db, "neondb_owner") == (True, True, False, False)
    assert bare_db.val("select pg_get_userbyid(datdba) from pg_database"
                       " where datname = current_database()") == "neondb_owner"


@pytest.mark.parametrize("role", ["authenticated_backend", "moderator_backend", "admin_backend"])
def test_restricted_roles_login_without_bypassrls(bare_db, role):
    assert role_attrs(bare_db, role) == (True, False, False, False)
    assert bare_db.val("select current_user", role=role) == role


def test_todos_owned_by_admin_with_rls_enabled(bare_db):
    owner, rls = bare_db.one("select pg_get_userbyid(relowner), relrowsecurity"
                             " from pg_class where oid = 'todos'::regclass")
    assert (owner, rls) == ("neondb_owner", True)
    assert bare_db.val("select count(*) from pg_policies where tablename = 'todos'") == 12


def test_user_id_reads_sub_and_is_null_without_claims(bare_db):
    assert bare_db.val("select auth.user_id()", role="authenticated_backend",
                       claims=ALICE) == "alice"
    assert bare_db.val("select auth.user_id()", role="authenticated_backend") is None
    assert bare_db.val("select auth.user_id()", role="authenticated_backend",
                       claims="") is None
    assert bare_db.val("select auth.user_id()", role="authenticated_backend",
                       claims={"role": "x"}) is None


def test_claims_do_not_outlive_the_transaction(bare_db):
    with bare_db.connect("authenticated_backend") as conn:
        with conn.transaction():
            conn.execute("select set_config('request.jwt.claims', %s, true)", ('{"sub":"alice"}',))
            assert conn.execute("select auth.user_id()").fetchone()[0] == "alice"
        assert conn.execute("select auth.user_id()").fetchone()[0] is None


def add(db, claims, task, role="authenticated_backend"):
    db.sql("insert into todos (task) values (%s)", (task,), role=role, claims=claims)


def tasks(db, role="authenticated_backend", claims=None):
    return [r[0] for r in db.sql("select task from todos order by id", role=role, claims=claims)]


def test_authenticated_sees_and_changes_only_own_rows(bare_db):
    add(bare_db, ALICE, "alice 1")
    add(bare_db, BOB, "bob 1")
    assert bare_db.val("select user_id from todos where task = 'bob 1'") == "bob"
    assert tasks(bare_db, claims=ALICE) == ["alice 1"]
    assert tasks(bare_db, claims=BOB) == ["bob 1"]
    assert tasks(bare_db) == []  # no claims: no rows
    # alice's update and delete cannot reach bob's row
    bare_db.sql("update todos set is_complete = true", role="authenticated_backend", claims=ALICE)
    bare_db.sql("delete from todos where task = 'bob 1'", role="authenticated_backend",
                claims=ALICE)
    assert bare_db.sql("select task, is_complete from todos order by id") == [
        ("alice 1", True), ("bob 1", False)]


def test_authenticated_cannot_insert_for_someone_else(bare_db):
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        bare_db.sql("insert into todos (task, user_id) values ('forged', 'bob')",
                    role="authenticated_backend", claims=ALICE)
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        add(bare_db, None, "no claims")
    assert bare_db.val("select count(*) from todos") == 0


def test_moderator_reads_all_but_modifies_only_own(bare_db):
    add(bare_db, ALICE, "alice 1")
    add(bare_db, {"sub": "mod"}, "mod 1", role="moderator_backend")
    assert tasks(bare_db, role="moderator_backend", claims={"sub": "mod"}) == ["alice 1", "mod 1"]
    bare_db.sql("update todos set is_complete = true", role="moderator_backend",
                claims={"sub": "mod"})
    assert bare_db.sql("select task, is_complete from todos order by id") == [
        ("alice 1", False), ("mod 1", True)]
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        bare_db.sql("insert into todos (task, user_id) values ('x', 'alice')",
                    role="moderator_backend", claims={"sub": "mod"})


def test_admin_backend_modifies_all(bare_db):
    add(bare_db, ALICE, "alice 1")
    add(bare_db, BOB, "bob 1")
    n = bare_db.sql("update todos set is_complete = true returning id",
                    role="admin_backend", claims={"sub": "root"})
    assert len(n) == 2
    bare_db.sql("insert into todos (task, user_id) values ('for bob', 'bob')",
                role="admin_backend", claims={"sub": "root"})
    assert tasks(bare_db, claims=BOB) == ["bob 1", "for bob"]


def test_restricted_roles_get_nothing_on_new_schemas(bare_db):
    bare_db.sql("create schema private; create table private.t (x int)")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        bare_db.sql("select * from private.t", role="authenticated_backend", claims=ALICE)


def test_default_privileges_cover_new_public_tables(bare_db):
    bare_db.sql("create table notes (x int)")
    assert bare_db.sql("select * from notes", role="authenticated_backend") == []


def test_extra_role_with_test_password(pg, bare_db):
    pg.create_role("reporting_backend")
    assert bare_db.val("select current_user", role="reporting_backend") == "reporting_backend"


def test_restart_keeps_data(pg, bare_db):
    add(bare_db, ALICE, "survives")
    pg.restart()
    assert tasks(bare_db, claims=ALICE) == ["survives"]


def test_env_has_the_four_urls(bare_db):
    env = bare_db.env(EXTRA=1)
    assert env["DATABASE_URL"] == bare_db.admin_url
    assert env["DATABASE_AUTHENTICATED_URL"].startswith("postgresql://authenticated_backend:")
    assert env["DATABASE_MODERATOR_URL"] == bare_db.moderator_url
    assert env["DATABASE_ADMIN_BACKEND_URL"] == bare_db.admin_backend_url
    assert env["EXTRA"] == "1" and "PATH" in env


def test_cluster_settings(pg, bare_db):
    assert bare_db.val("show max_connections") == "300"
    assert bare_db.val("show listen_addresses") == "127.0.0.1"
    assert bare_db.val("select inet_server_port()") == pg.port
    assert bare_db.val("select current_user", role="postgres") == "postgres"


def test_cli_and_spawn(rlsworker, tasks_dir):
    r = rlsworker.cli("--version")
    assert r.returncode == 0 and r.stdout.startswith("rlsworker "), r
    p = rlsworker.spawn("--version")
    assert p.wait(10) == 0
    assert p.read_stdout().startswith("rlsworker ")
    assert rlsworker.cli("no-such-command").returncode == 2


def test_write_task(tasks_dir):
    from helpers import write_task
    path = write_task(tasks_dir, "hello", """
        -- task: hello
        -- run_as: user

        select 1;
    """)
    assert path.endswith("/tasks/hello.sql")
    assert open(path).read() == "-- task: hello\n-- run_as: user\n\nselect 1;\n"
