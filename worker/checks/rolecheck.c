/* Fail-closed role checks: connecting, the restricted-role and
 * admin checks, and the start-up entry point of `rlsworker run`.
 * The report is in rolecheck_report.c; the doctor-only checks (warnings,
 * canary) live in doctor.c. */
#include "worker/checks/rolecheck.h"

#include <stdlib.h>
#include <string.h>

#include "worker/base/log.h"
#include "worker/pg/migrations.h"
#include "worker/pg/conninfo.h"

/* ---- helpers --------------------------------------------------------- */

void rw_rolecheck_oneline(char *dst, size_t dstlen, const char *msg)
{
    size_t j = 0;

    if (dstlen == 0)
        return;
    for (const char *s = msg ? msg : ""; *s && j + 3 < dstlen; s++) {
        if (*s == '\n') {
            if (s[1] == '\0')
                break;
            dst[j++] = ';';
            dst[j++] = ' ';
        } else {
            dst[j++] = *s == '\t' ? ' ' : *s;
        }
    }
    dst[j] = '\0';
}

PGresult *rw_rolecheck_query(PGconn *c, const char *sql, int nparams,
                             const char *const *params, struct rw_report *rep,
                             const char *id, const char *role)
{
    PGresult *r = PQexecParams(c, sql, nparams, NULL, params, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(r);
    char msg[512];

    if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK)
        return r;
    rw_rolecheck_oneline(msg, sizeof msg, PQresultErrorMessage(r));
    rw_report_add(rep, id, RW_CHECK_FAIL, role, "could not run this check: %s", msg);
    PQclear(r);
    return NULL;
}

static bool is_true(const PGresult *r, int row, int col)
{
    return !PQgetisnull(r, row, col) && strcmp(PQgetvalue(r, row, col), "t") == 0;
}

PGconn *rw_rolecheck_connect(const char *url, const char *what, const char *source,
                             int connect_timeout_s, struct rw_report *rep)
{
    const char *keys[] = {"dbname", "connect_timeout", "fallback_application_name", NULL};
    char timeout[16], msg[512], id[RW_CHECK_ID_MAX];

    snprintf(timeout, sizeof timeout, "%d", connect_timeout_s > 0 ? connect_timeout_s : 10);
    const char *vals[] = {url, timeout, "rlsworker-check", NULL};
    PGconn *c;

    snprintf(id, sizeof id, "%s.login", what);
    if (rw_conninfo_check(url, source, msg, sizeof msg) < 0) {
        rw_report_add(rep, id, RW_CHECK_FAIL, NULL, "%s", msg);
        return NULL;
    }
    c = PQconnectdbParams(keys, vals, 1);
    if (c && PQstatus(c) == CONNECTION_OK) {
        rw_report_add(rep, id, RW_CHECK_PASS, PQuser(c), "logs in (%s, database \"%s\")",
                      source, PQdb(c));
        return c;
    }
    rw_rolecheck_oneline(msg, sizeof msg, c ? PQerrorMessage(c) : "out of memory");
    rw_report_add(rep, id, RW_CHECK_FAIL, c ? PQuser(c) : NULL,
                  "could not log in with %s: %s; fix: check the user name, password, "
                  "host and database in %s and that the role has LOGIN",
                  source, msg, source);
    PQfinish(c);
    return NULL;
}

/* ---- restricted role --------------------------------------------------- */

/* Who a restricted connection is; filled by check_identity. */
struct who {
    char login[RW_CHECK_ROLE_MAX];  /* session_user */
    char oid[16];
    bool super, bypass, createrole;
};

static const char sql_identity[] =
    "select session_user::text, current_user::text, current_database(),"
    " coalesce(current_setting('request.jwt.claims', true), '') <> '',"
    " r.oid::text, r.rolsuper, r.rolbypassrls, r.rolcreaterole"
    " from pg_catalog.pg_roles r where r.rolname = session_user";

static void identity_report(const PGresult *r, const char *expected, const char *source,
                            struct rw_report *rep)
{
    const char *login = PQgetvalue(r, 0, 0), *cur = PQgetvalue(r, 0, 1);

