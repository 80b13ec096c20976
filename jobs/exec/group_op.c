/* The statements a group sends (group.c has the group's life and what
 * comes back): its first op, which may ask whether the plans can be made
 * once, and the op of its pending members. docs/guarantees.md, "Group
 * commit" and "Plans". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jobs/exec/group_int.h"
#include "jobs/task/taskfile.h"
#include "worker/base/config.h"

/* ---- one op: the statements of the pending members --------------------- */

struct op_build {
    struct rw_group *g;
    struct rw_pg_stmt *st;
    int n, cap;
    struct tag *tags;
    struct rw_bind *binds;
    int nbinds;
    char (*tmos)[32];
    const char *(*params)[RW_SETTINGS_NPARAMS];
    char *done_ids, *done_tokens;     /* the completion's two array literals */
    const char *done_params[2];
    char *plan_names;                 /* plan_generic's array literal of names */
    const char *plan_params[1];
    const char *plan_set[RW_SETTINGS_NPARAMS];
    char plan_tmo[32];
};

/* Adds a statement of `owner`; when the group prepares, as its prepared
 * statement, preceded by the prepare at its first use. -1 when out of
 * memory. A task's statement without parameters stays unnamed unless the
 * group made its plans without claims (plans_once): PostgreSQL runs a
 * prepared statement without parameters on one generic plan whatever
 * plan_cache_mode says, and that plan would be made with the first job's
 * claims. */
/* The prepare of prepcache entry k, which this op sends. */
static void add_prepare(struct op_build *b, int owner, int tstmt, int k, const char *sql, int np)
{
    b->g->preps.v[k].sending = true;
    b->tags[b->n] = (struct tag){owner, tstmt, k};
    b->st[b->n++] = (struct rw_pg_stmt){sql, np, NULL, b->g->preps.v[k].name, true};
}

static int add_stmt(struct op_build *b, int owner, int tstmt, const char *sql, int np,
                    const char *const *p)
{
    int k = -1;
    bool named = rw_config_group_prepare(b->g->ex->cfg) &&
                 (tstmt < 0 || np > 0 || b->g->plans_once);

    if (named && (k = rw_prepcache_get(&b->g->preps, sql)) < 0)
        return -1;
    if (k >= 0 && !b->g->preps.v[k].ready && !b->g->preps.v[k].sending)
        add_prepare(b, owner, tstmt, k, sql, np);
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
    free(b->plan_names);
}


/* After the commit: what DISCARD ALL does (docs/security.md, "Session reset
 * after every job") but DISCARD PLANS. The queue functions a group calls
 * then keep their plans from one group to the next instead of being
 * analysed and planned again in every group; none of their plans depends
 * on the claims. Each job's own statements still get a plan made for its
 * claims (plan_cache_mode, set with them), and PostgreSQL replans a plan
 * whose role, search_path or tables changed. But a statement without
 * parameters always runs PostgreSQL's generic plan, whatever
 * plan_cache_mode says, and PL/pgSQL keeps such plans for the session: so
 * while the database has a function marked IMMUTABLE that reads settings
 * (rw_exec_plan_each_job), every batch-mate and every group also starts
 * with DISCARD PLANS, and no plan made with one job's claims reaches
 * another. */
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

/* Whether a group asks if its plans can be made once: at least
 * PLANS_MIN_JOBS jobs, prepared statements, and no function in the
 * database that plan_generic could miss (rw_exec_plan_each_job). */
bool rw_group_asks_plans(const struct rw_group *g)
{
    int jobs = 0;

    for (int i = 0; i < g->n; i++)
        jobs += g->m[i].st == M_PENDING;
    return jobs >= PLANS_MIN_JOBS && rw_config_group_prepare(g->ex->cfg) &&
           !g->ex->plan_each_job;
}

/* The first op of a group that asks (rw_group_asks_plans): every task
 * statement of its jobs is prepared, the first job's settings are made,
 * and rlsworker_api.plan_generic (deploy/sql/018) plans each statement with
 * those claims and without any, and keeps the plan made without. -1 when
 * out of memory. */
static int add_plans(struct op_build *b, struct rw_group *g)
{
    struct rw_job *first = NULL;
    size_t len = 3;

    for (int i = 0; i < g->n; i++) {
        const struct rw_task *t = g->m[i].st == M_PENDING ? g->m[i].job->t : NULL;
        if (t && !first)
            first = g->m[i].job;
        for (int k = 0; t && k < t->nstmts; k++) {
            int p = rw_prepcache_get(&g->preps, t->stmts[k].sql);
            if (p < 0)
                return -1;
            if (g->preps.v[p].sending)
                continue;             /* already here */
            add_prepare(b, OWNER_GROUP, -1, p, t->stmts[k].sql, t->stmts[k].nparams);
            len += strlen(g->preps.v[p].name) + 1;
        }
    }
    if (!(b->plan_names = malloc(len)))
        return -1;
    char *o = b->plan_names;
    *o++ = '{';
    for (int p = 0; p < g->preps.n; p++)
        o += sprintf(o, "%s%s", p == 0 ? "" : ",", g->preps.v[p].name);
    strcpy(o, "}");
    snprintf(b->plan_tmo, sizeof b->plan_tmo, "%d", rw_exec_timeout_s(first) * 1000);
    struct rw_pg_stmt set = rw_exec_settings_stmt(first, b->plan_set, b->plan_tmo, false);
    if (add_stmt(b, OWNER_GROUP, -1, set.sql, set.nparams, set.params) < 0)
        return -1;
    b->plan_params[0] = b->plan_names;
    add(b, OWNER_PLANS, "select rlsworker_api.plan_generic($1::text[])", 1, b->plan_params);
    return 0;
}

