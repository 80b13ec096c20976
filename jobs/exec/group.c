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
 * A group is open to new jobs of its role until it gets a connection; the
 * pool is asked once per loop turn (ev_prepare), so the jobs one claim
 * brings in share transactions. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jobs/exec/exec_int.h"
#include "jobs/exec/group.h"
#include "jobs/exec/prepcache.h"
#include "jobs/task/taskfile.h"
#include "worker/base/config.h"
#include "worker/base/log.h"
#include "worker/pg/errtext.h"

#define SQLSTATE_NOT_HELD "RW001"
#define SQLSTATE_QUERY_CANCELED "57014"
#define OWNER_GROUP (-1)          /* begin, rollback to savepoint, commit, reset */
#define OWNER_COMPLETION (-2)     /* the group's complete_jobs */

enum member_state { M_PENDING, M_SENT, M_RELEASED, M_ENDED };

struct member {
    struct rw_job *job;
    enum member_state st;
    int seq;                      /* its place in claim order */
};

/* What each statement of the op in flight is. */
struct tag {
    int owner;                    /* member, OWNER_GROUP or OWNER_COMPLETION */
    int tstmt;                    /* the task's statement number, or -1 */
    int prep;                     /* a prepare: its prepcache entry; or -1 */
};

struct rw_group {
    struct rw_executor *ex;
    struct rw_pool *pool;
    struct rw_pool_waiter waiter;
    struct rw_pconn *pc;
    struct member *m;
    int n, cap;
    bool acquiring;               /* handed to the pool, waiting for a connection */
    struct tag *tags;             /* per statement of the op in flight */
    int nstmts;
    int commit_at;                /* the op's commit, followed by the session reset */
    struct rw_prepcache preps;
    struct rw_group *next;        /* the executor's groups without a connection */
};

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

static void group_free(struct rw_group *g)
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
static struct rw_job *take(struct rw_group *g, int i)
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
            take(g, i);
    if (live_members(g) == 0) {
        if (g->acquiring)
            rw_pool_forget(g->pool, &g->waiter);
        unlink_open(g);
        group_free(g);
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
            rw_exec_released(take(g, i));
    group_free(g);
}

/* ---- one op: the statements of the pending members --------------------- */

struct op_build {
    struct rw_group *g;
    struct rw_pg_stmt *st;
    int n, cap;
    struct tag *tags;
    struct rw_bind *binds;
    int nbinds;
    char (*tmos)[32];
    const char *(*params)[4];
    char *done_ids, *done_tokens;     /* the completion's two array literals */
    const char *done_params[2];
};

/* Adds a statement of `owner`; when the group prepares, as its prepared
 * statement, preceded by the prepare at its first use. -1 when out of
 * memory. */
static int add_stmt(struct op_build *b, int owner, int tstmt, const char *sql, int np,
                    const char *const *p)
{
    int k = -1;

    if (rw_config_group_prepare(b->g->ex->cfg) && (k = rw_prepcache_get(&b->g->preps, sql)) < 0)
        return -1;
    if (k >= 0 && !b->g->preps.v[k].ready && !b->g->preps.v[k].sending) {
        b->g->preps.v[k].sending = true;
        b->tags[b->n] = (struct tag){owner, tstmt, k};
        b->st[b->n++] = (struct rw_pg_stmt){sql, np, NULL, b->g->preps.v[k].name, true};
    }
    b->tags[b->n] = (struct tag){owner, tstmt, -1};
    b->st[b->n++] = k < 0 ? RW_PG_STMT(sql, np, p)
                          : (struct rw_pg_stmt){sql, np, p, b->g->preps.v[k].name, false};
    return 0;
}

static void add(struct op_build *b, int owner, const char *sql, int np, const char *const *p)
{
    b->tags[b->n] = (struct tag){owner, -1, -1};
    b->st[b->n++] = RW_PG_STMT(sql, np, p);
}

static void op_build_free(struct op_build *b)
{
    for (int i = 0; i < b->nbinds; i++)
        rw_task_bind_free(&b->binds[i]);
    free(b->binds);
    free(b->st);
    free(b->tags);
    free(b->tmos);
    free(b->params);
    free(b->done_ids);
    free(b->done_tokens);
}

static void group_done(rw_pg *pg, const struct rw_pg_result *r, void *arg);

/* After the commit: what DISCARD ALL does (docs/security.md, "Session reset
 * after every job") but DISCARD PLANS. The queue functions a group calls
 * then keep their plans from one group to the next instead of being
 * analysed and planned again in every group; none of their plans depends
 * on the claims. Each job's own statements still get a plan made for its
 * claims (plan_cache_mode, set with them), and PostgreSQL replans a plan
 * whose role, search_path or tables changed. */