    if (expected && strcmp(expected, login) != 0)
        rw_report_add(rep, "restricted.identity", RW_CHECK_FAIL, expected,
                      "the URL for role \"%s\" (%s) logs in as \"%s\"; fix: make the user "
                      "name in %s \"%s\"", expected, source, login, source, expected);
    else if (strcmp(login, cur) != 0)
        rw_report_add(rep, "restricted.identity", RW_CHECK_FAIL, login,
                      "logs in as \"%s\" but current_user is \"%s\" (a role default or a "
                      "-c role= connection option switches roles); fix: ALTER ROLE %s RESET "
                      "role, and remove role from the connection options", login, cur, login);
    else
        rw_report_add(rep, "restricted.identity", RW_CHECK_PASS, login,
                      "session_user and current_user are \"%s\"", login);
}

static int check_identity(PGconn *c, const char *expected, const char *source,
                          PGconn *admin, struct rw_report *rep, struct who *w)
{
    PGresult *r = rw_rolecheck_query(c, sql_identity, 0, NULL, rep,
                                     "restricted.identity", PQuser(c));
    if (!r)
        return -1;
    if (PQntuples(r) != 1) {
        rw_report_add(rep, "restricted.identity", RW_CHECK_FAIL, PQuser(c),
                      "could not find the login role in pg_roles");
        PQclear(r);
        return -1;
    }
    snprintf(w->login, sizeof w->login, "%s", PQgetvalue(r, 0, 0));
    snprintf(w->oid, sizeof w->oid, "%s", PQgetvalue(r, 0, 4));
    w->super = is_true(r, 0, 5);
    w->bypass = is_true(r, 0, 6);
    w->createrole = is_true(r, 0, 7);
    identity_report(r, expected, source, rep);
    if (is_true(r, 0, 3))
        rw_report_add(rep, "restricted.claims_preset", RW_CHECK_FAIL, w->login,
                      "request.jwt.claims is already set on a fresh connection, so a job "
                      "could run with claims it was not given; fix: remove it from the "
                      "connection options, PGOPTIONS and role or database defaults");
    else
        rw_report_add(rep, "restricted.claims_preset", RW_CHECK_PASS, w->login,
                      "request.jwt.claims is empty on a fresh connection");
    if (admin && strcmp(PQdb(admin), PQgetvalue(r, 0, 2)) != 0)
        rw_report_add(rep, "restricted.database", RW_CHECK_WARN, w->login,
                      "connects to database \"%s\" but DATABASE_URL to \"%s\"; jobs read the "
                      "queue in one and run in the other", PQgetvalue(r, 0, 2), PQdb(admin));
    PQclear(r);
    return 0;
}

static void check_attributes(const struct who *w, struct rw_report *rep)
{
    if (w->super)
        rw_report_add(rep, "restricted.superuser", RW_CHECK_FAIL, w->login,
                      "is a superuser, so RLS policies never apply to its jobs; fix: ALTER "
                      "ROLE %s NOSUPERUSER (or use a role without it)", w->login);
    else
        rw_report_add(rep, "restricted.superuser", RW_CHECK_PASS, w->login,
                      "is not a superuser");
    if (w->bypass)
        rw_report_add(rep, "restricted.bypassrls", RW_CHECK_FAIL, w->login,
                      "has BYPASSRLS, so RLS policies do not apply to its jobs; fix: ALTER "
                      "ROLE %s NOBYPASSRLS", w->login);
    else
        rw_report_add(rep, "restricted.bypassrls", RW_CHECK_PASS, w->login,
                      "does not have BYPASSRLS");
    if (w->createrole)
        rw_report_add(rep, "restricted.createrole", RW_CHECK_FAIL, w->login,
                      "has CREATEROLE, so a job can grant itself a BYPASSRLS or owner role "
                      "and SET ROLE to it; fix: ALTER ROLE %s NOCREATEROLE", w->login);
    else
        rw_report_add(rep, "restricted.createrole", RW_CHECK_PASS, w->login,
                      "does not have CREATEROLE");
}

/* Every role the login role is a member of, by any path, whether inherited
 * or not (SET ROLE works either way), with the path and what makes it
 * dangerous: superuser, BYPASSRLS, CREATEROLE (it can grant itself any
 * other role), or owning tables outside the catalogs. */
