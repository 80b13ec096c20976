/* Role and RLS checks: the fail-closed start-up checks of `rlsworker run`
 * and the report of `rlsworker doctor` (docs/security.md).
 *
 * A report is a list of checks, each with a stable id (e.g.
 * "restricted.bypassrls"), a status, the role it is about and a message that
 * says what is wrong and how to fix it. Checks add to a report; the caller
 * decides what a FAIL means (run: refuse to start; doctor: exit 1).
 *
 * All functions here use blocking libpq and are for start-up and the CLI,
 * never for the event loop. Connection strings are never printed (they may
 * hold passwords); messages name roles, hosts and databases only. */
#ifndef RW_ROLECHECK_H
#define RW_ROLECHECK_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "worker/base/config.h"

enum rw_check_status { RW_CHECK_PASS, RW_CHECK_INFO, RW_CHECK_WARN, RW_CHECK_FAIL };

#define RW_CHECK_ID_MAX 48
#define RW_CHECK_ROLE_MAX 64        /* NAMEDATALEN */
#define RW_CHECK_MSG_MAX 1024       /* longer messages are cut */
#define RW_REPORT_MAX_CHECKS 1024   /* more are dropped and counted */

struct rw_check {
    char id[RW_CHECK_ID_MAX];
    enum rw_check_status status;
    char role[RW_CHECK_ROLE_MAX];   /* "" when about no one role */
    char config[RW_CHECK_ROLE_MAX + 32]; /* the configured connection it checked:
                                       "DATABASE_URL", "DATABASE_AUTHENTICATED_URL",
                                       "role.NAME"; "" when none */
    char *message;                  /* owned by the report */
};

struct rw_report {
    struct rw_check *checks;        /* owned; n used, cap allocated */
    int n, cap;
    int dropped;                    /* checks not kept (limit or OOM) */
    bool dropped_fail;              /* one of them was a FAIL */
};

void rw_report_init(struct rw_report *rep);
void rw_report_free(struct rw_report *rep);

/* Adds one check; role may be NULL. Never fails: on OOM or past the limit
 * the check is counted in rep->dropped, and a dropped FAIL still makes
 * rw_report_has_fail true. */