static const char *const group_reset[] = {
    "close all", "set session authorization default", "reset all", "deallocate all",
    "unlisten *", "select pg_advisory_unlock_all()", "discard temp", "discard sequences",
    NULL};

/* The completion of every member whose effects are in the transaction
 * (released before this op, or sent in it): one statement, as array
 * literals of their ids and lock tokens. 0 when there is none, -1 when
 * out of memory. */
static int add_completion(struct op_build *b, const struct rw_group *g)
{
    size_t li = 2, lt = 2;
    int n = 0;

    for (int i = 0; i < g->n; i++)
        if (g->m[i].st == M_SENT || g->m[i].st == M_RELEASED) {
            n++;
            li += 21;
            lt += strlen(g->m[i].job->lock_token) + 1;
        }
    if (n == 0)
        return 0;
    b->done_ids = malloc(li + 1);
    b->done_tokens = malloc(lt + 1);
    if (!b->done_ids || !b->done_tokens)
        return -1;
    char *pi = b->done_ids, *pt = b->done_tokens;
    *pi++ = '{';
    *pt++ = '{';
    for (int i = 0; i < g->n; i++)
        if (g->m[i].st == M_SENT || g->m[i].st == M_RELEASED) {
            const struct rw_job *job = g->m[i].job;
            pi += sprintf(pi, "%s%lld", pi[-1] == '{' ? "" : ",", job->id);
            pt += sprintf(pt, "%s%s", pt[-1] == '{' ? "" : ",", job->lock_token);
        }
    strcpy(pi, "}");
    strcpy(pt, "}");
    b->done_params[0] = b->done_ids;
    b->done_params[1] = b->done_tokens;
    add(b, OWNER_COMPLETION, "select rlsworker_api.complete_jobs($1::bigint[], $2::uuid[])", 2,
        b->done_params);
    return 1;
}

/* Sends `first` (begin, or rollback to savepoint) and every pending member,
 * then their completion, commit and the session reset. */
