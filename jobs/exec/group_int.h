/* What group.c (a group's life and its results) and group_op.c (the
 * statements it sends) share. Private to jobs/exec. */
#ifndef RW_GROUP_INT_H
#define RW_GROUP_INT_H

#include <stdbool.h>

#include "jobs/exec/exec_int.h"
#include "jobs/exec/group.h"
#include "jobs/exec/prepcache.h"

#define SQLSTATE_NOT_HELD "RW001"
#define SQLSTATE_QUERY_CANCELED "57014"
#define OWNER_GROUP (-1)          /* begin, rollback to savepoint, commit, reset */
#define OWNER_COMPLETION (-2)     /* the group's complete_jobs */
#define OWNER_PLANS (-3)          /* rlsworker_api.plan_generic */
/* A group of at least this many jobs asks whether its statements' plans
 * can be made once (deploy/sql/018): asking costs about two plans of each
 * statement, and PostgreSQL plans the first five runs of a prepared
 * statement for their own parameters anyway. */
#define PLANS_MIN_JOBS 8

enum member_state { M_PENDING, M_SENT, M_RELEASED, M_ENDED };

struct member {
    struct rw_job *job;
    enum member_state st;
    int seq;                      /* its place in claim order */
};

/* What each statement of the op in flight is. */
struct tag {
    int owner;                    /* member, OWNER_GROUP, OWNER_COMPLETION or OWNER_PLANS */
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
    bool plans_once;              /* plan_generic answered '': auto plans */
    struct rw_group *next;        /* the executor's groups without a connection */
};

/* group.c: a member leaves the group (its end is reported by the caller);
 * a group is freed; the callbacks of the two kinds of op. */
struct rw_job *rw_group_take(struct rw_group *g, int i);
void rw_group_free(struct rw_group *g);
void rw_group_done(rw_pg *pg, const struct rw_pg_result *r, void *arg);
void rw_group_plans_done(rw_pg *pg, const struct rw_pg_result *r, void *arg);

/* group_op.c: whether the group asks plan_generic first; that op; the op of
 * `first` (begin; rollback to savepoint; NULL after the plans' op; or
 * rollback, which begins again after a failed plans' op) and every pending
 * member, their completion, commit and the session reset. */
bool rw_group_asks_plans(const struct rw_group *g);
void rw_group_send_plans(struct rw_group *g);
void rw_group_send_op(struct rw_group *g, const char *first);

#endif