void rw_report_add(struct rw_report *rep, const char *id, enum rw_check_status st,
                   const char *role, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* Labels every check from index `first` on with the configured connection
 * it is about (`source`, e.g. "DATABASE_URL" or "role.NAME"). */
void rw_report_label(struct rw_report *rep, int first, const char *source);

bool rw_report_has_fail(const struct rw_report *rep);
int rw_report_count(const struct rw_report *rep, enum rw_check_status st);
const char *rw_check_status_name(enum rw_check_status st);

/* Text: one "STATUS  role  id: message" line per check and a summary line. */
void rw_report_print_text(const struct rw_report *rep, FILE *out);
/* JSON: {"ok": bool, "summary": {...}, "checks": [{id,status,role,message}]}.
 * Returns 0, or -1 on OOM / write error. */
int rw_report_print_json(const struct rw_report *rep, FILE *out)
    __attribute__((warn_unused_result));

/* Connects with blocking libpq (connect_timeout_s, application_name set)
 * and adds a check `<what>.login`: PASS, or FAIL naming the role the URL
 * logs in as and `source` (where the URL came from, e.g. "DATABASE_URL"),
 * never the URL itself. `what` is "admin" or "restricted". Returns the
 * connection (caller owns it, PQfinish) or NULL. */
PGconn *rw_rolecheck_connect(const char *url, const char *what, const char *source,
                             int connect_timeout_s, struct rw_report *rep);

/* The fail-closed checks of one restricted connection: who it logs in as
 * (must be expected_role when not NULL, and session_user = current_user),
 * superuser, BYPASSRLS, CREATEROLE, membership (direct, inherited or SET
 * ROLE-able, through any chain) in a superuser/BYPASSRLS/CREATEROLE role or
 * in a role owning tables this role is granted,
 * role/database defaults for request.jwt.* / role / session_authorization,
 * claims already set on a fresh connection, any privilege on schema
 * rlsworker. admin (borrowed, may be NULL) is only used to compare
 * databases. Returns 0, or -1 when a query failed (a FAIL is added too). */
int rw_rolecheck_restricted(PGconn *restricted, const char *expected_role, PGconn *admin,
                            struct rw_report *rep) __attribute__((warn_unused_result));

/* The admin connection: schema rlsworker at this binary's version, can read,
 * insert, update and delete rlsworker.jobs and run claim_jobs; BYPASSRLS is
 * INFO, superuser WARN. Returns 0, or -1 when a query failed. */
int rw_rolecheck_admin(PGconn *admin, struct rw_report *rep)
    __attribute__((warn_unused_result));

/* Doctor only: what the restricted role can reach that weakens RLS (tables
 * without RLS, owned tables without FORCE, policies that are literally true,
 * SECURITY DEFINER functions, views without security_invoker, auth.user_id()
 * missing). Returns 0, or -1 when a query failed. */
int rw_rolecheck_warnings(PGconn *restricted, struct rw_report *rep)
    __attribute__((warn_unused_result));

/* Doctor only: in a transaction with a random `sub`, auth.user_id() (or the
 * raw setting when that function is missing) returns it, and after ROLLBACK
 * request.jwt.claims is empty again. Returns 0, or -1 on failure. */
int rw_rolecheck_canary(PGconn *restricted, struct rw_report *rep)
    __attribute__((warn_unused_result));

/* Functions marked IMMUTABLE that read settings (current_setting, the JWT
 * claims, the current role) or call a function that is not IMMUTABLE: the
 * planner evaluates an IMMUTABLE function while it plans, so a plan that is
 * reused keeps what the function returned for the claims set then, and
 * shows it to the next user. SQL and PL/pgSQL functions outside the
 * system's schemas and extensions; a body is read as text (a name built at
 * run time escapes it). Column 0: the function, 1: ''; $1: most rows.
 * doctor warns of each; `rlsworker run` plans every user job for its own
 * claims while there is one (docs/guarantees.md, "Plans"). */
#define RW_SQL_IMMUTABLE_READERS                                               \
    "select p.oid::regprocedure::text, '' from pg_catalog.pg_proc p"           \
    " join pg_catalog.pg_namespace n on n.oid = p.pronamespace"                \
    " where p.provolatile = 'i' and p.prokind = 'f'"                           \
    " and n.nspname not in ('pg_catalog', 'information_schema')"               \
    " and n.nspname not like 'pg\\_%'"                                        \
    " and p.prolang in (select l.oid from pg_catalog.pg_language l"            \
    "                   where l.lanname in ('sql', 'plpgsql'))"                 \
    " and not exists (select from pg_catalog.pg_depend e"                      \
    "   where e.classid = 'pg_catalog.pg_proc'::regclass and e.objid = p.oid"  \
    "   and e.deptype = 'e')"                                                  \
    " and (p.prosrc ~* 'current_setting|request\\.jwt|current_user|session_user|current_role'" \
    "   or exists (select from pg_catalog.pg_proc g"                           \
    "     join pg_catalog.pg_namespace gn on gn.oid = g.pronamespace"          \
    "     where g.provolatile <> 'i' and g.proname ~ '^[a-z_][a-z0-9_]*$'"     \
    "     and gn.nspname not in ('pg_catalog', 'information_schema')"          \
    "     and p.prosrc ~* ('\\m' || g.proname || '\\s*\\('))"                  \
    "   or exists (select from pg_catalog.pg_depend d"                         \
    "     join pg_catalog.pg_proc g on g.oid = d.refobjid"                     \
    "     where d.classid = 'pg_catalog.pg_proc'::regclass and d.objid = p.oid" \
    "     and d.refclassid = 'pg_catalog.pg_proc'::regclass"                   \
    "     and g.provolatile <> 'i'))"                                          \
    " order by 1 limit $1"

/* Shared by the checks (rolecheck.c, doctor.c): runs one parameterized
 * query; on error adds a FAIL check `id` about `role` and returns NULL.
 * The caller owns the result (PQclear). */
PGresult *rw_rolecheck_query(PGconn *c, const char *sql, int nparams,
                             const char *const *params, struct rw_report *rep,
                             const char *id, const char *role);
/* Copies a libpq error message as one line (newlines become "; "). */
void rw_rolecheck_oneline(char *dst, size_t dstlen, const char *msg);

/* Every check above for the admin URL and each restricted URL of cfg
 * (DATABASE_AUTHENTICATED_URL and every role.NAME); warnings and canary
 * only when `doctor` is true. Adds to rep. */
void rw_rolecheck_all(const struct rw_config *cfg, bool doctor, struct rw_report *rep);

/* For `rlsworker run`: runs the fail-closed checks of cfg. Returns 0 when
 * they pass, or -1 with err holding one line per FAIL ("role \"x\": what is
 * wrong; how to fix it"). WARN lines go to the log. */
int rw_rolecheck_startup(const struct rw_config *cfg, char *err, size_t errlen)
    __attribute__((warn_unused_result));

#endif