static const char sql_membership[] =
    "with recursive m(roleid, path) as ("
    "  select a.roleid, array[a.roleid] from pg_catalog.pg_auth_members a"
    "  where a.member = $1::oid"
    "  union all"
    "  select a.roleid, m.path || a.roleid from pg_catalog.pg_auth_members a"
    "  join m on a.member = m.roleid"
    "  where a.roleid <> all (m.path) and cardinality(m.path) < 64)"
    " select distinct on (o.oid) o.rolname::text, o.rolsuper,"
    "  o.rolbypassrls or o.rolcreaterole,"
    "  (select string_agg(quote_ident(x.rolname), ' -> ' order by u.i)"
    "     from unnest(m.path) with ordinality u(oid, i)"
    "     join pg_catalog.pg_roles x on x.oid = u.oid),"
    "  (select quote_ident(x.rolname) from pg_catalog.pg_roles x where x.oid = m.path[1]),"
    "  (select string_agg(t.name, ', ') from (select c.oid::regclass::text as name"
    "     from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace"
    "     where c.relowner = o.oid and c.relkind in ('r', 'p', 'v', 'm', 'f')"
    "       and n.nspname not in ('pg_catalog', 'information_schema')"
    "       and n.nspname not like 'pg\\_toast%'"
    "     order by 1 limit 3) t),"
    "  o.rolbypassrls"
    " from m join pg_catalog.pg_roles o on o.oid = m.roleid"
    " order by o.oid, cardinality(m.path)";

static int check_membership(PGconn *c, const struct who *w, struct rw_report *rep)
{
    const char *params[] = {w->oid};
    PGresult *r = rw_rolecheck_query(c, sql_membership, 1, params, rep,
                                     "restricted.membership", w->login);
    int bad_priv = 0, bad_owner = 0;

    if (!r)
        return -1;
    for (int i = 0; i < PQntuples(r); i++) {
        const char *name = PQgetvalue(r, i, 0), *path = PQgetvalue(r, i, 3);
        const char *via = PQgetvalue(r, i, 4);
        if (is_true(r, i, 1) || is_true(r, i, 2)) {
            bad_priv++;
            rw_report_add(rep, "restricted.member_privileged", RW_CHECK_FAIL, w->login,
                          "is a member of \"%s\" (%s) through %s, so it can SET ROLE and "
                          "bypass RLS; fix: REVOKE %s FROM %s", name,
                          is_true(r, i, 1) ? "superuser"
                          : is_true(r, i, 6) ? "BYPASSRLS" : "CREATEROLE",
                          path, via, w->login);
        }
        if (!PQgetisnull(r, i, 5)) {
            bad_owner++;
            rw_report_add(rep, "restricted.member_owner", RW_CHECK_FAIL, w->login,
                          "is a member of \"%s\" through %s, which owns tables (e.g. %s), so "
                          "it can SET ROLE to the owner and bypass or disable RLS; fix: "
                          "REVOKE %s FROM %s", name, path, PQgetvalue(r, i, 5), via, w->login);
        }
    }
    if (!bad_priv)
        rw_report_add(rep, "restricted.member_privileged", RW_CHECK_PASS, w->login,
                      "is not a member of a superuser, BYPASSRLS or CREATEROLE role");
    if (!bad_owner)
        rw_report_add(rep, "restricted.member_owner", RW_CHECK_PASS, w->login,
                      "is not a member of a role that owns tables");
    PQclear(r);
    return 0;
}

/* Role and database defaults that would preset claims or switch roles. */
static const char sql_defaults[] =
    "with db as (select oid from pg_catalog.pg_database where datname = current_database())"
    " select s.setrole <> 0, coalesce(quote_ident(d.datname), ''),"
    "  lower(split_part(cfg, '=', 1))"
    " from pg_catalog.pg_db_role_setting s"
    " left join pg_catalog.pg_database d on d.oid = s.setdatabase"
    " cross join lateral unnest(s.setconfig) as cfg"
    " where ((s.setrole = $1::oid and (s.setdatabase = 0 or s.setdatabase = (select oid from db)))"
    "     or (s.setrole = 0 and s.setdatabase = (select oid from db)))"
    "   and (lower(split_part(cfg, '=', 1)) in ('role', 'session_authorization')"
    "     or lower(split_part(cfg, '=', 1)) like 'request.jwt.%'"
    "     or lower(split_part(cfg, '=', 1)) like '\"request.jwt.%')"
    " order by 1, 2, 3";

