/* Runs one claimed job.
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
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "jobs/exec/backoff.h"
#include "jobs/exec/exec_int.h"
#include "jobs/exec/group.h"
#include "worker/base/config.h"
#include "worker/base/log.h"
#include "worker/base/metrics.h"
#include "worker/net/http_client.h"
#include "worker/pg/errtext.h"

#define SQLSTATE_NOT_HELD "RW001"
#define SQLSTATE_QUERY_CANCELED "57014"
#define CANCEL_GRACE_S 5.0


static int max_attempts(const struct rw_job *job)
{
    if (job->max_attempts > 0)
        return job->max_attempts;
    if (job->t && job->t->max_attempts > 0)
        return job->t->max_attempts;
    return job->ex->cfg->max_attempts;
}

static int timeout_s(const struct rw_job *job)
{
    return job->t && job->t->timeout_s > 0 ? job->t->timeout_s : job->ex->cfg->task_timeout_s;
}

/* The job leaves the executor: metrics, then on_end hands it back to its
 * owner, who frees it. */
static void job_end(struct rw_job *job, const char *outcome, const struct rw_job_end *end)
{
    struct rw_executor *ex = job->ex;

    if (outcome)
        rw_metrics_job(ex->metrics, job->task, outcome, ev_now(ex->loop) - job->started);

    ev_timer_stop(ex->loop, &job->timeout);
    rw_job_set_state(job, RW_JOB_ENDED);
    ex->cb.on_end(job, end, ex->cb.arg);
}

/* The one place a job's outcome is decided. */
static void job_failed(struct rw_job *job, const char *error, bool final)
{
    const struct rw_config *cfg = job->ex->cfg;
    bool dead = final || job->attempts >= max_attempts(job);
    long long delay = dead ? 0 : rw_backoff_ms(job->attempts, cfg->backoff_base_ms,
                                               (long long)cfg->backoff_max_s * 1000,
                                               (uint32_t)random());

    if (dead)
        rw_job_log(RW_LOG_WARNING, job, "failed, no retry: %s", error);
    else
        rw_job_log(RW_LOG_INFO, job, "failed, retry in %lld ms: %s", delay, error);
    struct rw_job_end end = {dead ? RW_JOB_DEAD : RW_JOB_FAILED, false, error, delay};
    job_end(job, dead ? "dead" : "failed", &end);
}

static void job_completed(struct rw_job *job, bool report)
{
    struct rw_job_end end = {RW_JOB_COMPLETED, !report, NULL, 0};

    if (rw_log_enabled(RW_LOG_DEBUG))
        rw_job_log(RW_LOG_DEBUG, job, "completed in %.1f ms",
                   (ev_now(job->ex->loop) - job->started) * 1000.0);
    job_end(job, "completed", &end);
}

static void job_released(struct rw_job *job)
{
    rw_job_log(RW_LOG_INFO, job, "put back in the queue without counting the attempt");
    struct rw_job_end end = {RW_JOB_RELEASED, false, NULL, 0};
    job_end(job, "released", &end);
}

/* ---- the executor ------------------------------------------------------ */

struct rw_executor *rw_exec_new(struct ev_loop *loop, const struct rw_config *cfg,
                                const struct rw_exec_pools *pools,
                                struct rw_metrics *metrics, const struct rw_exec_callbacks *cb)
{
    struct rw_executor *ex = calloc(1, sizeof *ex);

    if (!ex)
        return NULL;
    *ex = (struct rw_executor){loop, cfg, *pools, metrics, NULL, *cb, NULL, NULL, {0}, false};
    return ex;
}

void rw_exec_set_tasks(struct rw_executor *ex, const struct rw_registry *tasks)
{
    ex->tasks = tasks;
}

void rw_exec_free(struct rw_executor **exp)
{
    struct rw_executor *ex = *exp;

    *exp = NULL;
    if (!ex)
        return;
    rw_http_client_free(&ex->http);  /* built-ins' HTTP client (jobs/builtin/http_task.c) */
    if (ex->group_prep_init)
        ev_prepare_stop(ex->loop, &ex->group_prep);
    free(ex);
}

