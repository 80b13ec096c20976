/* A SQL task's run on its connection (the executor's other half,
 * executor.c, checks the job, picks its role's pool and waits for it).
 *
 * SQL tasks run as one pipelined transaction on a connection of the job's
 * role: BEGIN; transaction-local settings (claims, statement_timeout, chain
 * token); the task's statements with bound parameters; completion of the
 * job (rlsworker_api.complete_job, so effects and completion commit
 * together); COMMIT; DISCARD ALL, which resets the session (temporary
 * tables, settings, role, prepared statements, cursors, advisory locks,
 * listens) in the same round trip. Any error rolls everything back and the
 * attempt is reported as failed through the control connection; the
 * rollback is followed by DISCARD ALL too. A connection goes back to its
 * pool only when DISCARD ALL was seen to succeed; otherwise it is closed. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jobs/exec/exec_int.h"
#include "worker/base/config.h"
#include "worker/base/log.h"
#include "worker/pg/errtext.h"

#define SQLSTATE_NOT_HELD "RW001"
#define SQLSTATE_QUERY_CANCELED "57014"

#define FIXED_BEFORE 2   /* begin; settings */
#define FIXED_AFTER 3    /* complete_job; commit; session reset */

/* Resets everything a job can leave in its session: CLOSE ALL, SET SESSION
 * AUTHORIZATION DEFAULT (which also ends a SET ROLE), RESET ALL, DEALLOCATE
 * ALL, UNLISTEN *, pg_advisory_unlock_all(), DISCARD PLANS, TEMP, SEQUENCES.
 * It cannot run inside a transaction block, so it follows COMMIT/ROLLBACK. */
#define SESSION_RESET "discard all"

struct sql_run {
    struct rw_job *job;
    struct rw_bind *binds;
    int nbinds;
};

static void sql_run_free(struct sql_run *run)
{
    for (int i = 0; i < run->nbinds; i++)
        rw_task_bind_free(&run->binds[i]);
    free(run->binds);
    free(run);
}

static void describe_error(struct rw_job *job, const struct rw_pg_result *r,
                           char *err, size_t errlen)
{
    int failed = -1;

    for (int i = 0; i < r->nresults; i++) {
        ExecStatusType st = r->results[i] ? PQresultStatus(r->results[i]) : PGRES_EMPTY_QUERY;
        if (st == PGRES_FATAL_ERROR || st == PGRES_NONFATAL_ERROR) {
            failed = i;
            break;
        }
    }
    int s = failed - FIXED_BEFORE;
    bool canceled = r->sqlstate && strcmp(r->sqlstate, SQLSTATE_QUERY_CANCELED) == 0;
    char pgerr[RW_ERRTEXT_MAX + 64];

    /* last_error is shown by `jobs show`: primary message and SQLSTATE only,
     * without values PostgreSQL echoes (payload, claims), one bounded line */
    rw_errtext_pg(pgerr, sizeof pgerr, r->error, r->sqlstate);
    if (job->timed_out || (canceled && !job->cancel_requested))
        snprintf(err, errlen, "timed out after %d s", rw_exec_timeout_s(job));
    else if (job->cancel_requested)
        snprintf(err, errlen, "cancelled: %s", r->error ? pgerr : "by operator");
    else if (s >= 0 && s < job->t->nstmts)
        snprintf(err, errlen, "statement %d (%s:%d): %s", s + 1,
                 job->t->path ? job->t->path : job->t->name, job->t->stmts[s].line,
                 pgerr);
    else
        snprintf(err, errlen, "%s", pgerr);
}

/* Statement i of an op ran and succeeded (its result was seen). */
static bool stmt_ok(const struct rw_pg_result *r, int i)
{
    return i >= 0 && i < r->nresults && r->results[i] &&
           PQresultStatus(r->results[i]) == PGRES_COMMAND_OK;
}

static void after_reset(rw_pg *pg, const struct rw_pg_result *r, void *arg)
{
    struct rw_pconn *pc = arg;

    if (r->ok && stmt_ok(r, r->nresults - 1))
        rw_pool_mark_clean(pc);
    else if (!r->conn_lost)
        rw_warn("could not reset the session of a connection of role %s after a failed "
                "job: %s; closing it", rw_pool_name(rw_pconn_pool(pc)),
                r->error ? r->error : "unknown error");
    rw_pool_release(pc);
}

/* After a failed job: ROLLBACK when a transaction is open, then DISCARD
 * ALL; the connection goes back to the pool (or is closed) when they are
 * done. */
static void reset_after_failure(rw_pg *pg, struct rw_pconn *pc)
{
    static const struct rw_pg_stmt rollback_reset[] = {
        {"rollback", 0, NULL, NULL, false}, {SESSION_RESET, 0, NULL, NULL, false}};
    PGconn *c = rw_pg_conn(pg);
    bool in_xact = c && PQtransactionStatus(c) != PQTRANS_IDLE;

    if (c && rw_pg_submit(pg, in_xact ? rollback_reset : rollback_reset + 1,
                          in_xact ? 2 : 1, after_reset, pc) == 0)
        return;
    rw_pool_release(pc);   /* not marked clean: closed */
}

