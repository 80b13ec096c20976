/* Group commit of user jobs (docs/guarantees.md, "Group commit").
 *
 * Ready SQL jobs of one restricted role share one transaction on one
 * connection, each in its own savepoint, all in one pipeline:
 *
 *   begin;
 *   savepoint j; <settings of job 0>; <its statements>;
 *     set constraints all immediate; release savepoint j;
 *   savepoint j; reset all; close all; discard temp; <settings of job 1>; ...
 *   complete_jobs({id0, id1, ...}, {token0, token1, ...});
 *   commit; <the session reset: what DISCARD ALL does but DISCARD PLANS>
 *
 * So each job's effects and its completion still commit together or not at
 * all; the completion of every job whose effects are in the transaction is
 * one statement, which records them as one history row (deploy/sql/014).
 * A job whose statement fails ends alone: the pipeline stops at the
 * error, and the rest is sent again behind `rollback to savepoint j`; its
 * batch-mates before it stay in the transaction, those after it run in the
 * new send. With group_prepare on, each statement is prepared once, at
 * its first use, and run by name for every job (jobs/exec/prepcache.h). Each
 * job's savepoint is released before the next one is taken, so one name
 * serves them all and `rollback to savepoint j` returns to the failed job's.
 *
 * A group of at least 8 jobs first sends a shorter op in the same
 * transaction (docs/guarantees.md, "Plans"): begin, the prepares of every
 * task statement, the first job's settings, and
 * rlsworker_api.plan_generic, whose answer decides whether the jobs share
 * plans made without claims (group_op.c).
 *
 * This file has a group's life and what comes back; group_op.c builds and
 * sends its ops.
 *
 * A group is open to new jobs of its role until it gets a connection; the
 * pool is asked once per loop turn (ev_prepare), so the jobs one claim
 * brings in share transactions. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jobs/exec/group_int.h"
#include "jobs/task/taskfile.h"
#include "worker/base/config.h"
#include "worker/base/log.h"
#include "worker/pg/errtext.h"

bool rw_group_has_room(const struct rw_executor *ex, const struct rw_pool *pool)
{
    for (const struct rw_group *g = ex->groups; g; g = g->next)
        if (g->pool == pool && g->n < rw_config_group_max(ex->cfg))
            return true;
    return false;
}

/* ---- life of a group ----------------------------------------------------- */

static void unlink_open(struct rw_group *g)
{
    for (struct rw_group **gp = &g->ex->groups; *gp; gp = &(*gp)->next)
        if (*gp == g) {
            *gp = g->next;
            break;
        }
    g->next = NULL;
}

void rw_group_free(struct rw_group *g)
{
    free(g->m);
    free(g->tags);
    rw_prepcache_free(&g->preps);
    free(g);
}

static int live_members(const struct rw_group *g)
{
    int n = 0;

    for (int i = 0; i < g->n; i++)
        n += g->m[i].st != M_ENDED;
    return n;
}

/* The member leaves the group before its end is reported (the owner frees
 * the job in on_end). */
struct rw_job *rw_group_take(struct rw_group *g, int i)
{
    struct rw_job *job = g->m[i].job;

    g->m[i].st = M_ENDED;
    g->m[i].job = NULL;
    job->group = NULL;
    job->pc = NULL;
    return job;
}

static void group_on_conn(struct rw_pool_waiter *wt, struct rw_pconn *pc);
static void group_on_fail(struct rw_pool_waiter *wt, const char *why);

static void on_prepare(struct ev_loop *loop, ev_prepare *w, int revents)
{
    struct rw_executor *ex = w->data;
    struct rw_group *todo[64];
    int n = 0;

    ev_prepare_stop(loop, w);
    for (struct rw_group *g = ex->groups; g && n < 64; g = g->next)
        if (!g->acquiring)
            todo[n++] = g;
    for (int i = 0; i < n; i++) {
        todo[i]->acquiring = true;
        rw_pool_acquire(todo[i]->pool, &todo[i]->waiter);   /* may run group_on_conn now */
    }
    for (struct rw_group *g = ex->groups; g; g = g->next)
        if (!g->acquiring)
            ev_prepare_start(loop, w);
}