static int check_defaults(PGconn *c, const struct who *w, struct rw_report *rep)
{
    const char *params[] = {w->oid};
    PGresult *r = rw_rolecheck_query(c, sql_defaults, 1, params, rep,
                                     "restricted.defaults", w->login);
    char fix[256];

    if (!r)
        return -1;
    for (int i = 0; i < PQntuples(r); i++) {
        bool for_role = is_true(r, i, 0);
        const char *db = PQgetvalue(r, i, 1), *name = PQgetvalue(r, i, 2);
        if (for_role && !db[0])
            snprintf(fix, sizeof fix, "ALTER ROLE %s RESET %s", w->login, name);
        else if (for_role)
            snprintf(fix, sizeof fix, "ALTER ROLE %s IN DATABASE %s RESET %s", w->login, db, name);
        else
            snprintf(fix, sizeof fix, "ALTER DATABASE %s RESET %s", db, name);
        rw_report_add(rep, "restricted.defaults", RW_CHECK_FAIL, w->login,
                      "has a %s default for %s, which every session of the role starts "
                      "with; fix: %s", for_role ? "role" : "database", name, fix);
    }
    if (PQntuples(r) == 0)
        rw_report_add(rep, "restricted.defaults", RW_CHECK_PASS, w->login,
                      "no role or database default for request.jwt.*, role or "
                      "session_authorization");
    PQclear(r);
    return 0;
}

/* The isolation level sessions start at (role, role-in-database or database
 * default), and the names its fix needs: the worker's transactions are
 * written for read committed. The restricted check selects these alone;
 * the admin check with its other columns (sql_admin). */
#define ISOLATION_COLUMNS                                                      \
    "current_setting('default_transaction_isolation'),"                        \
    "  quote_ident(current_user), quote_ident(current_database())"

static const char sql_isolation[] = "select " ISOLATION_COLUMNS;

static bool read_committed(const char *level)
{
    return strcmp(level, "read committed") == 0 || strcmp(level, "read uncommitted") == 0;
}

/* A restricted role at repeatable read or serializable: its jobs' task SQL
 * may want that, but a group of jobs that meets a concurrent claim or
 * completion fails as a whole (measured: 756 failed attempts draining 3 000
 * user jobs with two workers at serializable), so it is a warning. */
static int check_isolation(PGconn *c, const struct who *w, struct rw_report *rep)
{
    PGresult *r = rw_rolecheck_query(c, sql_isolation, 0, NULL, rep,
                                     "restricted.isolation", w->login);
    if (!r)
        return -1;
    if (PQntuples(r) == 1 && !read_committed(PQgetvalue(r, 0, 0)))
        rw_report_add(rep, "restricted.isolation", RW_CHECK_WARN, w->login,
                      "its sessions start at default_transaction_isolation = %s, so jobs run "
                      "at it: a group of jobs that meets a concurrent claim or completion "
                      "fails with a serialization error and its jobs run again (each time "
                      "an attempt); fix, unless your tasks need it: ALTER ROLE %s IN "
                      "DATABASE %s SET default_transaction_isolation = 'read committed'",
                      PQgetvalue(r, 0, 0), PQgetvalue(r, 0, 1), PQgetvalue(r, 0, 2));
    else if (PQntuples(r) == 1)
        rw_report_add(rep, "restricted.isolation", RW_CHECK_PASS, w->login,
                      "sessions start at default_transaction_isolation = %s",
                      PQgetvalue(r, 0, 0));
    PQclear(r);
    return 0;
}

static const char sql_queue_access[] =
    "select has_schema_privilege($1::oid, n.oid, 'USAGE')"
    "    or has_schema_privilege($1::oid, n.oid, 'CREATE'),"
    "  (select string_agg(c.relname, ', ' order by c.relname) from pg_catalog.pg_class c"
    "   where c.relnamespace = n.oid and c.relkind in ('r', 'p', 'v', 'm')"
    "     and has_table_privilege($1::oid, c.oid,"
    "           'SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER')),"
    "  (select string_agg(distinct p.proname, ', ') from pg_catalog.pg_proc p"
    "   where p.pronamespace = n.oid and has_function_privilege($1::oid, p.oid, 'EXECUTE'))"
    " from pg_catalog.pg_namespace n where n.nspname = 'rlsworker'";

