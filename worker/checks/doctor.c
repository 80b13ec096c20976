/* `rlsworker doctor`: the fail-closed checks of `rlsworker run` plus what a
 * restricted role can reach that weakens RLS, and a canary transaction.
 * Exit 0 when nothing FAILs, 1 when something does, 2 on bad usage. */
#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>

#include "worker/base/config.h"
#include "worker/checks/rolecheck.h"

#define DOCTOR_MAX_ROWS 50   /* findings listed per warning kind */

/* Schemas whose objects are PostgreSQL's own or the queue's (checked apart). */
#define USER_SCHEMA(n)                                                         \
    " " n ".nspname not in ('pg_catalog', 'information_schema', 'rlsworker')"  \
    " and " n ".nspname not like 'pg\\_%'"

/* The queue's API for running jobs, which every restricted role must be
 * able to execute (the worker completes and chains jobs through it; both
 * check a lock token only the worker knows): rlsworker_api.complete_job,
 * complete_jobs (a group's completion) and chain_job as `rlsworker migrate`
 * installs them, owned by the schema's owner. Any other function there is
 * reported like any other. */
#define INTENDED_API(n, p)                                                     \
    " (" n ".nspname = 'rlsworker_api' and " p ".proowner = " n ".nspowner"     \
    " and " p ".proname in ('complete_job', 'complete_jobs', 'chain_job'))"

/* One kind of finding: a query listing objects (column 0: name, column 1:
 * an extra word for the message) and how to report each. */
struct finding {
    const char *id;
    enum rw_check_status status;
    const char *sql;
    const char *pre, *mid, *post;   /* message: pre object mid extra post */
    const char *pass;   /* message when nothing is found */
};

static const struct finding findings[] = {
    {"rls.disabled", RW_CHECK_WARN,
     "select c.oid::regclass::text, '' from pg_catalog.pg_class c"
     " join pg_catalog.pg_namespace n on n.oid = c.relnamespace"
     " where c.relkind in ('r', 'p') and not c.relrowsecurity and" USER_SCHEMA("n")
     " and has_schema_privilege(session_user, n.oid, 'USAGE')"
     " and (has_any_column_privilege(session_user, c.oid, 'SELECT, INSERT, UPDATE')"
     "      or has_table_privilege(session_user, c.oid, 'DELETE, TRUNCATE'))"
     " order by 1 limit $1",
     "can use table ", "", ", which has row-level security disabled, so its jobs see and "
     "change every row; fix: ALTER TABLE ... ENABLE ROW LEVEL SECURITY and add policies, "
     "or REVOKE the role's privileges on it if every user may see all of it",
     "every table it can use has row-level security enabled"},
    {"rls.owned_not_forced", RW_CHECK_FAIL,
     "select c.oid::regclass::text, '' from pg_catalog.pg_class c"
     " join pg_catalog.pg_namespace n on n.oid = c.relnamespace"
     " where c.relkind in ('r', 'p') and c.relrowsecurity and not c.relforcerowsecurity"
     " and c.relowner = (select oid from pg_catalog.pg_roles where rolname = session_user)"
     " and" USER_SCHEMA("n") " order by 1 limit $1",
     "owns table ", "", " without FORCE ROW LEVEL SECURITY, so its policies do not apply to "
     "the role's jobs; fix: ALTER TABLE ... FORCE ROW LEVEL SECURITY, or make the admin "
     "role the owner",
     "owns no table with row-level security that is not forced"},
    {"rls.policy_true", RW_CHECK_WARN,
     "select format('%I on %s', p.polname, c.oid::regclass),"
     "  case when pg_get_expr(p.polqual, p.polrelid) = 'true' then 'USING (true)'"
     "       else 'WITH CHECK (true)' end"
     " from pg_catalog.pg_policy p join pg_catalog.pg_class c on c.oid = p.polrelid"
     " join pg_catalog.pg_namespace n on n.oid = c.relnamespace"
     " where p.polpermissive and c.relrowsecurity and" USER_SCHEMA("n")
     " and ('0'::oid = any (p.polroles) or exists (select 1 from unnest(p.polroles) r"
     "      where pg_has_role(session_user, r, 'USAGE')))"
     " and has_table_privilege(session_user, c.oid, 'SELECT, INSERT, UPDATE, DELETE')"
     " and (pg_get_expr(p.polqual, p.polrelid) = 'true'"
     "      or pg_get_expr(p.polwithcheck, p.polrelid) = 'true')"
     " order by 1 limit $1",
     "is subject to policy ", ", which is ", ": every user's jobs pass it; fix: make the "
     "policy compare with (select auth.user_id()), or leave it if the rows are public",
     "no policy that applies to it is literally true"},
    {"functions.security_definer", RW_CHECK_WARN,
     "select p.oid::regprocedure::text, pg_get_userbyid(p.proowner)::text"
     " from pg_catalog.pg_proc p join pg_catalog.pg_namespace n on n.oid = p.pronamespace"
     " where p.prosecdef and" USER_SCHEMA("n") " and not" INTENDED_API("n", "p")
     " and has_schema_privilege(session_user, n.oid, 'USAGE')"
     " and has_function_privilege(session_user, p.oid, 'EXECUTE')"
     " order by 1 limit $1",
     "can execute SECURITY DEFINER function ", " (runs as ", "), which is not subject to the "
     "role's RLS; fix: check that it authorizes by the current claims, or REVOKE "
     "EXECUTE on it from the role and PUBLIC",
     "can execute no SECURITY DEFINER function"},
    {"functions.immutable_reads_settings", RW_CHECK_WARN, RW_SQL_IMMUTABLE_READERS,
     "shares the database with function ", "", ", which is marked IMMUTABLE but reads settings "
     "or calls a function that is not IMMUTABLE: a plan that is reused keeps what it returned "
     "for one user's claims and shows it to the next (in the application's own prepared "
     "statements too), so rlsworker plans every user job for its own claims while it exists; "
     "fix: ALTER FUNCTION ... STABLE",
     "no function marked IMMUTABLE reads settings"},
    {"views.security_invoker", RW_CHECK_WARN,
     "select c.oid::regclass::text, pg_get_userbyid(c.relowner)::text"
     " from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace"
     " where c.relkind in ('v', 'm') and" USER_SCHEMA("n")
     " and pg_get_userbyid(c.relowner) <> session_user"
     " and has_schema_privilege(session_user, n.oid, 'USAGE')"
     " and has_table_privilege(session_user, c.oid, 'SELECT, INSERT, UPDATE, DELETE')"
     " and not exists (select 1 from unnest(c.reloptions) o where lower(o) in"
     "   ('security_invoker=true', 'security_invoker=on', 'security_invoker=1',"
     "    'security_invoker=yes'))"
     " order by 1 limit $1",
     "can read view ", ", which runs with its owner's (", ") rights, not the role's, so RLS "
     "of the tables under it is the owner's; fix: ALTER VIEW ... SET (security_invoker = "
     "true) (a materialized view cannot: REVOKE it instead)",
     "can read no view that bypasses its RLS (all use security_invoker)"},
};