void rw_exec_disconnect_all(struct rw_executor *ex)
{
    if (ex->pools.admin)
        rw_pool_disconnect_all(ex->pools.admin);
    for (int i = 0; i < ex->pools.nroles; i++)
        rw_pool_disconnect_all(ex->pools.roles[i].pool);
}

/* The pool of a configured restricted role, or NULL: the table it searches
 * never holds the admin pool. */
static struct rw_pool *restricted_pool(const struct rw_executor *ex, const char *role)
{
    for (int i = 0; i < ex->pools.nroles; i++)
        if (ex->pools.roles[i].name && strcmp(ex->pools.roles[i].name, role) == 0)
            return ex->pools.roles[i].pool;
    return NULL;
}

/* ---- choosing the role ------------------------------------------------ */

/* A chained job runs only if its task opted in and only on the restricted
 * role of the job that chained it (run_as, set by chain_job). */
static bool check_chained(struct rw_job *job, char *err, size_t errlen)
{
    const struct rw_task *t = job->t;
    const char *role = t->run_as == RW_RUN_AS_ROLE ? t->role : job->ex->pools.user_role;

    if (!job->chained_by)
        return true;
    if (!t->chained || t->run_as == RW_RUN_AS_SYSTEM) {
        snprintf(err, errlen, "task %s does not accept chained jobs (chained by job %lld); "
                 "a task file opts in with `-- chained: allow`, built-ins and system tasks "
                 "never do", t->name, job->chained_by);
        return false;
    }
    if (!job->run_as || !role || strcmp(job->run_as, role) != 0) {
        snprintf(err, errlen, "task %s runs as role %s, but job %lld that chained it ran as "
                 "%s; a chained job runs only on the role of the job that chained it",
                 t->name, role ? role : "?", job->chained_by,
                 job->run_as ? job->run_as : "?");
        return false;
    }
    return true;
}

/* System tasks get the admin pool; every other job resolves its role in the
 * restricted table alone, so no run_as can name the admin connection. */
static struct rw_pool *pick_pool(struct rw_job *job, char *err, size_t errlen)
{
    const struct rw_task *t = job->t;
    const char *want = job->run_as;
    const char *name;
    struct rw_pool *p;

    if (t->run_as == RW_RUN_AS_SYSTEM) {
        if (want && strcmp(want, "system") != 0) {
            snprintf(err, errlen, "task %s runs as system, but the job asks for run_as \"%s\"",
                     t->name, want);
            return NULL;
        }
        return job->ex->pools.admin;
    }
    if (want && strcmp(want, "system") == 0) {
        snprintf(err, errlen, "task %s is user-scoped and cannot run as system", t->name);
        return NULL;
    }
    if (want && strcmp(want, "user") != 0)
        name = want;
    else
        name = t->run_as == RW_RUN_AS_ROLE ? t->role : job->ex->pools.user_role;
    p = name ? restricted_pool(job->ex, name) : NULL;
    if (!p)
        snprintf(err, errlen, "no connection is configured for role \"%s\": "
                 "set role.%s = URL in the config file or pass --role %s=URL", name, name, name);
    return p;
}

static bool check_user_job(struct rw_job *job, char *err, size_t errlen)
{
    const struct rw_task *t = job->t;

    if (!job->claims) {
        snprintf(err, errlen, "task %s is user-scoped and the job has no claims; "
                 "enqueue it with claims (add_job(..., claims => ...), --claims or --token)",
                 t->name);
        return false;
    }
    if (t->claims_max_age_s > 0) {
        long long age = (long long)time(NULL) - job->claims_verified_at;
        if (job->claims_verified_at == 0 || age > t->claims_max_age_s) {
            snprintf(err, errlen, "claims are %lld s old, older than the task's "
                     "claims_max_age of %d s", age, t->claims_max_age_s);
            return false;
        }
    }
    return true;
}

/* ---- timeouts and cancellation ---------------------------------------- */

/* Asks a running built-in with an abort hook to stop; it still ends the
 * job itself, on a later loop turn. */