static int check_queue_access(PGconn *c, const struct who *w, struct rw_report *rep)
{
    const char *params[] = {w->oid};
    PGresult *r = rw_rolecheck_query(c, sql_queue_access, 1, params, rep,
                                     "restricted.queue_access", w->login);
    if (!r)
        return -1;
    if (PQntuples(r) == 0) {
        rw_report_add(rep, "restricted.queue_access", RW_CHECK_PASS, w->login,
                      "schema rlsworker does not exist in this database");
    } else if (is_true(r, 0, 0) || !PQgetisnull(r, 0, 1) || !PQgetisnull(r, 0, 2)) {
        rw_report_add(rep, "restricted.queue_access", RW_CHECK_FAIL, w->login,
                      "has privileges on the queue (schema rlsworker: %s; tables: %s; "
                      "functions: %s), so a job could read or forge other jobs and their "
                      "claims; fix: REVOKE ALL ON SCHEMA rlsworker FROM %s, PUBLIC; REVOKE "
                      "ALL ON ALL TABLES IN SCHEMA rlsworker FROM %s, PUBLIC; REVOKE "
                      "EXECUTE ON ALL FUNCTIONS IN SCHEMA rlsworker FROM %s, PUBLIC",
                      is_true(r, 0, 0) ? "usage" : "none",
                      PQgetisnull(r, 0, 1) ? "none" : PQgetvalue(r, 0, 1),
                      PQgetisnull(r, 0, 2) ? "none" : PQgetvalue(r, 0, 2),
                      w->login, w->login, w->login);
    } else {
        rw_report_add(rep, "restricted.queue_access", RW_CHECK_PASS, w->login,
                      "has no privilege on schema rlsworker or its tables and functions");
    }
    PQclear(r);
    return 0;
}

int rw_rolecheck_restricted(PGconn *restricted, const char *expected_role, PGconn *admin,
                            struct rw_report *rep)
{
    struct who w;
    char source[RW_CHECK_ROLE_MAX + 8];
    int result = 0;

    snprintf(source, sizeof source, "role.%s", expected_role ? expected_role : "");
    if (check_identity(restricted, expected_role, source, admin, rep, &w) < 0)
        return -1;
    check_attributes(&w, rep);
    if (!w.super && check_membership(restricted, &w, rep) < 0)
        result = -1;
    if (check_defaults(restricted, &w, rep) < 0)
        result = -1;
    if (check_queue_access(restricted, &w, rep) < 0)
        result = -1;
    if (check_isolation(restricted, &w, rep) < 0)
        result = -1;
    return result;
}

/* ---- admin role -------------------------------------------------------- */

static const char sql_admin[] =
    "select current_user::text, r.rolsuper, r.rolbypassrls,"
    "  coalesce(has_table_privilege(to_regclass('rlsworker.jobs'), 'SELECT')"
    "       and has_table_privilege(to_regclass('rlsworker.jobs'), 'INSERT')"
    "       and has_table_privilege(to_regclass('rlsworker.jobs'), 'UPDATE')"
    "       and has_table_privilege(to_regclass('rlsworker.jobs'), 'DELETE'), false),"
    "  (select string_agg(distinct p.proname, ', ') from pg_catalog.pg_proc p"
    "   where p.pronamespace = to_regnamespace('rlsworker')"
    "     and not has_function_privilege(p.oid, 'EXECUTE')),"
    "  to_regprocedure('rlsworker.claim_jobs(text, integer)') is not null,"
    "  " ISOLATION_COLUMNS
    " from pg_catalog.pg_roles r where r.rolname = current_user";

static void admin_attributes(const PGresult *r, struct rw_report *rep)
{
    const char *who = PQgetvalue(r, 0, 0);

    if (is_true(r, 0, 1))
        rw_report_add(rep, "admin.superuser", RW_CHECK_WARN, who,
                      "DATABASE_URL logs in as a superuser; it works, but an owner role with "
                      "BYPASSRLS (as on Neon) is enough and safer");
    else if (is_true(r, 0, 2))
        rw_report_add(rep, "admin.bypassrls", RW_CHECK_INFO, who,
                      "has BYPASSRLS, as expected: system jobs see every row and authorize "
                      "with explicit WHERE clauses");
    else
        rw_report_add(rep, "admin.bypassrls", RW_CHECK_INFO, who,
                      "has no BYPASSRLS: system jobs see only rows of tables it owns or "
                      "that its policies allow");
}