static int check_finding(PGconn *c, const char *role, const struct finding *f,
                         struct rw_report *rep)
{
    char limit[16];
    const char *params[] = {limit};
    PGresult *r;

    snprintf(limit, sizeof limit, "%d", DOCTOR_MAX_ROWS + 1);
    r = rw_rolecheck_query(c, f->sql, 1, params, rep, f->id, role);
    if (!r)
        return -1;
    int n = PQntuples(r);
    for (int i = 0; i < n && i < DOCTOR_MAX_ROWS; i++)
        rw_report_add(rep, f->id, f->status, role, "%s%s%s%s%s", f->pre, PQgetvalue(r, i, 0),
                      f->mid, PQgetvalue(r, i, 1), f->post);
    if (n > DOCTOR_MAX_ROWS)
        rw_report_add(rep, f->id, f->status, role, "and more than %d others not listed",
                      n - DOCTOR_MAX_ROWS);
    if (n == 0)
        rw_report_add(rep, f->id, RW_CHECK_PASS, role, "%s", f->pass);
    PQclear(r);
    return 0;
}

static int check_user_id_function(PGconn *c, const char *role, struct rw_report *rep)
{
    PGresult *r = rw_rolecheck_query(c,
        "select to_regprocedure('auth.user_id()') is not null,"
        " coalesce(has_schema_privilege(session_user, to_regnamespace('auth'), 'USAGE')"
        "   and has_function_privilege(session_user, to_regprocedure('auth.user_id()'),"
        "                              'EXECUTE'), false)",
        0, NULL, rep, "auth.user_id", role);
    if (!r)
        return -1;
    if (strcmp(PQgetvalue(r, 0, 0), "t") != 0)
        rw_report_add(rep, "auth.user_id", RW_CHECK_WARN, role,
                      "function auth.user_id() does not exist, so policies written as "
                      "(select auth.user_id()) = user_id cannot work; fix: CREATE EXTENSION "
                      "pg_session_jwt, or create auth.user_id() reading request.jwt.claims "
                      "(see docs/security.md)");
    else if (strcmp(PQgetvalue(r, 0, 1), "t") != 0)
        rw_report_add(rep, "auth.user_id", RW_CHECK_WARN, role,
                      "cannot call auth.user_id(); fix: GRANT USAGE ON SCHEMA auth TO %s; "
                      "GRANT EXECUTE ON FUNCTION auth.user_id() TO %s", role, role);
    else
        rw_report_add(rep, "auth.user_id", RW_CHECK_PASS, role,
                      "can call auth.user_id()");
    PQclear(r);
    return 0;
}