void rw_exec_reset_after_failure(rw_pg *pg, struct rw_pconn *pc)
{
    reset_after_failure(pg, pc);
}

static void sql_done(rw_pg *pg, const struct rw_pg_result *r, void *arg)
{
    struct sql_run *run = arg;
    struct rw_job *job = run->job;
    struct rw_pconn *pc = job->pc;
    char err[1200];

    sql_run_free(run);
    job->pc = NULL;
    if (r->ok && stmt_ok(r, r->nresults - 1)) {
        rw_pool_mark_clean(pc);
        rw_pool_release(pc);
        rw_exec_committed(job);
        return;
    }
    if (stmt_ok(r, r->nresults - 2)) {
        /* committed, but the session reset failed or was not seen */
        rw_job_log(RW_LOG_WARNING, job, "could not reset the session after the job: %s; "
                   "closing its connection", r->error ? r->error : "no result");
        rw_pool_release(pc);
        rw_exec_committed(job);
        return;
    }
    if (r->conn_lost && job->abandoned) {
        rw_pool_release(pc);
        rw_exec_released(job);
        return;
    }
    if (r->conn_lost) {
        rw_pool_release(pc);
        if (job->timed_out)
            snprintf(err, sizeof err, "timed out after %d s (the connection was dropped "
                     "when the cancel had no effect)", rw_exec_timeout_s(job));
        else if (job->cancel_requested)
            snprintf(err, sizeof err, "cancelled: by operator (the connection was dropped "
                     "when the cancel had no effect)");
        else
            snprintf(err, sizeof err, "connection lost while running: %s", r->error);
        /* an operator's cancel is final also when only dropping the connection stopped it */
        rw_exec_failed(job, err, job->cancel_requested && !job->timed_out);
        return;
    }
    describe_error(job, r, err, sizeof err);
    reset_after_failure(pg, pc);
    if (r->sqlstate && strcmp(r->sqlstate, SQLSTATE_NOT_HELD) == 0) {
        /* lock recovery gave the job to another worker: nothing to report */
        rw_job_log(RW_LOG_WARNING, job, "no longer held by this worker; its effects were rolled back");
        rw_exec_lost(job);
        return;
    }
    if (job->abandoned) {
        rw_exec_released(job);
        return;
    }
    rw_exec_failed(job, err, job->cancel_requested && !job->timed_out);
}

static int bind_all(struct rw_job *job, struct sql_run *run, char *err, size_t errlen)
{
    const struct rw_task *t = job->t;

    run->binds = calloc((size_t)t->nstmts, sizeof *run->binds);
    if (!run->binds) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (int i = 0; i < t->nstmts; i++) {
        if (rw_task_bind(&t->stmts[i], job->payload, job->subject, job->id,
                         job->attempts, &run->binds[i], err, errlen) < 0)
            return -1;
        run->nbinds++;
    }
    return 0;
}

/* A user job's settings, first in its transaction, all transaction-local.
 * plan_cache_mode ($4): force_custom_plan, so a statement prepared once for
 * a group (group.c) is planned again for each job, with the job's claims in
 * place, as an unnamed statement is: a generic plan made while a job's
 * claims are set would keep whatever a function wrongly marked IMMUTABLE
 * returned for them. auto only in a group whose plans were shown not to
 * depend on the claims and were made without any
 * (rlsworker_api.plan_generic, deploy/sql/018). */
#define SET_CLAIMS_SQL                                                        \
    "select set_config('request.jwt.claims', $1, true),"                   \
    " set_config('statement_timeout', $2, true),"                          \
    " set_config('rlsworker.chain_token', $3, true),"                      \
    " set_config('plan_cache_mode', $4, true)"
static const char set_claims_sql[] = SET_CLAIMS_SQL;
/* The same, plus request.jwt.claim.<name> for `sub` ($5 = 'sub') or every
 * top-level string claim ($5 = 'all') (claim_settings, docs/security.md).
 * A name is used only when it is a plain identifier PostgreSQL accepts in
 * a setting name, and no other claim differs from it only in case (setting
 * names are case-insensitive: "SUB" must not overwrite "sub"). */
static const char set_claims_and_gucs_sql[] =
    SET_CLAIMS_SQL ","
    " (select count(set_config('request.jwt.claim.' || c.key, c.value #>> '{}', true))"
    "    from jsonb_each(case jsonb_typeof($1::jsonb) when 'object' then $1::jsonb"
    "                    else '{}' end) c"
    "   where jsonb_typeof(c.value) = 'string'"
    "     and ($5 = 'all' or c.key = 'sub')"
    "     and c.key ~ '^[A-Za-z_][A-Za-z0-9_]*$'"
    "     and (select count(*) from jsonb_object_keys($1::jsonb) k"
    "           where lower(k) = lower(c.key)) = 1)";

