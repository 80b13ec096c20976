/* A claimed job while this worker holds it: its states, the one function
 * that moves it between them, and the lists its owner keeps by state
 * (PgBouncer's change_client_state).
 *
 *   READY ---dispatch---> WAITING ---connection---> RUNNING ---stop asked---> STOPPING
 *     |    (SQL task)       |                        ^  |                        |
 *     |---dispatch (built-in) -----------------------'  |                        |
 *     v                     v                           v                        v
 *   ENDED <----------------------------------------------------------------------'
 *
 * READY: claimed, prefetched, not dispatched yet (the scheduler's ready
 *   list). READY -> ENDED: refused at dispatch, or released at shutdown.
 * WAITING: dispatched, waiting for a connection of its role's pool (the
 *   pool keeps its own queue of waiters, in the order they asked), alone or
 *   in a group of user jobs that will share one transaction (group.c; a
 *   group's members go RUNNING together on its connection).
 *   WAITING -> ENDED: cancelled, released at shutdown, or no connection.
 * RUNNING: on its connection (or a built-in in-process).
 * STOPPING: running, and a stop was asked of it (operator cancel, timeout,
 *   shutdown): the cancel went to the server or to the built-in's abort;
 *   it still ends through its own callback. Why it was asked is data
 *   (cancel_requested, timed_out, abandoned: several can hold, and each
 *   changes the wording or kind of its outcome), not a state.
 * ENDED: handed back to its owner through the executor's on_end, off every
 *   list; the owner frees it.
 *
 * Who owns what: the scheduler makes a job from a claimed row
 * (scheduler/scheduler.c, job_from_row), puts it on its lists with
 * rw_job_claimed and frees it (rw_job_free) when the executor reports its
 * end through on_end (jobs/exec/executor.h). Every other transition happens
 * in the executor, and only through rw_job_set_state (jobs/exec/job.c).
 * Every job ends in exactly one of: completed, failed, dead, released,
 * lost (its holder can no longer say; lock recovery takes over). */
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

enum rw_job_state {
    RW_JOB_READY,
    RW_JOB_WAITING,
    RW_JOB_RUNNING,
    RW_JOB_STOPPING,
    RW_JOB_ENDED,
};
#define RW_JOB_NSTATES (RW_JOB_ENDED + 1)

struct rw_job;

/* One state's jobs, oldest first. */
struct rw_job_list {
    struct rw_job *head, *tail;
    int n;
};

/* The lists a job's owner keeps, one per live state (an ENDED job is on
 * none). Zero-initialised is empty. */
struct rw_job_lists {
    struct rw_job_list by_state[RW_JOB_ENDED];
};

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
    enum rw_job_state state;      /* set only by rw_job_set_state */
    /* why a stop was asked (data, see above) */
    bool cancel_requested;
    bool timed_out;
    bool abandoned;               /* shutdown: report released, not failed */
    ev_timer timeout;
    ev_tstamp started;
    struct rw_pool_waiter waiter; /* waiting for a connection of job->pool */
    struct rw_job_lists *lists;   /* the owner's (borrowed), or NULL */
    struct rw_job *next, *prev;   /* on lists->by_state[state] */
    ev_tstamp claimed_at;         /* when the scheduler made it (prefetch hold) */
    struct rw_builtin_job *bj;    /* a running built-in's handle (for abort), else NULL */
    struct rw_group *group;       /* group commit (group.c): its group while waiting or running */
};

/* A new job (state READY) joins its owner's READY list; lists may be NULL
 * (an owner that keeps no lists, as in tests). */
void rw_job_claimed(struct rw_job *job, struct rw_job_lists *lists);
/* The one way a job changes state: asserts the transition is legal and
 * moves the job to the tail of the new state's list (ENDED: off every
 * list). */
void rw_job_set_state(struct rw_job *job, enum rw_job_state to);
/* RUNNING or STOPPING: on its connection or in its built-in. */
bool rw_job_running(const struct rw_job *job);
const char *rw_job_state_name(enum rw_job_state state);

/* Jobs on lists in the given state; jobs on lists not ENDED. */
int rw_job_count(const struct rw_job_lists *lists, enum rw_job_state state);
int rw_job_count_live(const struct rw_job_lists *lists);
/* Calls fn once for every live job, latest state first; fn may move the
 * job it is given to a later state (or end and free it), no other job. */
void rw_job_each(struct rw_job_lists *lists, void (*fn)(struct rw_job *job, void *arg),
                 void *arg);

/* Frees the job and what it owns, taking it off its list first; NULLs
 * *job. */
void rw_job_free(struct rw_job **job);

#endif
