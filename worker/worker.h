/* The running worker: one context passed down to every subsystem, and the
 * job lifecycle.
 *
 *   claimed --dispatch--> waiting (for a connection) --> running --> done
 *                                                           \-> failed (retry or dead)
 *   claimed/waiting --shutdown or lost control connection--> released
 *
 * One function moves a job between states (rw_job_finish); every job ends
 * in exactly one of: completed, failed, released, lost (its holder can no
 * longer say; lock recovery takes over). */
#ifndef RW_WORKER_H
#define RW_WORKER_H

#include <ev.h>
#include <jansson.h>
#include <stdbool.h>

#include "jobs/taskfile.h"
#include "worker/config.h"
#include "worker/pgconn.h"

struct rw_pool;
struct rw_pconn;
struct rw_cron_runner;
struct rw_crontab;
struct rw_metrics;
struct rw_intake;

enum rw_job_state { RW_JOB_CLAIMED, RW_JOB_WAITING, RW_JOB_RUNNING, RW_JOB_ENDED };

struct rw_job {
    struct rw_worker *w;
    long long id;
    char *task;
    json_t *payload;              /* owned reference */
    char *claims;                 /* canonical JSON text, or NULL */
    char *subject;
    char *run_as;                 /* job override, or NULL */
    long long claims_verified_at; /* unix seconds, 0 if none */
    int attempts;                 /* including this one */
    int max_attempts;             /* 0: from the task or config */
    char lock_token[40];
    const struct rw_task *t;      /* borrowed from the registry in use */
    struct rw_pool *pool;
    struct rw_pconn *pc;
    enum rw_job_state state;
    bool cancel_requested;
    bool timed_out;
    bool abandoned;               /* shutdown: report released, not failed */
    ev_timer timeout;
    ev_tstamp started;
    struct rw_job *next, *prev;   /* w->jobs list */
    struct rw_job *wait_next;     /* pool wait list */
    struct rw_job *ready_next;    /* w->ready list (prefetched, not dispatched) */
    bool dispatched;              /* counted in w->running */
    struct rw_builtin_job *bj;    /* a running built-in's handle (for abort), else NULL */
};

/* What a built-in task holds while it runs (jobs/builtin.h). */
struct rw_builtin_job {
    struct rw_job *job;
    void *data;                   /* the task's own state (rw_builtin_set_data) */
    bool final;                   /* set by rw_builtin_fail_final: no retry */
};

struct rw_stats {
    long long claimed, completed, failed, dead, released;
};

struct rw_worker {
    struct ev_loop *loop;
    struct rw_config cfg;
    struct rw_registry *tasks;    /* current registry (owned) */
    char id[96];
    char host[64];
    bool once;
    bool stopping;
    bool stopped;

    /* admin control connection: claims, completions, LISTEN, heartbeats */
    rw_pg *ctl;
    bool ctl_ready;
    bool registered;
    int ctl_backoff_ms;
    ev_timer ctl_retry;

    /* pools: [0] admin (system jobs), then user, then named roles */
    struct rw_pool **pools;
    int npools;

    /* scheduling */
    int inflight;                 /* jobs claimed and not yet ended */
    int running;                  /* of those, dispatched (at most concurrency) */
    struct rw_job *ready_head, *ready_tail; /* claimed, waiting for a slot */
    bool pumping;
    bool claim_inflight;
    bool claim_again;
    int claim_asked;
    bool finishing;
    int stop_forced;
    bool more_ready;              /* last claim came back full, or NOTIFY */
    bool drained;                 /* --once: a claim came back empty */
    ev_timer poll_timer;
    ev_timer heartbeat_timer;
    ev_timer sweep_timer;
    ev_timer stop_timer;          /* shutdown_timeout */
    ev_prepare flush_prepare;     /* sends batched outcomes once per loop turn */
    ev_signal sig_term, sig_int, sig_hup;

    /* batched outcomes for the control connection */
    struct rw_outcome *outcomes;
    int noutcomes, outcomes_cap;
    int flush_inflight;

    struct rw_job *jobs;          /* every live job */
    struct rw_stats stats;
    struct rw_cron_runner *cron;
    struct rw_crontab *crontab_pending; /* parsed at start, until cron starts */
    struct rw_intake *intake;
    struct rw_metrics *metrics;   /* owned; never NULL while running */
    struct rw_registry **retired; /* older registries still used by jobs */
    int nretired;
    char *user_role;              /* role DATABASE_AUTHENTICATED_URL logs in as */
    struct rw_http_client *http;  /* built-ins' outgoing HTTP; owned, created on first use */
};

/* Runs the worker until stopped. Returns the exit code. */
int rw_worker_run(struct rw_worker *w);

/* scheduler/scheduler.c */
int rw_sched_start(struct rw_worker *w);
void rw_sched_maybe_claim(struct rw_worker *w);
void rw_sched_job_ended(struct rw_worker *w);
/* Graceful (finish running jobs within shutdown_timeout) or immediate. */
void rw_sched_stop(struct rw_worker *w, bool immediate);

enum rw_outcome_kind { RW_OUT_COMPLETE, RW_OUT_FAIL, RW_OUT_RELEASE };
/* Queues a job's outcome for the next batch on the control connection. */
void rw_sched_free_outcomes(struct rw_worker *w);
void rw_sched_report(struct rw_worker *w, enum rw_outcome_kind kind, long long id,
                     const char *error, long long delay_ms, bool dead);

/* worker/executor.c */
void rw_job_dispatch(struct rw_job *job);
void rw_job_free(struct rw_job **job);
/* Asks a running job to stop (operator cancel, shutdown). */
void rw_job_cancel(struct rw_job *job, const char *why);
/* Shutdown: a job not started yet (prefetched or waiting for a connection)
 * goes back to the queue uncounted. */
void rw_job_release_if_waiting(struct rw_job *job);
/* Shutdown after the grace period: cancel it and put it back uncounted. */
void rw_job_abandon(struct rw_job *job);

/* worker/pool.c */
struct rw_pool *rw_pool_new(struct rw_worker *w, const char *name, const char *url, int max);
void rw_pool_free(struct rw_pool **p);
const char *rw_pool_name(const struct rw_pool *p);
/* Connections by use, and jobs waiting for one (for /metrics). */
struct rw_pool_stats { int in_use, idle, opening, waiting, max; };
void rw_pool_stats(const struct rw_pool *p, struct rw_pool_stats *st);
struct rw_pool *rw_worker_pool(struct rw_worker *w, const char *name);
/* Queues the job for a connection; rw_job_on_conn is called when it has one. */
void rw_pool_acquire(struct rw_pool *p, struct rw_job *job);
/* Takes the job off the wait list if it is waiting. */
void rw_pool_forget(struct rw_pool *p, struct rw_job *job);
/* Gives the connection back; a connection not idle is discarded. */
void rw_pool_release(struct rw_pconn *pc);
/* Immediate stop: drops every connection; running jobs see conn_lost. */
void rw_pool_disconnect_all(struct rw_pool *p);
rw_pg *rw_pconn_pg(struct rw_pconn *pc);
void rw_job_on_conn(struct rw_job *job, struct rw_pconn *pc);
void rw_job_on_conn_failed(struct rw_job *job, const char *why);

#endif
