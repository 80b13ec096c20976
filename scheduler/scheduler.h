/* The scheduler: the admin control connection claims ready jobs in batches
 * (LISTEN/NOTIFY on a session of its own where that works, polling where a
 * pooler is in the way; notify.c), hands them to the executor,
 * batches their outcomes, heartbeats and sweeps jobs of lost workers.
 *
 * It owns the jobs it claimed (made, listed, counted and freed here); the
 * executor hands each back through the callbacks of rw_sched_exec_callbacks. */
#ifndef RW_SCHEDULER_H
#define RW_SCHEDULER_H

#include <ev.h>
#include <stdbool.h>

#include "jobs/exec/executor.h"

struct rw_config;
struct rw_sched;

struct rw_stats {
    long long claimed, completed, failed, dead, released;
};

/* Upward reports of the scheduler, given at construction. */
struct rw_sched_callbacks {
    /* Registered on the control connection (also after a reconnect). */
    void (*on_registered)(void *arg);
    /* A stop began: stop producing new jobs (cron ticks, intake). */
    void (*on_stopping)(void *arg);
    /* The sweep pruned n runs older than history_retention (may be 0). */
    void (*on_history_pruned)(long long n, void *arg);
    void *arg;
};

/* id: this worker's id, host its host name (both copied); once: --once.
 * loop and cfg are borrowed. NULL: out of memory. */
struct rw_sched *rw_sched_new(struct ev_loop *loop, const struct rw_config *cfg,
                              const char *id, const char *host, bool once,
                              const struct rw_sched_callbacks *cb);
/* What to give rw_exec_new so the executor reports to this scheduler. */
struct rw_exec_callbacks rw_sched_exec_callbacks(struct rw_sched *s);
/* Connects the control connection and starts claiming into ex (borrowed). */
int rw_sched_start(struct rw_sched *s, struct rw_executor *ex)
    __attribute__((warn_unused_result));
/* Graceful (finish running jobs within shutdown_timeout) or immediate. */
void rw_sched_stop(struct rw_sched *s, bool immediate);
bool rw_sched_stopping(const struct rw_sched *s);
/* The control connection (admin role; borrowed): for cron and the intake. */
rw_pg *rw_sched_admin(struct rw_sched *s);
const struct rw_stats *rw_sched_stats(const struct rw_sched *s);
/* Registered on the control connection (and not lost it since). */
bool rw_sched_registered(const struct rw_sched *s);
/* How new jobs and cancels are heard of, for /readyz: "listen", or
 * "polling (...)" saying why (static text). */
const char *rw_sched_notifications(const struct rw_sched *s);
/* Jobs claimed and not yet ended; of those, the ones running. */
int rw_sched_inflight(const struct rw_sched *s);
int rw_sched_running(const struct rw_sched *s);
/* After the loop ended: frees jobs still held, outcomes, the connection. */
void rw_sched_free(struct rw_sched **s);

#endif