struct rw_pg_stmt rw_exec_settings_stmt(struct rw_job *job, const char **params, const char *tmo,
                                        bool plans_once)
{
    params[0] = job->claims;
    params[1] = tmo;
    params[2] = job->t->chain ? job->lock_token : "";
    params[3] = plans_once ? "auto" : "force_custom_plan";
    params[4] = job->ex->cfg->claim_settings;
    return strcmp(params[4], "off") == 0
        ? RW_PG_STMT(set_claims_sql, 4, params)
        : RW_PG_STMT(set_claims_and_gucs_sql, 5, params);
}

/* The pool's waiter callback: the job has its connection. */
void rw_exec_on_conn(struct rw_pool_waiter *wt, struct rw_pconn *pc)
{
    struct rw_job *job = (struct rw_job *)((char *)wt - offsetof(struct rw_job, waiter));
    const struct rw_task *t = job->t;
    rw_pg *pg = rw_pconn_pg(pc);
    struct sql_run *run = calloc(1, sizeof *run);
    int n = t->nstmts + FIXED_BEFORE + FIXED_AFTER;
    struct rw_pg_stmt *st = calloc((size_t)n, sizeof *st);
    char id[32], tmo[32], err[600];
    const char *set_params[RW_SETTINGS_NPARAMS], *done_params[2];
    bool user = t->run_as != RW_RUN_AS_SYSTEM;   /* from the task, never the pool */

    job->pc = pc;
    rw_job_set_state(job, RW_JOB_RUNNING);
    job->started = ev_now(job->ex->loop);
    if (!run || !st) {
        free(run);
        free(st);
        rw_pool_mark_clean(pc);     /* nothing was sent on it */
        rw_pool_release(pc);
        job->pc = NULL;
        rw_exec_failed(job, "out of memory", false);
        return;
    }
    run->job = job;
    if (PQtransactionStatus(rw_pg_conn(pg)) != PQTRANS_IDLE) {
        /* never happens by design; refuse to run on such a connection */
        free(st);
        sql_run_free(run);
        job->pc = NULL;
        rw_pool_release(pc);
        rw_exec_failed(job, "connection was not idle before the job; discarded it", false);
        return;
    }
    if (bind_all(job, run, err, sizeof err) < 0) {
        free(st);
        sql_run_free(run);
        job->pc = NULL;
        rw_pool_mark_clean(pc);     /* nothing was sent on it */
        rw_pool_release(pc);
        rw_exec_failed(job, err, true);
        return;
    }
    snprintf(id, sizeof id, "%lld", job->id);
    snprintf(tmo, sizeof tmo, "%d", rw_exec_timeout_s(job) * 1000);
    st[0] = RW_PG_STMT("begin", 0, NULL);
    if (user) {
        st[1] = rw_exec_settings_stmt(job, set_params, tmo, false);
    } else {
        set_params[0] = tmo;
        st[1] = RW_PG_STMT(
            "select set_config('statement_timeout', $1, true),"
            " set_config('request.jwt.claims', '', true)", 1, set_params);
    }
    for (int i = 0; i < t->nstmts; i++)
        st[FIXED_BEFORE + i] = RW_PG_STMT(t->stmts[i].sql, t->stmts[i].nparams,
                                          run->binds[i].values);
    done_params[0] = id;
    done_params[1] = job->lock_token;
    st[n - 3] = RW_PG_STMT(
        "select rlsworker_api.complete_job($1::bigint, $2::uuid)", 2, done_params);
    st[n - 2] = RW_PG_STMT("commit", 0, NULL);
    st[n - 1] = RW_PG_STMT(SESSION_RESET, 0, NULL);
    ev_timer_set(&job->timeout, rw_exec_timeout_s(job) + 2.0, 0.);
    ev_timer_start(job->ex->loop, &job->timeout);
    int rc = rw_pg_submit(pg, st, n, sql_done, run);
    free(st);
    if (rc < 0) {
        sql_run_free(run);
        job->pc = NULL;
        rw_pool_release(pc);
        rw_exec_failed(job, "could not send the job's statements", false);
    }
}

/* The job never started: it goes back uncounted (the database may be
 * restarting; a role that cannot log in at all is refused at start-up). */
void rw_exec_on_conn_failed(struct rw_pool_waiter *wt, const char *why)
{
    struct rw_job *job = (struct rw_job *)((char *)wt - offsetof(struct rw_job, waiter));

    rw_job_log(RW_LOG_WARNING, job, "could not connect as role %s: %s",
               rw_pool_name(job->pool), why);
    rw_exec_released(job);
}