int rw_rolecheck_warnings(PGconn *restricted, struct rw_report *rep)
{
    const char *role = PQuser(restricted);
    int result = 0;

    for (size_t i = 0; i < sizeof findings / sizeof findings[0]; i++)
        if (check_finding(restricted, role, &findings[i], rep) < 0)
            result = -1;
    if (check_user_id_function(restricted, role, rep) < 0)
        result = -1;
    return result;
}

/* A random version-4 UUID as text, so that auth.user_id() returning uuid
 * works too. Returns 0, or -1 when no randomness is available. */
static int random_uuid(char out[37])
{
    unsigned char b[16];

    if (RAND_bytes(b, sizeof b) != 1)
        return -1;
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
             b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11],
             b[12], b[13], b[14], b[15]);
    return 0;
}

/* Inside the canary transaction: sets the claims, reads the subject back.
 * Returns 0 with got filled, or -1 (FAIL added). */
static int canary_read(PGconn *c, const char *role, const char *claims, char *got,
                       size_t gotlen, struct rw_report *rep)
{
    const char *params[] = {claims};
    PGresult *r = rw_rolecheck_query(c,
        "select set_config('request.jwt.claims', $1, true)", 1, params, rep,
        "canary", role);
    if (!r)
        return -1;
    PQclear(r);
    r = rw_rolecheck_query(c, "select to_regprocedure('auth.user_id()') is not null",
                           0, NULL, rep, "canary", role);
    if (!r)
        return -1;
    bool has_user_id = strcmp(PQgetvalue(r, 0, 0), "t") == 0;
    PQclear(r);
    /* auth.user_id() when it exists; else the raw setting policies could use */
    r = rw_rolecheck_query(c, has_user_id
                           ? "select (select auth.user_id())::text"
                           : "select current_setting('request.jwt.claims', true)::jsonb"
                             " ->> 'sub'", 0, NULL, rep, "canary", role);
    if (!r)
        return -1;
    snprintf(got, gotlen, "%s", PQgetisnull(r, 0, 0) ? "(null)" : PQgetvalue(r, 0, 0));
    PQclear(r);
    return 0;
}

int rw_rolecheck_canary(PGconn *restricted, struct rw_report *rep)
{
    const char *role = PQuser(restricted);
    char sub[37], claims[96], got[128];
    PGresult *r;
    int rc;

    if (random_uuid(sub) < 0) {
        rw_report_add(rep, "canary", RW_CHECK_FAIL, role, "no randomness for the canary");
        return -1;
    }
    snprintf(claims, sizeof claims, "{\"sub\": \"%s\"}", sub);
    r = rw_rolecheck_query(restricted, "begin", 0, NULL, rep, "canary", role);
    if (!r)
        return -1;
    PQclear(r);
    rc = canary_read(restricted, role, claims, got, sizeof got, rep);
    PQclear(PQexec(restricted, "rollback"));
    if (rc < 0)
        return -1;
    if (strcmp(got, sub) != 0) {
        rw_report_add(rep, "canary", RW_CHECK_FAIL, role,
                      "with claims {\"sub\": \"%s\"} set for the transaction, the user id "
                      "read back was \"%s\"; fix: auth.user_id() must return the `sub` of "
                      "request.jwt.claims", sub, got);
        return -1;
    }
    r = rw_rolecheck_query(restricted,
        "select coalesce(current_setting('request.jwt.claims', true), '')",
        0, NULL, rep, "canary", role);
    if (!r)
        return -1;
    rc = PQgetvalue(r, 0, 0)[0] ? -1 : 0;
    PQclear(r);
    if (rc < 0)
        rw_report_add(rep, "canary", RW_CHECK_FAIL, role,
                      "request.jwt.claims is still set after ROLLBACK, so claims would leak "
                      "from one job to the next; fix: check for extensions or hooks that "
                      "set it at session level");
    else
        rw_report_add(rep, "canary", RW_CHECK_PASS, role,
                      "a transaction with a random sub sees it as the user id, and after "
                      "ROLLBACK the claims are empty");
    return rc;
}