static void admin_queue(const PGresult *r, struct rw_report *rep)
{
    const char *who = PQgetvalue(r, 0, 0);

    if (!is_true(r, 0, 3) || !is_true(r, 0, 5))
        rw_report_add(rep, "admin.queue", RW_CHECK_FAIL, who,
                      "cannot use the queue (needs SELECT, INSERT, UPDATE, DELETE on "
                      "rlsworker.jobs and EXECUTE on rlsworker.claim_jobs); fix: run "
                      "rlsworker migrate as this role, or have the schema's owner grant them");
    else if (!PQgetisnull(r, 0, 4))
        rw_report_add(rep, "admin.queue", RW_CHECK_FAIL, who,
                      "cannot execute rlsworker functions %s; fix: GRANT EXECUTE ON ALL "
                      "FUNCTIONS IN SCHEMA rlsworker TO %s (as the schema's owner)",
                      PQgetvalue(r, 0, 4), who);
    else
        rw_report_add(rep, "admin.queue", RW_CHECK_PASS, who,
                      "can read and update rlsworker.jobs and claim jobs");
}

/* Claims, completions, heartbeats and sweeps are written for read
 * committed: at repeatable read or serializable two of them that meet fail
 * with a serialization error (claims, outcomes, the sweep; seen with two
 * workers), so the worker refuses to start. */
static void admin_isolation(const PGresult *r, struct rw_report *rep)
{
    const char *who = PQgetvalue(r, 0, 0), *level = PQgetvalue(r, 0, 6);

    if (read_committed(level))
        rw_report_add(rep, "admin.isolation", RW_CHECK_PASS, who,
                      "sessions start at default_transaction_isolation = %s", level);
    else
        rw_report_add(rep, "admin.isolation", RW_CHECK_FAIL, who,
                      "its sessions start at default_transaction_isolation = %s, and the "
                      "worker's claims and completions fail with serialization errors at "
                      "it; fix: ALTER ROLE %s IN DATABASE %s SET "
                      "default_transaction_isolation = 'read committed' (the application's "
                      "own roles may keep theirs)", level, PQgetvalue(r, 0, 7),
                      PQgetvalue(r, 0, 8));
}

/* Returns the schema version (0: not installed), or -1 (FAIL added). */
static int admin_schema(PGconn *admin, const char *who, struct rw_report *rep)
{
    char err[512];
    int latest = rw_migrations_latest();
    int v = rw_schema_version(admin, err, sizeof err);  /* 0 when not installed */

    if (v < 0)
        rw_report_add(rep, "admin.schema", RW_CHECK_FAIL, who, "%s", err);
    else if (v == 0)
        rw_report_add(rep, "admin.schema", RW_CHECK_FAIL, who,
                      "schema rlsworker is not installed; fix: rlsworker migrate");
    else if (v < latest)
        rw_report_add(rep, "admin.schema", RW_CHECK_FAIL, who,
                      "schema rlsworker is at version %d, this rlsworker needs %d; fix: "
                      "rlsworker migrate", v, latest);
    else if (v > latest)
        rw_report_add(rep, "admin.schema", RW_CHECK_WARN, who,
                      "schema rlsworker is at version %d, newer than this rlsworker knows "
                      "(%d); upgrade rlsworker", v, latest);
    else
        rw_report_add(rep, "admin.schema", RW_CHECK_PASS, who,
                      "schema rlsworker is at version %d", v);
    return v;
}

int rw_rolecheck_admin(PGconn *admin, struct rw_report *rep)
{
    PGresult *r = rw_rolecheck_query(admin, sql_admin, 0, NULL, rep, "admin.queue",
                                     PQuser(admin));
    if (!r)
        return -1;
    if (PQntuples(r) != 1) {
        rw_report_add(rep, "admin.queue", RW_CHECK_FAIL, PQuser(admin),
                      "could not find the role in pg_roles");
        PQclear(r);
        return -1;
    }
    int version = admin_schema(admin, PQgetvalue(r, 0, 0), rep);
    admin_attributes(r, rep);
    admin_isolation(r, rep);
    if (version > 0)    /* else the schema FAIL says it all */
        admin_queue(r, rep);
    PQclear(r);
    return 0;
}