void rw_group_add(struct rw_job *job)
{
    struct rw_executor *ex = job->ex;
    int max = rw_config_group_max(ex->cfg);
    struct rw_group *g;

    for (g = ex->groups; g; g = g->next)
        if (g->pool == job->pool && g->n < max)
            break;
    if (!g) {
        g = calloc(1, sizeof *g);
        if (!g || !(g->m = calloc((size_t)max, sizeof *g->m))) {
            free(g);
            rw_exec_failed(job, "out of memory", false);
            return;
        }
        g->ex = ex;
        g->pool = job->pool;
        g->cap = max;
        g->waiter = (struct rw_pool_waiter){group_on_conn, group_on_fail, NULL};
        g->next = ex->groups;
        ex->groups = g;
        if (!ex->group_prep_init) {
            ev_prepare_init(&ex->group_prep, on_prepare);
            ex->group_prep.data = ex;
            ex->group_prep_init = true;
        }
        ev_prepare_start(ex->loop, &ex->group_prep);
    }
    g->m[g->n] = (struct member){job, M_PENDING, g->n};
    g->n++;
    job->group = g;
}

/* The group's first live member holds the group's slot of concurrency;
 * the others joined it (rw_exec_joins_group) and hold none. */
bool rw_group_holds_slot(const struct rw_job *job)
{
    const struct rw_group *g = job->group;

    if (!g)
        return true;
    for (int i = 0; i < g->n; i++)
        if (g->m[i].st != M_ENDED)
            return g->m[i].job == job;
    return true;
}

/* A job that waits in a group goes away (cancel, shutdown); an empty group
 * leaves the pool's wait list. */
void rw_group_forget(struct rw_job *job)
{
    struct rw_group *g = job->group;

    for (int i = 0; i < g->n; i++)
        if (g->m[i].job == job)
            rw_group_take(g, i);
    if (live_members(g) == 0) {
        if (g->acquiring)
            rw_pool_forget(g->pool, &g->waiter);
        unlink_open(g);
        rw_group_free(g);
    }
}

static void group_on_fail(struct rw_pool_waiter *wt, const char *why)
{
    struct rw_group *g = (struct rw_group *)((char *)wt - offsetof(struct rw_group, waiter));

    unlink_open(g);
    rw_warn("could not connect as role %s: %s; %d jobs go back to the queue",
            rw_pool_name(g->pool), why, live_members(g));
    for (int i = 0; i < g->n; i++)
        if (g->m[i].st != M_ENDED)
            rw_exec_released(rw_group_take(g, i));
    rw_group_free(g);
}

/* Members run in the order of their subjects (claim order within one):
 * RLS data is mostly partitioned by user, so when every group takes the
 * row locks of its users in the same order, two groups that touch the same
 * users wait for each other instead of deadlocking (docs/guarantees.md). */
static int by_subject(const void *a, const void *b)
{
    const struct member *x = a, *y = b;
    int c;

    if (!x->job || !y->job)               /* members that left go last */
        return !x->job - !y->job;
    if (!x->job->subject || !y->job->subject)   /* no subject first */
        c = !!x->job->subject - !!y->job->subject;
    else
        c = strcmp(x->job->subject, y->job->subject);
    return c ? c : x->seq - y->seq;
}

static void group_on_conn(struct rw_pool_waiter *wt, struct rw_pconn *pc)
{
    struct rw_group *g = (struct rw_group *)((char *)wt - offsetof(struct rw_group, waiter));
    struct rw_executor *ex = g->ex;
    double total = 2.0;

    unlink_open(g);
    g->pc = pc;
    if (PQtransactionStatus(rw_pg_conn(rw_pconn_pg(pc))) != PQTRANS_IDLE) {
        /* never happens by design; refuse to run on such a connection */
        rw_pool_release(pc);
        for (int i = 0; i < g->n; i++)
            if (g->m[i].st != M_ENDED)
                rw_exec_failed(rw_group_take(g, i), "connection was not idle before the job; "
                               "discarded it", false);
        rw_group_free(g);
        return;
    }
    qsort(g->m, (size_t)g->n, sizeof *g->m, by_subject);
    for (int i = 0; i < g->n; i++)
        if (g->m[i].st != M_ENDED)
            total += rw_exec_timeout_s(g->m[i].job);
    for (int i = 0; i < g->n; i++) {
        struct rw_job *job = g->m[i].job;
        if (g->m[i].st == M_ENDED)
            continue;
        job->pc = pc;
        rw_job_set_state(job, RW_JOB_RUNNING);
        job->started = ev_now(ex->loop);
        /* the backstop when a cancel has no effect: it hits the whole group */
        ev_timer_set(&job->timeout, total, 0.);
        ev_timer_start(ex->loop, &job->timeout);
    }
    if (rw_group_asks_plans(g))
        rw_group_send_plans(g);
    else
        rw_group_send_op(g, "begin");
}

/* ---- results ------------------------------------------------------------- */

