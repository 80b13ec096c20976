/* Connection pools, one per database role: bounded, opened on demand.
 * A connection goes back to the pool only when its session was reset after
 * its job (rw_pool_mark_clean) and it is idle; any other is discarded,
 * never reused, so nothing of one job's session reaches the next. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "worker/base/log.h"
#include "worker/pg/pool.h"

struct rw_pconn {
    struct rw_pool *pool;
    rw_pg *pg;
    struct rw_pool_waiter *job;  /* waiter using it, or NULL */
    bool ready;
    bool clean;                  /* session reset since it was given to a job */
    struct rw_pconn *next;
};

struct rw_pool {
    struct ev_loop *loop;
    int connect_timeout_s;
    char *name;
    char *url;
    int max;
    int n;                       /* connections open or opening */
    int opening;
    struct rw_pconn *conns;
    struct rw_pool_waiter *wait_head, *wait_tail;
};

static void pc_ready(rw_pg *pg, void *arg);
static void pc_lost(rw_pg *pg, const char *why, void *arg);

struct rw_pool *rw_pool_new(struct ev_loop *loop, const char *name, const char *url, int max,
                            int connect_timeout_s)
{
    struct rw_pool *p = calloc(1, sizeof *p);

    if (!p)
        return NULL;
    p->loop = loop;
    p->connect_timeout_s = connect_timeout_s;
    p->name = strdup(name);
    p->url = strdup(url);
    p->max = max > 0 ? max : 1;
    if (!p->name || !p->url) {
        rw_pool_free(&p);
        return NULL;
    }
    return p;
}

const char *rw_pool_name(const struct rw_pool *p) { return p->name; }

void rw_pool_stats(const struct rw_pool *p, struct rw_pool_stats *st)
{
    *st = (struct rw_pool_stats){.max = p->max};
    for (const struct rw_pconn *pc = p->conns; pc; pc = pc->next) {
        if (pc->job)
            st->in_use++;
        else if (pc->ready)
            st->idle++;
        else
            st->opening++;
    }
    for (const struct rw_pool_waiter *wt = p->wait_head; wt; wt = wt->next)
        st->waiting++;
}

rw_pg *rw_pconn_pg(struct rw_pconn *pc) { return pc->pg; }
struct rw_pool *rw_pconn_pool(struct rw_pconn *pc) { return pc->pool; }

static void unlink_pc(struct rw_pconn *pc)
{
    struct rw_pool *p = pc->pool;
    struct rw_pconn **pp = &p->conns;

    while (*pp && *pp != pc)
        pp = &(*pp)->next;
    if (*pp)
        *pp = pc->next;
    p->n--;
    if (!pc->ready)
        p->opening--;
    rw_pg_free(&pc->pg);
    free(pc);
}

void rw_pool_free(struct rw_pool **pp)
{
    struct rw_pool *p = *pp;

    *pp = NULL;
    if (!p)
        return;
    while (p->conns)
        unlink_pc(p->conns);
    free(p->name);
    free(p->url);
    free(p);
}

static struct rw_pool_waiter *pop_waiter(struct rw_pool *p)
{
    struct rw_pool_waiter *job = p->wait_head;

    if (job) {
        p->wait_head = job->next;
        if (!p->wait_head)
            p->wait_tail = NULL;
        job->next = NULL;
    }
    return job;
}

static void give(struct rw_pconn *pc, struct rw_pool_waiter *job)
{
    pc->job = job;
    pc->clean = false;
    job->on_conn(job, pc);
}

static void open_one(struct rw_pool *p)
{
    struct rw_pconn *pc = calloc(1, sizeof *pc);
    struct rw_pg_callbacks cb = {pc_ready, pc_lost, NULL, pc};

    if (!pc)
        return;
    cb.arg = pc;
    pc->pool = p;
    pc->pg = rw_pg_new(p->loop, p->url, &cb, p->connect_timeout_s);
    if (!pc->pg) {
        free(pc);
        return;
    }
    char app[64];
    snprintf(app, sizeof app, "rlsworker %s", p->name);
    rw_pg_set_app_name(pc->pg, app);
    pc->next = p->conns;
    p->conns = pc;
    p->n++;
    p->opening++;
    rw_pg_connect(pc->pg);
}

void rw_pool_acquire(struct rw_pool *p, struct rw_pool_waiter *job)
{
    int waiting = 0;

    for (struct rw_pconn *pc = p->conns; pc; pc = pc->next) {
        if (pc->ready && !pc->job && rw_pg_ready(pc->pg)) {
            give(pc, job);
            return;
        }
    }
    job->next = NULL;
    if (p->wait_tail)
        p->wait_tail->next = job;
    else
        p->wait_head = job;
    p->wait_tail = job;
    for (struct rw_pool_waiter *j = p->wait_head; j; j = j->next)
        waiting++;
    if (p->opening < waiting && p->n < p->max)
        open_one(p);
}

void rw_pool_forget(struct rw_pool *p, struct rw_pool_waiter *job)
{
    struct rw_pool_waiter **jp = &p->wait_head;

    p->wait_tail = NULL;
    while (*jp) {
        if (*jp == job)
            *jp = job->next;
        else {
            p->wait_tail = *jp;
            jp = &(*jp)->next;
        }
    }
    job->next = NULL;
}

static void serve_next(struct rw_pconn *pc)
{
    struct rw_pool_waiter *job = pop_waiter(pc->pool);

    if (job)
        give(pc, job);
}

void rw_pool_mark_clean(struct rw_pconn *pc)
{
    pc->clean = true;
}

void rw_pool_release(struct rw_pconn *pc)
{
    PGconn *c = rw_pg_conn(pc->pg);

    pc->job = NULL;
    if (!c)
        return;   /* lost: pc_lost unlinks it once its callbacks are done */
    if (!pc->clean || rw_pg_inflight(pc->pg) > 0 ||
        PQtransactionStatus(c) != PQTRANS_IDLE) {
        /* never hand a connection in an unknown state to another job */
        if (pc->clean)
            rw_warn("discarding a connection of role %s that is not idle", pc->pool->name);
        else
            rw_debug("discarding a connection of role %s whose session was not reset",
                     pc->pool->name);
        struct rw_pool *p = pc->pool;
        unlink_pc(pc);
        if (p->wait_head && p->n < p->max)
            open_one(p);
        return;
    }
    serve_next(pc);
}

static void pc_ready(rw_pg *pg, void *arg)
{
    struct rw_pconn *pc = arg;

    pc->ready = true;
    pc->pool->opening--;
    serve_next(pc);
}

static void pc_lost(rw_pg *pg, const char *why, void *arg)
{
    struct rw_pconn *pc = arg;
    struct rw_pool *p = pc->pool;
    bool was_ready = pc->ready;

    /* a job using it was already told through its op callback */
    unlink_pc(pc);
    if (was_ready) {
        rw_warn("connection of role %s lost: %s", p->name, why);
        if (p->wait_head && p->n < p->max)
            open_one(p);
        return;
    }
    rw_error("could not connect as role %s: %s", p->name, why);
    /* nobody can serve the waiters if no connection is left */
    if (p->n == 0) {
        struct rw_pool_waiter *job;
        while ((job = pop_waiter(p)) != NULL)
            job->on_fail(job, why);
    }
}

void rw_pool_disconnect_all(struct rw_pool *p)
{
    for (struct rw_pconn *pc = p->conns; pc; pc = pc->next)
        rw_pg_disconnect(pc->pg);
}
