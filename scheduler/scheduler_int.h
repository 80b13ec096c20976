/* Internal to scheduler/: the scheduler's state, shared between
 * scheduler.c and recovery.c. */
#ifndef RW_SCHEDULER_INT_H
#define RW_SCHEDULER_INT_H

#include <unistd.h>

#include "scheduler/scheduler.h"
#include "worker/base/config.h"

struct rw_outcome;
enum rw_outcome_kind { RW_OUT_COMPLETE, RW_OUT_FAIL, RW_OUT_RELEASE };

struct rw_sched {
    struct ev_loop *loop;
    const struct rw_config *cfg;
    struct rw_executor *ex;
    struct rw_sched_callbacks cb;
    char id[96];
    char host[64];
    bool once;
    bool stopping;
    bool stopped;

    /* admin control connection: claims, completions, heartbeats; only
     * transaction-scoped work, so it may go through a transaction pooler */
    rw_pg *ctl;
    bool ctl_ready;
    bool registered;
    int ctl_backoff_ms;
    ev_timer ctl_retry;

    /* outcomes connection (outcomes.c): the batched completions, failures
     * and releases go on a second admin session, so the server records one
     * batch while the control session claims the next, on two cores; the
     * control connection carries them while this one is down, and always
     * at the end, in front of the deregistration */
    rw_pg *out;
    bool out_ready;
    int out_backoff_ms;
    ev_timer out_retry;
    int out_inflight;             /* outcome batches in flight on it */
    bool finish_pending;          /* rw_sched_finish waits for them */

    /* notifications (notify.c): a session of its own on direct_url (or
     * database_url) that LISTENs, unless a pooler is in the way */
    rw_pg *lsn;
    enum { RW_LSN_PROBING, RW_LSN_LISTENING, RW_LSN_POOLED, RW_LSN_LOST } lsn_mode;
    bool lsn_proxied;             /* its backend pid is not the server's */
    bool probe_notify_pending;    /* the probe's NOTIFY waits for the control connection */
    char probe_channel[64];
    ev_timer probe_timer;
    ev_timer lsn_retry;
    int lsn_backoff_ms;
    ev_timer reprobe_timer;       /* polling: when to check for notifications again */
    int probes_failed;            /* in a row; the first is warned, later ones logged */
    bool cancel_check_inflight;
    /* whether transactions that queue jobs must notify this worker (020):
     * what it last told rlsworker.workers (-1: not known), and the barrier
     * it passes before the claim that follows a change to true */
    int wants_notify;
    bool barrier_inflight;
    bool barrier_pending;         /* a barrier to pass before the next claim */
    double barrier_delay;
    ev_timer barrier_timer;

    /* scheduling: every live job is on the list of its state; READY ones
     * wait for a slot (jobs/exec/job.h) */
    struct rw_job_lists jobs;
    bool pumping;
    bool prefetch_paused;         /* prefetched jobs went stale: claim only for free slots */
    bool claim_inflight;
    bool claim_again;
    int claim_asked;
    bool finishing;
    int stop_forced;
    bool more_ready;              /* last claim came back full, or NOTIFY */
    bool drained;                 /* --once: a claim came back empty */
    bool claim_idle;              /* the claim in flight was sent with no job held */
    ev_timer poll_timer;
    ev_timer heartbeat_timer;
    ev_timer sweep_timer;
    ev_tstamp prune_at;           /* next job-history pruning (recovery.c) */
    ev_tstamp full_sweep_at;      /* next sweep that also checks heartbeats */
    ev_timer stop_timer;          /* shutdown_timeout */
    ev_prepare flush_prepare;     /* sends batched outcomes once per loop turn */

    /* batched outcomes for the control connection */
    struct rw_outcome *outcomes;
    int noutcomes, outcomes_cap;
    int flush_inflight;

    /* vacuum.c: the queue table vacuumed every vacuum_every claimed jobs */
    rw_pg *vac;
    bool vac_inflight;
    bool vac_off;                 /* DATABASE_URL's role does not own the table */
    bool vac_owner_checked;
    long long vac_claimed;        /* jobs claimed since the last vacuum began */
    ev_tstamp vac_started;

    struct rw_stats stats;
};

/* Jobs claimed and not yet ended; of those, dispatched (at most concurrency). */
static inline int rw_sched_live(const struct rw_sched *s)
{
    return rw_job_count_live(&s->jobs);
}

static inline int rw_sched_dispatched(const struct rw_sched *s)
{
    return rw_sched_live(s) - rw_job_count(&s->jobs, RW_JOB_READY);
}

void rw_sched_check_done(struct rw_sched *s);
void rw_sched_finish(struct rw_sched *s);
/* A lost connection's next try: doubles *backoff_ms (from 100, at most
 * reconnect_max_s), starts the retry timer and returns the delay in ms. */
int rw_sched_retry_later(struct rw_sched *s, ev_timer *retry, int *backoff_ms);
void rw_sched_maybe_claim(struct rw_sched *s);
/* outcomes.c: batching of outcomes */
void rw_sched_flush_outcomes(struct rw_sched *s, bool force);
void rw_sched_on_prepare(struct ev_loop *loop, ev_prepare *p, int revents);
void rw_sched_free_outcomes(struct rw_sched *s);
/* Queues a job's outcome for the next batch on the control connection. */
void rw_sched_report(struct rw_sched *s, enum rw_outcome_kind kind, long long id,
                     const char *error, long long delay_ms, bool dead);

/* notify.c: LISTEN where it works, polling where it does not */
int rw_sched_notify_init(struct rw_sched *s);
void rw_sched_notify_start(struct rw_sched *s);
/* Sends the probe's NOTIFY from the control connection once it is
 * registered, when the listener waits for one (notify.c). */
void rw_sched_notify_send_probe(struct rw_sched *s);
/* After a claim (rows of asked): a full claim makes the worker busy, so
 * transactions that queue jobs need not notify it; a short one makes it
 * wait for work again (notify.c, 020_notify_when_idle.sql). */
void rw_sched_wake_claimed(struct rw_sched *s, int rows, int asked);
/* After (re)registering: the worker waits for work. */
void rw_sched_wake_registered(struct rw_sched *s);
/* Notifications arrive (LISTEN is in place): the slow poll is enough. */
bool rw_sched_listening(const struct rw_sched *s);
/* Asks the database which of this worker's running jobs an operator
 * cancelled (rlsworker.cancel_job) and cancels them: the path that needs no
 * NOTIFY. Called with each heartbeat, and with each poll while not listening. */
void rw_sched_check_cancels(struct rw_sched *s);
/* A job this worker holds was cancelled by an operator. */
void rw_sched_cancel_job(struct rw_sched *s, long long id);

/* vacuum.c: n more jobs were claimed; vacuums rlsworker.jobs when
 * vacuum_every of them came since the last vacuum. */
void rw_sched_vacuum_claimed(struct rw_sched *s, int n);

/* recovery.c: heartbeats and sweeping jobs of lost workers */
void rw_sched_recovery_init(struct rw_sched *s);
void rw_sched_recovery_start(struct rw_sched *s);
void rw_sched_recovery_stop(struct rw_sched *s);

#endif