/* ---- every configured connection --------------------------------------- */

static void check_one_restricted(const struct rw_config *cfg, const char *url,
                                 const char *expected, const char *source,
                                 PGconn *admin, bool doctor, struct rw_report *rep)
{
    PGconn *c;
    int first = rep->n;

    if (!url) {
        rw_report_add(rep, "restricted.login", RW_CHECK_FAIL, expected,
                      "%s has no connection string; fix: set it to a URL that logs in as "
                      "\"%s\"", source, expected);
        rw_report_label(rep, first, source);
        return;
    }
    c = rw_rolecheck_connect(url, "restricted", source, cfg->connect_timeout_s, rep);
    if (!c) {
        rw_report_label(rep, first, source);
        return;
    }
    /* failed queries are FAIL checks in rep already */
    if (rw_rolecheck_restricted(c, expected, admin, rep) == 0 && doctor) {
        if (rw_rolecheck_warnings(c, rep) < 0)
            rw_debug("doctor warnings for %s incomplete", source);
        if (rw_rolecheck_canary(c, rep) < 0)
            rw_debug("canary for %s failed", source);
    }
    PQfinish(c);
    rw_report_label(rep, first, source);
}

void rw_rolecheck_all(const struct rw_config *cfg, bool doctor, struct rw_report *rep)
{
    PGconn *admin = NULL;
    char source[RW_CHECK_ROLE_MAX + 8];

    if (!cfg->database_url)
        rw_report_add(rep, "admin.login", RW_CHECK_FAIL, NULL,
                      "DATABASE_URL is not set; fix: set it to the admin role's connection "
                      "string (database_url in the config file)");
    else
        admin = rw_rolecheck_connect(cfg->database_url, "admin", "DATABASE_URL",
                                     cfg->connect_timeout_s, rep);
    if (admin && rw_rolecheck_admin(admin, rep) < 0)
        rw_debug("admin checks incomplete");
    rw_report_label(rep, 0, "DATABASE_URL");
    if (!cfg->authenticated_url && cfg->nroles == 0)
        rw_report_add(rep, "restricted.login", doctor ? RW_CHECK_WARN : RW_CHECK_INFO, NULL,
                      "no restricted role is configured, so user-scoped jobs cannot run; "
                      "fix: set DATABASE_AUTHENTICATED_URL");
    if (cfg->authenticated_url)
        check_one_restricted(cfg, cfg->authenticated_url, NULL, "DATABASE_AUTHENTICATED_URL",
                             admin, doctor, rep);
    for (int i = 0; i < cfg->nroles; i++) {
        snprintf(source, sizeof source, "role.%s", cfg->roles[i].role);
        check_one_restricted(cfg, cfg->roles[i].url, cfg->roles[i].role, source, admin,
                             doctor, rep);
    }
    PQfinish(admin);
}

int rw_rolecheck_startup(const struct rw_config *cfg, char *err, size_t errlen)
{
    struct rw_report rep;
    size_t used = 0;

    rw_report_init(&rep);
    rw_rolecheck_all(cfg, false, &rep);
    if (errlen)
        err[0] = '\0';
    for (int i = 0; i < rep.n; i++) {
        const struct rw_check *c = &rep.checks[i];
        if (c->status == RW_CHECK_WARN)
            rw_warn("%s: %s%s%s%s", c->id, c->role[0] ? "role \"" : "", c->role,
                    c->role[0] ? "\": " : "", c->message);
        if (c->status != RW_CHECK_FAIL || used >= errlen)
            continue;
        int n = snprintf(err + used, errlen - used, "%s%s%s%s%s (%s)", used ? "\n" : "",
                         c->role[0] ? "role \"" : "", c->role, c->role[0] ? "\": " : "",
                         c->message, c->id);
        used = n < 0 ? errlen : used + (size_t)n;
    }
    bool failed = rw_report_has_fail(&rep);
    if (failed && errlen && !err[0])
        snprintf(err, errlen, "start-up role checks failed");
    rw_report_free(&rep);
    return failed ? -1 : 0;
}
