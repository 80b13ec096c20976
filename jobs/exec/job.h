/* A claimed job while this worker holds it.
 *
 *   claimed --dispatch--> waiting (for a connection) --> running --> ended
 *   claimed/waiting --shutdown or lost control connection--> ended (released)
 *
 * Who owns what: the scheduler makes a job from a claimed row
 * (scheduler/scheduler.c, job_from_row), keeps it on its lists and frees it
 * (rw_job_free) when the executor reports its end through on_end
 * (jobs/exec/executor.h). The state is still set in the executor where each
 * step happens; one transition function is not written yet. Every job ends in exactly one of:
 * completed, failed, dead, released, lost (its holder can no longer say;
 * lock recovery takes over). */
#ifndef RW_JOB_H
#define RW_JOB_H

#include <ev.h>
#include <jansson.h>
#include <stdbool.h>

#include "worker/pg/pool.h"

struct rw_executor;
struct rw_task;
struct rw_builtin_job;
struct rw_group;

enum rw_job_state { RW_JOB_CLAIMED, RW_JOB_WAITING, RW_JOB_RUNNING, RW_JOB_ENDED };

struct rw_job {
    struct rw_executor *ex;       /* runs it (borrowed) */
    long long id;
    char *task;
    json_t *payload;              /* owned reference */
    char *claims;                 /* canonical JSON text, or NULL */
    char *subject;
    char *run_as;                 /* job override, or NULL */
    long long chained_by;         /* the job that chained this one, or 0 */
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
    struct rw_pool_waiter waiter; /* waiting for a connection of job->pool */
    struct rw_job *next, *prev;   /* the scheduler's list of live jobs */
    struct rw_job *ready_next;    /* the scheduler's ready list (prefetched, not dispatched) */
    bool dispatched;              /* the scheduler counted it as running */
    ev_tstamp claimed_at;         /* when the scheduler made it (prefetch hold) */
    struct rw_builtin_job *bj;    /* a running built-in's handle (for abort), else NULL */
    struct rw_group *group;       /* group commit (group.c): its group while waiting or running */
};

/* Frees the job and what it owns; NULLs *job. */
void rw_job_free(struct rw_job **job);

#endif