static void describe(struct rw_job *job, int s, const struct rw_pg_result *r,
                     char *err, size_t errlen)
{
    bool canceled = r->sqlstate && strcmp(r->sqlstate, SQLSTATE_QUERY_CANCELED) == 0;
    char pgerr[RW_ERRTEXT_MAX + 64];

    rw_errtext_pg(pgerr, sizeof pgerr, r->error, r->sqlstate);
    if (job->timed_out || (canceled && !job->cancel_requested))
        snprintf(err, errlen, "timed out after %d s", rw_exec_timeout_s(job));
    else if (job->cancel_requested)
        snprintf(err, errlen, "cancelled: %s", r->error ? pgerr : "by operator");
    else if (s >= 0 && s < job->t->nstmts)
        snprintf(err, errlen, "statement %d (%s:%d): %s", s + 1,
                 job->t->path ? job->t->path : job->t->name, job->t->stmts[s].line, pgerr);
    else
        snprintf(err, errlen, "%s", pgerr);
}

static bool status_ok(const struct rw_pg_result *r, int i)
{
    return i >= 0 && i < r->nresults && r->results[i] &&
           PQresultStatus(r->results[i]) == PGRES_COMMAND_OK;
}

/* Ends every member still in the group the same way. */
static void end_all(struct rw_group *g, const char *error)
{
    for (int i = 0; i < g->n; i++) {
        if (g->m[i].st == M_ENDED)
            continue;
        struct rw_job *job = rw_group_take(g, i);
        if (job->abandoned)
            rw_exec_released(job);
        else if (!error)
            rw_exec_committed(job);
        else
            rw_exec_failed(job, error, false);
    }
}

/* The task of the prepared statement `why` names, or NULL. */
static const struct rw_task *task_named_in(const struct rw_group *g, const char *why)
{
    for (int p = 0; p < g->preps.n; p++) {
        const char *at = strstr(why, g->preps.v[p].name);
        size_t len = strlen(g->preps.v[p].name);
        if (!at || (at[len] >= '0' && at[len] <= '9'))
            continue;
        for (int i = 0; i < g->n; i++)
            for (int k = 0; g->m[i].job && k < g->m[i].job->t->nstmts; k++)
                if (strcmp(g->m[i].job->t->stmts[k].sql, g->preps.v[p].sql) == 0)
                    return g->m[i].job->t;
    }
    return NULL;
}

/* plan_generic's answer: "" when the group's plans are made once, without
 * claims; otherwise why each job was planned for its own claims. That is
 * logged once per worker: it most often means a function marked IMMUTABLE
 * reads the claims, which leaks between users wherever a plan is reused
 * (the application's own prepared statements too). */
static void note_plans(struct rw_group *g, const struct rw_pg_result *r)
{
    for (int i = 0; i < g->nstmts && i < r->nresults; i++) {
        if (g->tags[i].owner != OWNER_PLANS)
            continue;
        if (!r->results[i] || PQresultStatus(r->results[i]) != PGRES_TUPLES_OK ||
            PQntuples(r->results[i]) != 1)
            return;
        const char *why = PQgetvalue(r->results[i], 0, 0);
        const struct rw_task *t = task_named_in(g, why);
        g->plans_once = !*why;
        if (!*why)
            rw_debug("a group of %d jobs of role %s plans its statements once, without claims",
                     g->n, rw_pool_name(g->pool));
        else if (!g->ex->plans_warned) {
            g->ex->plans_warned = true;
            rw_warn("jobs of role %s are planned one by one for their own claims%s%s%s: %s; "
                    "look for a function marked IMMUTABLE that reads the claims "
                    "(current_setting), and mark it STABLE (docs/guarantees.md, \"Plans\"; "
                    "logged once)", rw_pool_name(g->pool), t ? " (task " : "",
                    t ? t->name : "", t ? ")" : "", why);
        } else
            rw_debug("a group of role %s plans each job for its own claims: %s",
                     rw_pool_name(g->pool), why);
        return;
    }
}

/* The prepares of the op that came back: ready, or to be sent again. */
static void note_prepared(struct rw_group *g, const struct rw_pg_result *r)
{
    for (int i = 0; i < g->nstmts; i++) {
        int k = g->tags[i].prep;
        if (k >= 0) {
            g->preps.v[k].sending = false;
            g->preps.v[k].ready = status_ok(r, i);
        }
    }
}

/* send_plans' op came back: the jobs follow in the same transaction, with
 * plan_cache_mode as plan_generic answered. When it failed (a task's
 * statement that does not prepare, a cancel meant for one of the jobs) the
 * group begins again without it, every job planned for its own claims, so
 * such a failure ends only the job it belongs to, as in a smaller group. A
 * lost connection ends the group as it ends any op. */