static void abort_builtin(struct rw_job *job)
{
    if (job->bj && job->t && job->t->builtin && job->t->builtin->abort)
        job->t->builtin->abort(job->bj);
}

static void on_timeout(struct ev_loop *loop, ev_timer *tm, int revents)
{
    struct rw_job *job = tm->data;
    char err[256];

    if (!job->timed_out && !job->cancel_requested) {
        job->timed_out = true;
        rw_job_log(RW_LOG_WARNING, job, "timed out after %d s, cancelling", timeout_s(job));
    }
    if (job->state == RW_JOB_RUNNING)
        rw_job_set_state(job, RW_JOB_STOPPING);
    if (job->pc && rw_job_running(job)) {
        rw_pg *pg = rw_pconn_pg(job->pc);
        if (tm->repeat == 0.) {
            /* first expiry: ask the server; second: drop the connection */
            if (rw_pg_cancel(pg, err, sizeof err) < 0)
                rw_job_log(RW_LOG_WARNING, job, "could not cancel: %s", err);
            tm->repeat = CANCEL_GRACE_S;
            ev_timer_again(loop, tm);
        } else {
            rw_pg_abort(pg, "job did not stop after cancel");
        }
        return;
    }
    if (rw_job_running(job) && job->t && job->t->builtin) {
        /* the built-in still owns its rw_builtin_job and will call done */
        job->timed_out = true;
        abort_builtin(job);
    }
}

void rw_job_cancel(struct rw_job *job, const char *why)
{
    job->cancel_requested = true;
    if (job->state == RW_JOB_WAITING) {
        if (job->group)
            rw_group_forget(job);
        else
            rw_pool_forget(job->pool, &job->waiter);
        job_failed(job, why, true);
        return;
    }
    if (job->state == RW_JOB_RUNNING && (job->pc || job->bj))
        rw_job_set_state(job, RW_JOB_STOPPING);
    if (rw_job_running(job) && job->pc) {
        char err[256];
        rw_job_log(RW_LOG_INFO, job, "cancelling: %s", why);
        if (rw_pg_cancel(rw_pconn_pg(job->pc), err, sizeof err) < 0)
            rw_job_log(RW_LOG_WARNING, job, "could not cancel: %s", err);
        ev_timer_stop(job->ex->loop, &job->timeout);
        job->timeout.repeat = CANCEL_GRACE_S;
        ev_timer_again(job->ex->loop, &job->timeout);
    }
    if (rw_job_running(job) && job->bj) {
        rw_job_log(RW_LOG_INFO, job, "cancelling: %s", why);
        abort_builtin(job);
    }
}

/* ---- SQL tasks --------------------------------------------------------- */

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
        snprintf(err, errlen, "timed out after %d s", timeout_s(job));
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
        {"rollback", 0, NULL}, {SESSION_RESET, 0, NULL}};
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
        job_completed(job, false);
        return;
    }
    if (stmt_ok(r, r->nresults - 2)) {
        /* committed, but the session reset failed or was not seen */
        rw_job_log(RW_LOG_WARNING, job, "could not reset the session after the job: %s; "
                   "closing its connection", r->error ? r->error : "no result");
        rw_pool_release(pc);
        job_completed(job, false);
        return;
    }
    if (r->conn_lost && job->abandoned) {
        rw_pool_release(pc);
        job_released(job);
        return;
    }
    if (r->conn_lost) {
        rw_pool_release(pc);
        if (job->timed_out)
            snprintf(err, sizeof err, "timed out after %d s (the connection was dropped "
                     "when the cancel had no effect)", timeout_s(job));
        else if (job->cancel_requested)
            snprintf(err, sizeof err, "cancelled: by operator (the connection was dropped "
                     "when the cancel had no effect)");
        else
            snprintf(err, sizeof err, "connection lost while running: %s", r->error);
        /* an operator's cancel is final also when only dropping the connection stopped it */
        job_failed(job, err, job->cancel_requested && !job->timed_out);
        return;
    }
    describe_error(job, r, err, sizeof err);
    reset_after_failure(pg, pc);
    if (r->sqlstate && strcmp(r->sqlstate, SQLSTATE_NOT_HELD) == 0) {
        /* lock recovery gave the job to another worker: nothing to report */
        rw_job_log(RW_LOG_WARNING, job, "no longer held by this worker; its effects were rolled back");
        struct rw_job_end end = {RW_JOB_LOST, false, NULL, 0};
        job_end(job, "lost", &end);
        return;
    }
    if (job->abandoned) {
        job_released(job);
        return;
    }
    job_failed(job, err, job->cancel_requested && !job->timed_out);
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

