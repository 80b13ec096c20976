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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "jobs/builtin.h"
#include "scheduler/backoff.h"
#include "worker/log.h"
#include "worker/metrics.h"
#include "worker/worker.h"

#define SQLSTATE_NOT_HELD "RW001"
#define SQLSTATE_QUERY_CANCELED "57014"
#define CANCEL_GRACE_S 5.0


static int max_attempts(const struct rw_job *job)
{
    if (job->max_attempts > 0)
        return job->max_attempts;
    if (job->t && job->t->max_attempts > 0)
        return job->t->max_attempts;
    return job->w->cfg.max_attempts;
}

static int timeout_s(const struct rw_job *job)
{
    return job->t && job->t->timeout_s > 0 ? job->t->timeout_s : job->w->cfg.task_timeout_s;
}

static void job_end(struct rw_job *job, const char *outcome)
{
    struct rw_worker *w = job->w;

    if (outcome)
        rw_metrics_job(w->metrics, job->task, outcome, ev_now(w->loop) - job->started);

    ev_timer_stop(w->loop, &job->timeout);
    if (job->dispatched)
        w->running--;
    job->state = RW_JOB_ENDED;
    if (job->prev)
        job->prev->next = job->next;
    else
        w->jobs = job->next;
    if (job->next)
        job->next->prev = job->prev;
    w->inflight--;
    rw_job_free(&job);
    rw_sched_job_ended(w);
}

/* The one place a job's outcome is decided. */
static void job_failed(struct rw_job *job, const char *error, bool final)
{
    struct rw_worker *w = job->w;
    bool dead = final || job->attempts >= max_attempts(job);
    long long delay = dead ? 0 : rw_backoff_ms(job->attempts, w->cfg.backoff_base_ms,
                                               (long long)w->cfg.backoff_max_s * 1000,
                                               (uint32_t)random());

    if (dead)
        rw_job_log(RW_LOG_WARNING, job, "failed, no retry: %s", error);
    else
        rw_job_log(RW_LOG_INFO, job, "failed, retry in %lld ms: %s", delay, error);
    rw_sched_report(w, RW_OUT_FAIL, job->id, error, delay, dead);
    if (dead)
        w->stats.dead++;
    else
        w->stats.failed++;
    job_end(job, dead ? "dead" : "failed");
}

static void job_completed(struct rw_job *job, bool report)
{
    job->w->stats.completed++;
    if (rw_log_enabled(RW_LOG_DEBUG))
        rw_job_log(RW_LOG_DEBUG, job, "completed in %.1f ms",
                   (ev_now(job->w->loop) - job->started) * 1000.0);
    if (report)
        rw_sched_report(job->w, RW_OUT_COMPLETE, job->id, NULL, 0, false);
    job_end(job, "completed");
}

static void job_released(struct rw_job *job)
{
    rw_job_log(RW_LOG_INFO, job, "put back in the queue without counting the attempt");
    job->w->stats.released++;
    rw_sched_report(job->w, RW_OUT_RELEASE, job->id, NULL, 0, false);
    job_end(job, "released");
}

void rw_job_free(struct rw_job **jp)
{
    struct rw_job *job = *jp;

    *jp = NULL;
    if (!job)
        return;
    json_decref(job->payload);
    free(job->task);
    free(job->claims);
    free(job->subject);
    free(job->run_as);
    free(job);
}

/* ---- choosing the role ------------------------------------------------ */

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
        return rw_worker_pool(job->w, "admin");
    }
    if (want && strcmp(want, "system") == 0) {
        snprintf(err, errlen, "task %s is user-scoped and cannot run as system", t->name);
        return NULL;
    }
    if (want && strcmp(want, "user") != 0)
        name = want;
    else
        name = t->run_as == RW_RUN_AS_ROLE ? t->role : "user";
    p = rw_worker_pool(job->w, name);
    if (!p && job->w->user_role && strcmp(name, job->w->user_role) == 0)
        p = rw_worker_pool(job->w, "user");
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
    if (job->pc && job->state == RW_JOB_RUNNING) {
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
    if (job->state == RW_JOB_RUNNING && job->t && job->t->builtin) {
        /* the built-in still owns its rw_builtin_job and will call done */
        job->timed_out = true;
        abort_builtin(job);
    }
}

