/* Internal to jobs/exec: the executor's state, shared by executor.c, the
 * SQL task's run (executor_sql.c), group commit (group.c) and the
 * built-ins' host (builtin_api.c). */
#ifndef RW_EXEC_INT_H
#define RW_EXEC_INT_H

#include "jobs/builtin/builtin.h"
#include "jobs/exec/executor.h"

struct rw_executor {
    struct ev_loop *loop;
    const struct rw_config *cfg;
    struct rw_exec_pools pools;
    struct rw_metrics *metrics;
    const struct rw_registry *tasks;
    struct rw_exec_callbacks cb;
    struct rw_http_client *http;  /* built-ins' outgoing HTTP; owned, created on first use */
    struct rw_group *groups;      /* group.c: groups still without a connection */
    ev_prepare group_prep;        /* asks the pools for their connections once a turn */
    bool group_prep_init;
    bool plans_warned;            /* group.c: logged that a group's plans need its claims */
    bool plan_each_job;           /* rw_exec_plan_each_job: groups never ask plan_generic */
};

/* builtin_api.c: the host built-ins call back into. */
extern const struct rw_builtin_host rw_exec_builtin_host;
/* executor.c: a built-in job ended (from the host's done). */
void rw_exec_builtin_done(struct rw_job *job, const char *error, bool final);

/* executor.c, for group.c and executor_sql.c: a job's ends, its timeout. */
void rw_exec_failed(struct rw_job *job, const char *error, bool final);
void rw_exec_committed(struct rw_job *job);
void rw_exec_released(struct rw_job *job);
void rw_exec_lost(struct rw_job *job);
int rw_exec_timeout_s(const struct rw_job *job);

/* executor_sql.c, for group.c: a job's settings statement (params needs
 * RW_SETTINGS_NPARAMS slots and must live until the statement is sent;
 * plans_once: its group's plans need no claims, see group.c), and the
 * reset of a connection after a failed job. */
#define RW_SETTINGS_NPARAMS 5
struct rw_pg_stmt rw_exec_settings_stmt(struct rw_job *job, const char **params, const char *tmo,
                                        bool plans_once);
void rw_exec_reset_after_failure(rw_pg *pg, struct rw_pconn *pc);
/* executor_sql.c, for executor.c: the pool waiter's callbacks of a SQL job
 * (it has its connection: run its transaction; or none came: released). */
void rw_exec_on_conn(struct rw_pool_waiter *wt, struct rw_pconn *pc);
void rw_exec_on_conn_failed(struct rw_pool_waiter *wt, const char *why);

#endif