/* A user job's settings, first in its transaction, all transaction-local. */
static const char set_claims_sql[] =
    "select set_config('request.jwt.claims', $1, true),"
    " set_config('statement_timeout', $2, true),"
    " set_config('rlsworker.chain_token', $3, true)";
/* The same, plus request.jwt.claim.<name> for `sub` ($4 = 'sub') or every
 * top-level string claim ($4 = 'all') (claim_settings, docs/security.md).
 * A name is used only when it is a plain identifier PostgreSQL accepts in
 * a setting name, and no other claim differs from it only in case (setting
 * names are case-insensitive: "SUB" must not overwrite "sub"). */
static const char set_claims_and_gucs_sql[] =
    "select set_config('request.jwt.claims', $1, true),"
    " set_config('statement_timeout', $2, true),"
    " set_config('rlsworker.chain_token', $3, true),"
    " (select count(set_config('request.jwt.claim.' || c.key, c.value #>> '{}', true))"
    "    from jsonb_each(case jsonb_typeof($1::jsonb) when 'object' then $1::jsonb"
    "                    else '{}' end) c"
    "   where jsonb_typeof(c.value) = 'string'"
    "     and ($4 = 'all' or c.key = 'sub')"
    "     and c.key ~ '^[A-Za-z_][A-Za-z0-9_]*$'"
    "     and (select count(*) from jsonb_object_keys($1::jsonb) k"
    "           where lower(k) = lower(c.key)) = 1)";

struct rw_pg_stmt rw_exec_settings_stmt(struct rw_job *job, const char **params, const char *tmo)
{
    params[0] = job->claims;
    params[1] = tmo;
    params[2] = job->t->chain ? job->lock_token : "";
    params[3] = job->ex->cfg->claim_settings;
    return strcmp(params[3], "off") == 0
        ? (struct rw_pg_stmt){set_claims_sql, 3, params}
        : (struct rw_pg_stmt){set_claims_and_gucs_sql, 4, params};
}