void rw_job_cancel(struct rw_job *job, const char *why)
{
    job->cancel_requested = true;
    if (job->state == RW_JOB_WAITING) {
        rw_pool_forget(job->pool, job);
        job_failed(job, why, true);
        return;
    }
    if (job->state == RW_JOB_RUNNING && job->pc) {
        char err[256];
        rw_job_log(RW_LOG_INFO, job, "cancelling: %s", why);
        if (rw_pg_cancel(rw_pconn_pg(job->pc), err, sizeof err) < 0)
            rw_job_log(RW_LOG_WARNING, job, "could not cancel: %s", err);
        ev_timer_stop(job->w->loop, &job->timeout);
        job->timeout.repeat = CANCEL_GRACE_S;
        ev_timer_again(job->w->loop, &job->timeout);
    }
    if (job->state == RW_JOB_RUNNING && job->bj) {
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

    if (job->timed_out || (canceled && !job->cancel_requested))
        snprintf(err, errlen, "timed out after %d s", timeout_s(job));
    else if (job->cancel_requested)
        snprintf(err, errlen, "cancelled: %s", r->error ? r->error : "by operator");
    else if (s >= 0 && s < job->t->nstmts)
        snprintf(err, errlen, "statement %d (%s:%d): %s", s + 1,
                 job->t->path ? job->t->path : job->t->name, job->t->stmts[s].line,
                 r->error);
    else
        snprintf(err, errlen, "%s", r->error ? r->error : "unknown error");
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
        else
            snprintf(err, sizeof err, "connection lost while running: %s", r->error);
        job_failed(job, err, false);
        return;
    }
    describe_error(job, r, err, sizeof err);
    reset_after_failure(pg, pc);
    if (r->sqlstate && strcmp(r->sqlstate, SQLSTATE_NOT_HELD) == 0) {
        /* lock recovery gave the job to another worker: nothing to report */
        rw_job_log(RW_LOG_WARNING, job, "no longer held by this worker; its effects were rolled back");
        job_end(job, "lost");
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

void rw_job_on_conn(struct rw_job *job, struct rw_pconn *pc)
{
    const struct rw_task *t = job->t;
    rw_pg *pg = rw_pconn_pg(pc);
    struct sql_run *run = calloc(1, sizeof *run);
    int n = t->nstmts + FIXED_BEFORE + FIXED_AFTER;
    struct rw_pg_stmt *st = calloc((size_t)n, sizeof *st);
    char id[32], tmo[32], err[600];
    const char *set_params[3], *done_params[2];
    bool user = job->pool != rw_worker_pool(job->w, "admin");

    job->pc = pc;
    job->state = RW_JOB_RUNNING;
    job->started = ev_now(job->w->loop);
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
        st[1] = (struct rw_pg_stmt){
            "select set_config('request.jwt.claims', $1, true),"
            " set_config('statement_timeout', $2, true),"
            " set_config('rlsworker.chain_token', $3, true)", 3, set_params};
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
    ev_timer_start(job->w->loop, &job->timeout);
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
void rw_job_on_conn_failed(struct rw_job *job, const char *why)
{
    rw_job_log(RW_LOG_WARNING, job, "could not connect as role %s: %s",
               rw_pool_name(job->pool), why);
    job_released(job);
}

/* ---- built-in tasks ---------------------------------------------------- */

void rw_builtin_done(struct rw_builtin_job *bj, const char *error)
{
    struct rw_job *job = bj->job;
    bool final = bj->final;     /* rw_builtin_fail_final */

    char err[256];

    job->bj = NULL;
    free(bj);
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
    bj->job = job;
    job->bj = bj;
    job->state = RW_JOB_RUNNING;
    job->started = ev_now(job->w->loop);
    ev_timer_set(&job->timeout, timeout_s(job), 0.);
    ev_timer_start(job->w->loop, &job->timeout);
    job->t->builtin->start(bj);
}

/* ---- dispatch ---------------------------------------------------------- */

void rw_job_dispatch(struct rw_job *job)
{
    struct rw_worker *w = job->w;
    char err[700];

    ev_init(&job->timeout, on_timeout);
    job->timeout.data = job;
    job->started = ev_now(w->loop);
    job->dispatched = true;
    w->running++;
    job->t = rw_registry_find(w->tasks, job->task);
    if (!job->t) {
        snprintf(err, sizeof err, "unknown task \"%s\": no task file of that name in %s "
                 "and no built-in", job->task, w->cfg.tasks_dir);
        job_failed(job, err, false);
        return;
    }
    if (job->attempts > max_attempts(job)) {
        snprintf(err, sizeof err, "no attempts left (max_attempts %d)", max_attempts(job));
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
    job->state = RW_JOB_WAITING;
    rw_pool_acquire(job->pool, job);
}

/* Shutdown: a job that has not started goes back without counting. */
void rw_job_release_if_waiting(struct rw_job *job)
{
    if (job->state == RW_JOB_CLAIMED) {
        ev_init(&job->timeout, on_timeout);   /* job_end stops it */
        job_released(job);
    } else if (job->state == RW_JOB_WAITING) {
        rw_pool_forget(job->pool, job);
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
