/* Heartbeats and lock recovery. Each worker heartbeats every
 * heartbeat_interval; every worker also sweeps, about once a second: jobs
 * held by a worker whose control session has ended (it died: the server
 * closed its session) or whose heartbeat is older than lock_timeout (its
 * machine vanished) go back to the queue (the attempt stays counted).
 * The frequent sweep reads only rlsworker.workers and pg_stat_activity; the
 * full one (heartbeats, orphaned jobs) runs every 1/4-1/2 lock_timeout.
 * Sweeping is idempotent, so several sweepers are safe. */
#include <stdio.h>
#include <stdlib.h>

#include "scheduler/scheduler_int.h"
#include "worker/base/log.h"
#include "worker/pg/queue.h"

#define SWEEP_INTERVAL_S 1.0   /* a killed worker's jobs return within ~1 s */

static void heartbeat_done(rw_pg *pg, const struct rw_pg_result *r, void *arg)
{
    struct rw_sched *s = arg;

    if (!r->ok) {
        if (!r->conn_lost)
            rw_warn("could not send heartbeat: %s", r->error);
        return;
    }
    if (!rw_queue_heartbeat_alive(r)) {
        /* we were declared lost: our jobs were requeued; their completions
         * will be refused (and rolled back), so just register again */
        rw_warn("this worker was declared lost by another worker (heartbeat older "
                "than lock_timeout); registering again");
        rw_pg_abort(s->ctl, "re-registering after being declared lost");
    }
}

static void on_heartbeat(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct rw_sched *s = t->data;
    if (s->registered && rw_queue_heartbeat(s->ctl, s->id, heartbeat_done, s) < 0)
        rw_warn("could not send heartbeat: not connected");
    /* a cancel whose NOTIFY was lost (or never sent through a pooler) */
    rw_sched_check_cancels(s);
}

static void sweep_done(rw_pg *pg, const struct rw_pg_result *r, void *arg)
{
    int n;

    if (!r->ok) {
        if (!r->conn_lost)
            rw_warn("could not sweep jobs of lost workers: %s", r->error);
        return;
    }
    n = rw_queue_swept_count(r);
    if (n > 0)
        rw_info("returned %d jobs of lost workers to the queue", n);
}

static void prune_done(rw_pg *pg, const struct rw_pg_result *r, void *arg)
{
    struct rw_sched *s = arg;
    long long n;

    if (!r->ok) {
        if (!r->conn_lost)
            rw_warn("could not prune the job history: %s", r->error);
        return;
    }
    n = rw_queue_pruned_count(r);
    if (s->cb.on_history_pruned)
        s->cb.on_history_pruned(n, s->cb.arg);
    if (n > 0)
        rw_debug("pruned %lld runs older than history_retention from the job history", n);
}

/* Finished runs older than history_retention leave rlsworker.job_history,
 * at most history_prune_batch per sweep. */
static void prune_history(struct rw_sched *s)
{
    if (rw_queue_prune_history(s->ctl, s->cfg->history_retention_s,
                               s->cfg->history_prune_batch, prune_done, s) < 0)
        rw_debug("history pruning skipped: not connected");
}

static void on_sweep(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct rw_sched *s = t->data;
    bool full = ev_now(loop) >= s->full_sweep_at;

    /* every ~1 s: dead sessions only (cheap); 1/4-1/2 lock_timeout: all */
    if (s->registered &&
        rw_queue_sweep_dead_sessions(s->ctl, s->cfg->lock_timeout_s, full, sweep_done, s) < 0)
        rw_debug("sweep skipped: not connected");
    if (s->registered && full)
        s->full_sweep_at = ev_now(loop) +
                           s->cfg->lock_timeout_s * (0.25 + (random() % 1000) / 4000.0);
    /* history pruning keeps its old cadence: 1/4 to 1/2 of lock_timeout */
    if (s->registered && ev_now(loop) >= s->prune_at) {
        prune_history(s);
        s->prune_at = ev_now(loop) + s->cfg->lock_timeout_s * (0.25 + (random() % 1000) / 4000.0);
    }
    /* spread sweeps of many workers: between 0.75 and 1.25 s */
    t->repeat = SWEEP_INTERVAL_S * (0.75 + (random() % 1000) / 2000.0);
    ev_timer_again(loop, t);
}

void rw_sched_recovery_init(struct rw_sched *s)
{
    ev_init(&s->heartbeat_timer, on_heartbeat);
    s->heartbeat_timer.data = s;
    s->heartbeat_timer.repeat = s->cfg->heartbeat_interval_s;
    ev_init(&s->sweep_timer, on_sweep);
    s->sweep_timer.data = s;
}

void rw_sched_recovery_start(struct rw_sched *s)
{
    ev_timer_again(s->loop, &s->heartbeat_timer);
    /* sweep soon after start: a restarted worker recovers its old jobs fast */
    s->sweep_timer.repeat = 0.5;
    ev_timer_again(s->loop, &s->sweep_timer);
}

void rw_sched_recovery_stop(struct rw_sched *s)
{
    ev_timer_stop(s->loop, &s->heartbeat_timer);
    ev_timer_stop(s->loop, &s->sweep_timer);
}