/* The pool's waiter callback: the job has its connection. */
static void job_on_conn(struct rw_pool_waiter *wt, struct rw_pconn *pc)
{
    struct rw_job *job = (struct rw_job *)((char *)wt - offsetof(struct rw_job, waiter));
    const struct rw_task *t = job->t;
    rw_pg *pg = rw_pconn_pg(pc);
    struct sql_run *run = calloc(1, sizeof *run);
    int n = t->nstmts + FIXED_BEFORE + FIXED_AFTER;
    struct rw_pg_stmt *st = calloc((size_t)n, sizeof *st);
    char id[32], tmo[32], err[600];
    const char *set_params[4], *done_params[2];
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
        job_failed(job, "out of memory", false);
        return;
    }
    run->job = job;
    if (PQtransactionStatus(rw_pg_conn(pg)) != PQTRANS_IDLE) {
        /* never happens by design; refuse to run on such a connection */
        free(st);
        sql_run_free(run);
        job->pc = NULL;
        rw_pool_release(pc);
        job_failed(job, "connection was not idle before the job; discarded it", false);
        return;
    }
    if (bind_all(job, run, err, sizeof err) < 0) {
        free(st);
        sql_run_free(run);
        job->pc = NULL;
        rw_pool_mark_clean(pc);     /* nothing was sent on it */
        rw_pool_release(pc);
        job_failed(job, err, true);
        return;
    }
    snprintf(id, sizeof id, "%lld", job->id);
    snprintf(tmo, sizeof tmo, "%d", timeout_s(job) * 1000);
    st[0] = (struct rw_pg_stmt){"begin", 0, NULL};
    if (user) {
        set_params[0] = job->claims;
        set_params[1] = tmo;
        set_params[2] = t->chain ? job->lock_token : "";
        set_params[3] = job->ex->cfg->claim_settings;
        st[1] = strcmp(set_params[3], "off") == 0
            ? (struct rw_pg_stmt){set_claims_sql, 3, set_params}
            : (struct rw_pg_stmt){set_claims_and_gucs_sql, 4, set_params};
    } else {
        set_params[0] = tmo;
        st[1] = (struct rw_pg_stmt){
            "select set_config('statement_timeout', $1, true),"
            " set_config('request.jwt.claims', '', true)", 1, set_params};
    }
    for (int i = 0; i < t->nstmts; i++)
        st[FIXED_BEFORE + i] = (struct rw_pg_stmt){t->stmts[i].sql, t->stmts[i].nparams,
                                                   run->binds[i].values};
    done_params[0] = id;
    done_params[1] = job->lock_token;
    st[n - 3] = (struct rw_pg_stmt){
        "select rlsworker_api.complete_job($1::bigint, $2::uuid)", 2, done_params};
    st[n - 2] = (struct rw_pg_stmt){"commit", 0, NULL};
    st[n - 1] = (struct rw_pg_stmt){SESSION_RESET, 0, NULL};
    ev_timer_set(&job->timeout, timeout_s(job) + 2.0, 0.);
    ev_timer_start(job->ex->loop, &job->timeout);
    int rc = rw_pg_submit(pg, st, n, sql_done, run);
    free(st);
    if (rc < 0) {
        sql_run_free(run);
        job->pc = NULL;
        rw_pool_release(pc);
        job_failed(job, "could not send the job's statements", false);
    }
}

/* The job never started: it goes back uncounted (the database may be
 * restarting; a role that cannot log in at all is refused at start-up). */
static void job_on_conn_failed(struct rw_pool_waiter *wt, const char *why)
{
    struct rw_job *job = (struct rw_job *)((char *)wt - offsetof(struct rw_job, waiter));

    rw_job_log(RW_LOG_WARNING, job, "could not connect as role %s: %s",
               rw_pool_name(job->pool), why);
    job_released(job);
}

/* ---- built-in tasks ---------------------------------------------------- */

/* From the host's done(): final is rw_builtin_fail_final's. */
void rw_exec_builtin_done(struct rw_job *job, const char *error, bool final)
{
    char err[256];

    if (job->abandoned) {
        job_released(job);
    } else if (job->timed_out) {
        snprintf(err, sizeof err, "timed out after %d s", timeout_s(job));
        job_failed(job, err, false);
    } else if (error)
        /* an operator's cancel that stopped the job is final too */
        job_failed(job, error, final || job->cancel_requested);
    else
        job_completed(job, true);
}

static void run_builtin(struct rw_job *job)
{
    struct rw_builtin_job *bj = calloc(1, sizeof *bj);

    if (!bj) {
        job_failed(job, "out of memory", false);
        return;
    }
    *bj = (struct rw_builtin_job){&rw_exec_builtin_host, job, job->id, job->task,
                                  job->attempts, job->subject, job->payload,
                                  job->ex->loop, job->ex->cfg, timeout_s(job), NULL};
    job->bj = bj;
    rw_job_set_state(job, RW_JOB_RUNNING);
    job->started = ev_now(job->ex->loop);
    ev_timer_set(&job->timeout, timeout_s(job), 0.);
    ev_timer_start(job->ex->loop, &job->timeout);
    job->t->builtin->start(bj);
}

/* ---- dispatch ---------------------------------------------------------- */

