/* Runs one claimed job: looks its task up, checks it (attempts left,
 * chaining, claims, scope), picks the pool of its role and waits for a
 * connection there (the SQL task's transaction is executor_sql.c's) or
 * starts a built-in in-process; times it out, cancels or abandons it; and
 * decides its outcome, which it hands back through on_end. */
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
    *ex = (struct rw_executor){loop, cfg, *pools, metrics, NULL, *cb, NULL, NULL, {0}, false, false, false};
    return ex;
}

void rw_exec_plan_each_job(struct rw_executor *ex)
{
    ex->plan_each_job = true;
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
    job->waiter = (struct rw_pool_waiter){rw_exec_on_conn, rw_exec_on_conn_failed, NULL};
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

/* ---- for group commit (group.c) and SQL tasks (executor_sql.c) ---------- */

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