/* The group ends without sending its op: every live member fails and
 * retries (`why`), and the connection goes back to the pool, which discards
 * it (it was not marked clean), rolling back what its transaction holds. */
static void end_unsent(struct rw_group *g, struct op_build *b, const char *why)
{
    op_build_free(b);
    for (int i = 0; i < g->n; i++)
        if (g->m[i].st != M_ENDED)
            rw_exec_failed(rw_group_take(g, i), why, false);
    rw_pool_release(g->pc);
    rw_group_free(g);
}

/* Hands the op's tags to the group (for `done`) and sends the op. When it
 * cannot be sent the connection is gone: lost() reports nothing to this op,
 * so the group ends here. */
static void submit(struct rw_group *g, struct op_build *b, rw_pg_done_cb done)
{
    free(g->tags);
    g->tags = b->tags;
    b->tags = NULL;
    g->nstmts = b->n;
    if (rw_pg_submit(rw_pconn_pg(g->pc), b->st, b->n, done, g) < 0)
        end_unsent(g, b, "could not send the job's statements");
    else
        op_build_free(b);
}

#define NO_MEMORY "out of memory while building the job's statements"

/* Sends `first` (begin; rollback to savepoint; NULL after the plans' op;
 * rollback, to begin again after a failed one) and every pending member,
 * then their completion, commit and the session reset. */
void rw_group_send_op(struct rw_group *g, const char *first)
{
    struct op_build b = {0};
    int stmts = 13, njobs = 0, nb = 0;
    bool restart = first && strcmp(first, "rollback") == 0;
    bool fresh = !first || restart || strcmp(first, "begin") == 0;
    char err[600];

    for (int i = 0; i < g->n; i++)
        if (g->m[i].st == M_PENDING) {
            /* each statement may come with its prepare */
            stmts += 2 * (9 + g->m[i].job->t->nstmts);
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
    if (first)
        add(&b, OWNER_GROUP, first, 0, NULL);
    if (restart)
        add(&b, OWNER_GROUP, "begin", 0, NULL);
    for (int i = 0; i < g->n; i++) {
        struct member *m = &g->m[i];
        struct rw_job *job = m->job;
        int bind0 = b.nbinds;
        bool ok = true;

        if (m->st != M_PENDING)
            continue;
        if (job->abandoned) {
            rw_exec_released(rw_group_take(g, i));
            continue;
        }
        if (job->cancel_requested) {
            rw_exec_failed(rw_group_take(g, i), "cancelled: by operator", true);
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
            rw_exec_failed(rw_group_take(g, i), err, true);
            continue;
        }
        snprintf(b.tmos[i], sizeof b.tmos[i], "%d", rw_exec_timeout_s(job) * 1000);
        struct rw_pg_stmt set = rw_exec_settings_stmt(job, b.params[i], b.tmos[i], g->plans_once);
        int rc = add_stmt(&b, i, -1, "savepoint j", 0, NULL);
        if (!fresh) {
            /* what the batch-mate before left in the transaction */
            rc |= add_stmt(&b, i, -1, "reset all", 0, NULL);
            rc |= add_stmt(&b, i, -1, "close all", 0, NULL);
            rc |= add_stmt(&b, i, -1, "discard temp", 0, NULL);
            if (g->ex->plan_each_job)     /* see the session reset below */
                rc |= add_stmt(&b, i, -1, "discard plans", 0, NULL);
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
        rw_group_free(g);
        return;
    }
    if (add_completion(&b, g) < 0)
        goto out_of_memory;
    g->commit_at = b.n;
    add(&b, OWNER_GROUP, "commit", 0, NULL);
    for (int i = 0; group_reset[i]; i++)
        add(&b, OWNER_GROUP, group_reset[i], 0, NULL);
    if (g->ex->plan_each_job)
        add(&b, OWNER_GROUP, "discard plans", 0, NULL);
    submit(g, &b, rw_group_done);
    return;

out_of_memory:
    end_unsent(g, &b, NO_MEMORY);
}


/* The first op of a group that asks whether its plans can be made once
 * (rw_group_asks_plans): begin, and add_plans. Its jobs follow in the next
 * op, with plan_cache_mode as the answer says (rw_group_plans_done). */
void rw_group_send_plans(struct rw_group *g)
{
    struct op_build b = {0};
    int stmts = 4;

    for (int i = 0; i < g->n; i++)
        if (g->m[i].st == M_PENDING)
            stmts += g->m[i].job->t->nstmts;
    b.g = g;
    b.cap = stmts;
    b.st = calloc((size_t)stmts, sizeof *b.st);
    b.tags = calloc((size_t)stmts, sizeof *b.tags);
    if (!b.st || !b.tags) {
        end_unsent(g, &b, NO_MEMORY);
        return;
    }
    add(&b, OWNER_GROUP, "begin", 0, NULL);
    if (add_plans(&b, g) < 0) {
        end_unsent(g, &b, NO_MEMORY);
        return;
    }
    g->commit_at = -1;
    submit(g, &b, rw_group_plans_done);
}