void rw_job_dispatch(struct rw_job *job)
{
    struct rw_executor *ex = job->ex;
    char err[700];

    ev_init(&job->timeout, on_timeout);
    job->timeout.data = job;
    job->started = ev_now(ex->loop);
    job->t = rw_registry_find(ex->tasks, job->task);
    if (!job->t) {
        snprintf(err, sizeof err, "unknown task \"%s\": no task file of that name in %s "
                 "and no built-in", job->task, ex->cfg->tasks_dir);
        job_failed(job, err, false);
        return;
    }
    if (job->attempts > max_attempts(job)) {
        snprintf(err, sizeof err, "no attempts left (max_attempts %d)", max_attempts(job));
        job_failed(job, err, true);
        return;
    }
    if (!check_chained(job, err, sizeof err)) {
        job_failed(job, err, true);
        return;
    }
    if (job->t->builtin && !job->t->nstmts) {
        if (job->t->scope == RW_SCOPE_SUBJECT && !job->subject) {
            snprintf(err, sizeof err, "built-in task %s is scoped to a subject, but the job "
                     "has no subject (enqueue with subject =>)", job->t->name);
            job_failed(job, err, true);
            return;
        }
        run_builtin(job);
        return;
    }
    job->pool = pick_pool(job, err, sizeof err);
    if (!job->pool) {
        job_failed(job, err, true);
        return;
    }
    if ((job->pool == ex->pools.admin) != (job->t->run_as == RW_RUN_AS_SYSTEM)) {
        /* never happens by design; job_on_conn trusts the task's run_as */
        job_failed(job, "the job's connection does not match its task's run_as; refused", true);
        return;
    }
    if (job->t->run_as == RW_RUN_AS_SYSTEM) {
        if (job->t->scope == RW_SCOPE_SUBJECT && !job->subject) {
            snprintf(err, sizeof err, "task %s has scope: subject, but the job has no subject "
                     "(enqueue with subject => or claims with sub)", job->t->name);
            job_failed(job, err, true);
            return;
        }
    } else if (!check_user_job(job, err, sizeof err)) {
        job_failed(job, err, true);
        return;
    }
    rw_job_set_state(job, RW_JOB_WAITING);
    if (rw_group_eligible(job)) {
        rw_group_add(job);
        return;
    }
    job->waiter = (struct rw_pool_waiter){job_on_conn, job_on_conn_failed, NULL};
    rw_pool_acquire(job->pool, &job->waiter);
}

/* Shutdown: a job that has not started goes back without counting. */
void rw_job_release_if_waiting(struct rw_job *job)
{
    if (job->state == RW_JOB_READY) {
        ev_init(&job->timeout, on_timeout);   /* job_end stops it */
        job_released(job);
    } else if (job->state == RW_JOB_WAITING) {
        if (job->group)
            rw_group_forget(job);
        else
            rw_pool_forget(job->pool, &job->waiter);
        job_released(job);
    }
}

/* Shutdown after the grace period: cancel, and report the job released. */
void rw_job_abandon(struct rw_job *job)
{
    if (job->state == RW_JOB_WAITING) {
        rw_job_release_if_waiting(job);
        return;
    }
    job->abandoned = true;
    rw_job_cancel(job, "worker shutting down");
}

/* ---- for group commit (group.c) ------------------------------------------ */

void rw_exec_failed(struct rw_job *job, const char *error, bool final)
{
    job_failed(job, error, final);
}

void rw_exec_committed(struct rw_job *job)
{
    job_completed(job, false);
}

void rw_exec_released(struct rw_job *job)
{
    job_released(job);
}

void rw_exec_lost(struct rw_job *job)
{
    struct rw_job_end end = {RW_JOB_LOST, false, NULL, 0};
    job_end(job, "lost", &end);
}

int rw_exec_timeout_s(const struct rw_job *job)
{
    return timeout_s(job);
}

bool rw_exec_joins_group(struct rw_executor *ex, struct rw_job *job)
{
    char err[700];
    struct rw_pool *pool;

    if (rw_config_group_max(ex->cfg) < 2)
        return false;
    job->t = rw_registry_find(ex->tasks, job->task);
    if (!job->t || job->t->builtin || job->t->run_as == RW_RUN_AS_SYSTEM)
        return false;
    pool = pick_pool(job, err, sizeof err);
    if (!pool || !rw_group_has_room(ex, pool))
        return false;
    job->pool = pool;
    return rw_group_eligible(job);
}