static void send_op(struct rw_group *g, const char *first)
{
    rw_pg *pg = rw_pconn_pg(g->pc);
    struct op_build b = {0};
    int stmts = 12, njobs = 0, nb = 0;
    bool fresh = strcmp(first, "begin") == 0;
    char err[600];

    for (int i = 0; i < g->n; i++)
        if (g->m[i].st == M_PENDING) {
            /* each statement may come with its prepare */
            stmts += 2 * (8 + g->m[i].job->t->nstmts);
            nb += g->m[i].job->t->nstmts;
        }
    b.g = g;
    b.cap = stmts;
    b.st = calloc((size_t)stmts, sizeof *b.st);
    b.tags = calloc((size_t)stmts, sizeof *b.tags);
    b.binds = calloc((size_t)nb + 1, sizeof *b.binds);
    b.tmos = calloc((size_t)g->n, sizeof *b.tmos);
    b.params = calloc((size_t)g->n, sizeof *b.params);
    if (!b.st || !b.tags || !b.binds || !b.tmos || !b.params)
        goto out_of_memory;
    add(&b, OWNER_GROUP, first, 0, NULL);
    for (int i = 0; i < g->n; i++) {
        struct member *m = &g->m[i];
        struct rw_job *job = m->job;
        int bind0 = b.nbinds;
        bool ok = true;

        if (m->st != M_PENDING)
            continue;
        if (job->abandoned) {
            rw_exec_released(take(g, i));
            continue;
        }
        if (job->cancel_requested) {
            rw_exec_failed(take(g, i), "cancelled: by operator", true);
            continue;
        }
        for (int k = 0; k < job->t->nstmts && ok; k++) {
            if (rw_task_bind(&job->t->stmts[k], job->payload, job->subject, job->id,
                             job->attempts, &b.binds[b.nbinds], err, sizeof err) < 0)
                ok = false;
            else
                b.nbinds++;
        }
        if (!ok) {
            while (b.nbinds > bind0)
                rw_task_bind_free(&b.binds[--b.nbinds]);
            rw_exec_failed(take(g, i), err, true);
            continue;
        }
        snprintf(b.tmos[i], sizeof b.tmos[i], "%d", rw_exec_timeout_s(job) * 1000);
        struct rw_pg_stmt set = rw_exec_settings_stmt(job, b.params[i], b.tmos[i]);
        int rc = add_stmt(&b, i, -1, "savepoint j", 0, NULL);
        if (!fresh) {
            /* what the batch-mate before left in the transaction */
            rc |= add_stmt(&b, i, -1, "reset all", 0, NULL);
            rc |= add_stmt(&b, i, -1, "close all", 0, NULL);
            rc |= add_stmt(&b, i, -1, "discard temp", 0, NULL);
        }
        fresh = false;
        rc |= add_stmt(&b, i, -1, set.sql, set.nparams, set.params);
        for (int k = 0; k < job->t->nstmts; k++)
            rc |= add_stmt(&b, i, k, job->t->stmts[k].sql, job->t->stmts[k].nparams,
                           b.binds[bind0 + k].values);
        rc |= add_stmt(&b, i, -1, "set constraints all immediate", 0, NULL);
        rc |= add_stmt(&b, i, -1, "release savepoint j", 0, NULL);
        m->st = M_SENT;
        njobs++;
        if (rc < 0)
            goto out_of_memory;
    }
    if (njobs == 0 && fresh) {
        /* nothing was sent in this transaction yet: nothing to do */
        op_build_free(&b);
        rw_pool_mark_clean(g->pc);
        rw_pool_release(g->pc);
        g->pc = NULL;
        group_free(g);
        return;
    }
    if (add_completion(&b, g) < 0)
        goto out_of_memory;
    g->commit_at = b.n;
    add(&b, OWNER_GROUP, "commit", 0, NULL);
    for (int i = 0; group_reset[i]; i++)
        add(&b, OWNER_GROUP, group_reset[i], 0, NULL);
    free(g->tags);
    g->tags = b.tags;             /* the group's now, for group_done */
    b.tags = NULL;
    g->nstmts = b.n;
    int rc = rw_pg_submit(pg, b.st, b.n, group_done, g);
    op_build_free(&b);
    if (rc < 0) {
        /* the connection is gone: lost() reports nothing to this op, so end here */
        for (int i = 0; i < g->n; i++)
            if (g->m[i].st != M_ENDED)
                rw_exec_failed(take(g, i), "could not send the job's statements", false);
        rw_pool_release(g->pc);
        group_free(g);
    }
    return;

out_of_memory:
    op_build_free(&b);
    rw_pg_abort(pg, "out of memory");   /* group_done sees conn_lost */
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
                rw_exec_failed(take(g, i), "connection was not idle before the job; "
                               "discarded it", false);
        group_free(g);
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
    send_op(g, "begin");
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
        struct rw_job *job = take(g, i);
        if (job->abandoned)
            rw_exec_released(job);
        else if (!error)
            rw_exec_committed(job);
        else
            rw_exec_failed(job, error, false);
    }
}

static void group_done(rw_pg *pg, const struct rw_pg_result *r, void *arg)
{
    struct rw_group *g = arg;
    struct rw_pconn *pc = g->pc;
    int f = -1, n = g->nstmts;
    char err[1200];

    for (int i = 0; i < n; i++) {
        int k = g->tags[i].prep;
        if (k >= 0) {
            g->preps.v[k].sending = false;
            g->preps.v[k].ready = status_ok(r, i);
        }
    }

    if (r->ok) {
        end_all(g, NULL);
        rw_pool_mark_clean(pc);
        rw_pool_release(pc);
        group_free(g);
        return;
    }
    if (status_ok(r, g->commit_at)) {
        rw_warn("could not reset the session after a group of jobs of role %s: %s; "
                "closing its connection", rw_pool_name(g->pool),
                r->error ? r->error : "no result");
        end_all(g, NULL);
        rw_pool_release(pc);
        group_free(g);
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
        group_free(g);
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
                    rw_exec_released(take(g, i));
        } else {
            char pgerr[RW_ERRTEXT_MAX + 64];
            rw_errtext_pg(pgerr, sizeof pgerr, r->error, r->sqlstate);
            snprintf(err, sizeof err, "the transaction of its group failed: %s", pgerr);
            end_all(g, err);
        }
        g->pc = NULL;
        rw_exec_reset_after_failure(pg, pc);
        group_free(g);
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
    take(g, k);
    if (r->sqlstate && strcmp(r->sqlstate, SQLSTATE_NOT_HELD) == 0) {
        rw_job_log(RW_LOG_WARNING, job, "no longer held by this worker; its effects were rolled back");
        rw_exec_lost(job);
    } else if (job->abandoned || (canceled && !job->cancel_requested && !job->timed_out &&
                                  mate_cancelled)) {
        /* a cancel meant for a batch-mate stopped this job: not its fault */
        rw_exec_released(job);
    } else
        rw_exec_failed(job, err, job->cancel_requested && !job->timed_out);
    send_op(g, "rollback to savepoint j");
}