void rw_group_plans_done(rw_pg *pg, const struct rw_pg_result *r, void *arg)
{
    struct rw_group *g = arg;

    note_prepared(g, r);
    if (r->conn_lost) {
        rw_group_done(pg, r, g);
        return;
    }
    if (!r->ok) {
        rw_debug("a group of %d jobs of role %s begins again, each job planned for its own "
                 "claims: %s", live_members(g), rw_pool_name(g->pool),
                 r->error ? r->error : "no result");
        g->plans_once = false;
        rw_group_send_op(g, "rollback");
        return;
    }
    note_plans(g, r);
    rw_group_send_op(g, NULL);
}

void rw_group_done(rw_pg *pg, const struct rw_pg_result *r, void *arg)
{
    struct rw_group *g = arg;
    struct rw_pconn *pc = g->pc;
    int f = -1, n = g->nstmts;
    char err[1200];

    note_prepared(g, r);

    if (r->ok) {
        end_all(g, NULL);
        rw_pool_mark_clean(pc);
        rw_pool_release(pc);
        rw_group_free(g);
        return;
    }
    if (status_ok(r, g->commit_at)) {
        rw_warn("could not reset the session after a group of jobs of role %s: %s; "
                "closing its connection", rw_pool_name(g->pool),
                r->error ? r->error : "no result");
        end_all(g, NULL);
        rw_pool_release(pc);
        rw_group_free(g);
        return;
    }
    if (r->conn_lost) {
        bool timed_out = false;
        for (int i = 0; i < g->n; i++)
            if (g->m[i].st != M_ENDED && g->m[i].job->timed_out)
                timed_out = true;
        if (timed_out)
            snprintf(err, sizeof err, "timed out (the connection of its group was dropped "
                     "when a cancel had no effect)");
        else
            snprintf(err, sizeof err, "connection lost while running: %s",
                     r->error ? r->error : "no result");
        rw_pool_release(pc);
        end_all(g, err);
        rw_group_free(g);
        return;
    }
    for (int i = 0; i < r->nresults && i < n; i++) {
        ExecStatusType st = r->results[i] ? PQresultStatus(r->results[i]) : PGRES_EMPTY_QUERY;
        if (st == PGRES_FATAL_ERROR || st == PGRES_NONFATAL_ERROR) {
            f = i;
            break;
        }
    }
    int k = f >= 0 ? g->tags[f].owner : OWNER_GROUP;
    if (k < 0) {
        /* begin, rollback to savepoint, the completion or commit failed:
         * the whole transaction */
        if (k == OWNER_COMPLETION && r->sqlstate && strcmp(r->sqlstate, SQLSTATE_NOT_HELD) == 0) {
            /* lock recovery took a job from this worker: nothing of the
             * group committed, and its jobs go back */
            rw_warn("a group of %d jobs of role %s rolled back: %s; they go back to the queue",
                    live_members(g), rw_pool_name(g->pool), r->error ? r->error : "");
            for (int i = 0; i < g->n; i++)
                if (g->m[i].st != M_ENDED)
                    rw_exec_released(rw_group_take(g, i));
        } else {
            char pgerr[RW_ERRTEXT_MAX + 64];
            rw_errtext_pg(pgerr, sizeof pgerr, r->error, r->sqlstate);
            snprintf(err, sizeof err, "the transaction of its group failed: %s", pgerr);
            end_all(g, err);
        }
        g->pc = NULL;
        rw_exec_reset_after_failure(pg, pc);
        rw_group_free(g);
        return;
    }
    /* member k failed: the ones before it stay in the transaction, the ones
     * after it are sent again behind the rollback to k's savepoint */
    struct rw_job *job = g->m[k].job;
    bool canceled = r->sqlstate && strcmp(r->sqlstate, SQLSTATE_QUERY_CANCELED) == 0;
    bool mate_cancelled = false;
    for (int i = 0; i < g->n; i++)
        if (i != k && g->m[i].st != M_ENDED && g->m[i].job->cancel_requested)
            mate_cancelled = true;
    for (int i = 0; i < g->n; i++)
        if (g->m[i].st == M_SENT)
            g->m[i].st = i < k ? M_RELEASED : M_PENDING;
    describe(job, g->tags[f].tstmt, r, err, sizeof err);
    rw_group_take(g, k);
    if (r->sqlstate && strcmp(r->sqlstate, SQLSTATE_NOT_HELD) == 0) {
        rw_job_log(RW_LOG_WARNING, job, "no longer held by this worker; its effects were rolled back");
        rw_exec_lost(job);
    } else if (job->abandoned || (canceled && !job->cancel_requested && !job->timed_out &&
                                  mate_cancelled)) {
        /* a cancel meant for a batch-mate stopped this job: not its fault */
        rw_exec_released(job);
    } else
        rw_exec_failed(job, err, job->cancel_requested && !job->timed_out);
    rw_group_send_op(g, "rollback to savepoint j");
}
