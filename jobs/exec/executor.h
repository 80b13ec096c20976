/* The executor runs one claimed job on a connection of its role (or a
 * built-in in-process) and reports its end upward through the on_end
 * callback it was given at construction (River's JobDone), never by calling
 * the scheduler. */
#ifndef RW_EXECUTOR_H
#define RW_EXECUTOR_H

#include <ev.h>
#include <stdbool.h>

#include "jobs/exec/job.h"
#include "worker/pg/pgconn.h"
#include "worker/pg/pool.h"

struct rw_config;
struct rw_metrics;
struct rw_registry;

enum rw_job_outcome {
    RW_JOB_COMPLETED,   /* reported: completion still to send (built-ins) */
    RW_JOB_FAILED,      /* retry after delay_ms */
    RW_JOB_DEAD,        /* no retry */
    RW_JOB_RELEASED,    /* back to the queue, attempt not counted */
    RW_JOB_LOST,        /* no longer held by this worker: nothing to send */
};

struct rw_job_end {
    enum rw_job_outcome outcome;
    bool committed;     /* COMPLETED: the completion committed with the job's own
                         * transaction, nothing left to send */
    const char *error;  /* FAILED/DEAD: for last_error (borrowed, for the call) */
    long long delay_ms; /* FAILED: retry delay */
};

struct rw_exec_callbacks {
    /* The job ended. The executor no longer touches it: the callee owns it
     * again (unlinks and frees it). May be called before rw_job_dispatch
     * returns. */
    void (*on_end)(struct rw_job *job, const struct rw_job_end *end, void *arg);
    /* The admin control connection when it is ready, else NULL (built-ins'
     * scoped queries run on it). */
    rw_pg *(*admin_conn)(void *arg);
    void *arg;
};

struct rw_executor;

/* One configured restricted role and its pool. */
struct rw_exec_role {
    const char *name;             /* the role it logs in as */
    struct rw_pool *pool;
};

/* Where jobs run. System jobs run on `admin` alone. User-scoped jobs resolve
 * their role only in roles[], the configured restricted roles, which never
 * holds the admin connection: roles[0] is DATABASE_AUTHENTICATED_URL's login
 * role (user_role), then each --role NAME=URL. Whether a job is user-scoped
 * comes from its task, never from the pool picked. */
struct rw_exec_pools {
    struct rw_pool *admin;
    const struct rw_exec_role *roles;
    int nroles;
    const char *user_role;
};

/* loop, cfg, the pools (and the table they point to) and metrics are
 * borrowed and must outlive the executor; *pools is copied. NULL: out of
 * memory. */
struct rw_executor *rw_exec_new(struct ev_loop *loop, const struct rw_config *cfg,
                                const struct rw_exec_pools *pools,
                                struct rw_metrics *metrics, const struct rw_exec_callbacks *cb);
/* The registry new jobs look their task up in (borrowed; SIGHUP swaps it). */
void rw_exec_set_tasks(struct rw_executor *ex, const struct rw_registry *tasks);
/* Every user job is planned for its own claims, in a group too: the
 * database has a function marked IMMUTABLE that reads settings
 * (RW_SQL_IMMUTABLE_READERS, worker/checks/rolecheck.h). */
void rw_exec_plan_each_job(struct rw_executor *ex);
void rw_exec_free(struct rw_executor **ex);
/* Immediate stop: drops every pool's connections; running jobs see conn_lost. */
void rw_exec_disconnect_all(struct rw_executor *ex);

/* Starts a READY job (job->ex set): on return it is WAITING, RUNNING or
 * already ended (the scheduler's pump relies on it leaving READY). Its end
 * comes through on_end. */
void rw_job_dispatch(struct rw_job *job);
/* The job would join a group of user jobs that is still open (group commit),
 * so it needs no slot of its own (sets job->t). */
bool rw_exec_joins_group(struct rw_executor *ex, struct rw_job *job);
/* Asks a job to stop (operator cancel, shutdown): a WAITING one ends (dead),
 * a RUNNING one becomes STOPPING; a READY one only remembers the request. */
void rw_job_cancel(struct rw_job *job, const char *why);
/* Shutdown: a job not started yet (prefetched or waiting for a connection)
 * goes back to the queue uncounted. */
void rw_job_release_if_waiting(struct rw_job *job);
/* Shutdown after the grace period: cancel it and put it back uncounted. */
void rw_job_abandon(struct rw_job *job);

#endif
