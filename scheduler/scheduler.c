/* What runs when: the control connection (admin role) claims ready jobs in
 * batches, wakes on LISTEN/NOTIFY with a polling fallback, sends batched
 * outcomes, heartbeats, and sweeps jobs of lost workers. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scheduler/scheduler_int.h"
#include "jobs/exec/group.h"
#include "worker/base/log.h"
#include "worker/pg/queue.h"

static void job_ended(struct rw_job *job, const struct rw_job_end *end, void *arg);
static void rw_sched_job_ended(struct rw_sched *s);
static rw_pg *admin_conn(void *arg);
static void ctl_ready(rw_pg *pg, void *arg);
static void ctl_lost(rw_pg *pg, const char *why, void *arg);

/* ---- the executor's reports ------------------------------------------------ */

/* on_end: the outcome goes into the next batch; the job (ENDED, off every
 * list) is freed here, where it was made. */
static void job_ended(struct rw_job *job, const struct rw_job_end *end, void *arg)
{
    struct rw_sched *s = arg;

    switch (end->outcome) {
    case RW_JOB_COMPLETED:
        s->stats.completed++;
        if (!end->committed)
            rw_sched_report(s, RW_OUT_COMPLETE, job->id, NULL, 0, false);
        break;
    case RW_JOB_FAILED:
    case RW_JOB_DEAD: {
        bool dead = end->outcome == RW_JOB_DEAD;
        rw_sched_report(s, RW_OUT_FAIL, job->id, end->error, end->delay_ms, dead);
        if (dead)
            s->stats.dead++;
        else
            s->stats.failed++;
        break;
    }
    case RW_JOB_RELEASED:
        s->stats.released++;
        rw_sched_report(s, RW_OUT_RELEASE, job->id, NULL, 0, false);
        break;
    case RW_JOB_LOST:
        break;
    }
    rw_job_free(&job);
    rw_sched_job_ended(s);
}

static rw_pg *admin_conn(void *arg)
{
    struct rw_sched *s = arg;

    return s->ctl_ready ? s->ctl : NULL;
}

struct rw_exec_callbacks rw_sched_exec_callbacks(struct rw_sched *s)
{
    return (struct rw_exec_callbacks){job_ended, admin_conn, s};
}

/* ---- claiming ------------------------------------------------------------ */

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

static struct rw_job *job_from_row(struct rw_sched *s, const struct rw_queue_claimed *row)
{
    struct rw_job *job = calloc(1, sizeof *job);
    json_error_t jerr;

    if (!job)
        return NULL;
    job->ex = s->ex;
    job->id = row->id;
    job->task = strdup(row->task);
    job->payload = json_loads(row->payload, 0, &jerr);
    job->claims = dup_or_null(row->claims);
    job->subject = dup_or_null(row->subject);
    job->run_as = dup_or_null(row->run_as);
    job->attempts = row->attempts;
    job->max_attempts = row->max_attempts;
    snprintf(job->lock_token, sizeof job->lock_token, "%s", row->lock_token);
    job->claims_verified_at = row->claims_verified_at;
    job->chained_by = row->chained_by;
    job->claimed_at = ev_now(s->loop);
    if (!job->payload)
        job->payload = json_object();
    rw_job_claimed(job, &s->jobs);
    s->stats.claimed++;
    return job;
}

/* Dispatched jobs that count against concurrency: a group-committed job
 * that joined an open group shares its first member's slot. */
static int slots_used(const struct rw_sched *s)
{
    int n = 0;

    for (int st = RW_JOB_WAITING; st < RW_JOB_ENDED; st++)
        for (const struct rw_job *j = s->jobs.by_state[st].head; j; j = j->next)
            n += rw_group_holds_slot(j);
    return n;
}

/* Starts prefetched jobs while there are free slots. Jobs that end
 * synchronously (built-ins) come back here through rw_sched_job_ended; the
 * flag keeps that from recursing, the loop picks the next one up. */
static void pump(struct rw_sched *s)
{
    if (s->pumping)
        return;
    s->pumping = true;
    while (s->jobs.by_state[RW_JOB_READY].head && !s->stopping) {
        struct rw_job *job = s->jobs.by_state[RW_JOB_READY].head;
        /* a user job that joins a group still open needs no slot (group commit) */
        if (!rw_exec_joins_group(s->ex, job) && slots_used(s) >= s->cfg->concurrency)
            break;
        rw_job_dispatch(job);             /* moves it out of READY */
    }
    s->pumping = false;
}

/* Stopping: prefetched jobs go back to the queue at once, uncounted. */
static void release_ready(struct rw_sched *s)
{
    struct rw_job *job;

    while ((job = s->jobs.by_state[RW_JOB_READY].head) != NULL)
        rw_job_release_if_waiting(job);   /* READY -> ENDED */
}

static void claim_done(rw_pg *pg, const struct rw_pg_result *r, void *arg)
{
    struct rw_sched *s = arg;
    struct rw_queue_claimed row;
    int rows, asked = s->claim_asked;

    s->claim_inflight = false;
    if (!r->ok) {
        if (!r->conn_lost)
            rw_error("could not claim jobs: %s", r->error);
        return;
    }
    rows = rw_queue_claimed_count(r);
    rw_sched_vacuum_claimed(s, rows);
    rw_sched_wake_claimed(s, rows, asked);
    s->more_ready = rows >= asked;
    /* an empty answer while jobs ran proves nothing: a job's end may free
     * its named queue (--once claims again once everything settled) */
    s->drained = rows == 0 && s->claim_idle;
    for (int i = 0; i < rows; i++) {
        rw_queue_claimed_row(r, i, &row);
        job_from_row(s, &row);            /* joins the READY list */
    }
    if (s->stopping) {
        release_ready(s);   /* a claim that was in flight when the stop began */
        return;
    }
    pump(s);
    if (s->claim_again || s->more_ready) {
        s->claim_again = false;
        rw_sched_maybe_claim(s);
    }
    rw_sched_check_done(s);
}

void rw_sched_maybe_claim(struct rw_sched *s)
{
    int prefetch = s->prefetch_paused ? 0 : rw_config_prefetch(s->cfg);
    int free_slots = s->cfg->concurrency + prefetch - rw_sched_live(s);

    if (s->stopping || !s->ctl_ready || !s->registered)
        return;
    if (s->claim_inflight) {
        s->claim_again = true;
        return;
    }
    if (free_slots <= 0)
        return;
    s->claim_asked = free_slots < s->cfg->claim_batch ? free_slots : s->cfg->claim_batch;
    if (rw_queue_claim_jobs(s->ctl, s->id, s->claim_asked, claim_done, s) == 0) {
        s->claim_inflight = true;
        s->claim_idle = rw_sched_live(s) == 0;
    }
}

/* Prefetched jobs that did not start within PREFETCH_HOLD_S (every slot is
 * busy with long jobs) go back to the queue uncounted, for other workers,
 * and this worker claims only for free slots until one frees up. */
#define PREFETCH_HOLD_S 1.0
static void release_stale_ready(struct rw_sched *s)
{
    struct rw_job *job;
    ev_tstamp now = ev_now(s->loop);

    /* the READY list is in claim order: the stale jobs are at its head */
    while ((job = s->jobs.by_state[RW_JOB_READY].head) != NULL &&
           now - job->claimed_at > PREFETCH_HOLD_S) {
        s->prefetch_paused = true;
        rw_job_release_if_waiting(job);   /* READY -> ENDED */
    }
}

static void rw_sched_job_ended(struct rw_sched *s)
{
    if (slots_used(s) < s->cfg->concurrency)
        s->prefetch_paused = false;
    if (s->pumping)
        return;         /* the pump's caller claims once the batch is started */
    pump(s);
    if (s->more_ready || s->claim_again)
        rw_sched_maybe_claim(s);
    if (s->stopping && rw_sched_live(s) == 0)
        rw_sched_finish(s);
}

static void on_poll(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct rw_sched *s = t->data;

    release_stale_ready(s);
    s->more_ready = true;
    rw_sched_maybe_claim(s);
    if (!rw_sched_listening(s))
        rw_sched_check_cancels(s);
}

/* ---- --once ---------------------------------------------------------------- */

void rw_sched_check_done(struct rw_sched *s)
{
    if (!s->once || s->stopping || rw_sched_live(s) > 0 || s->claim_inflight ||
        s->noutcomes > 0 || s->flush_inflight > 0)
        return;
    if (!s->drained) {         /* one more claim after everything settled */
        s->more_ready = true;
        rw_sched_maybe_claim(s);
        return;
    }
    rw_info("--once: no ready jobs left (%lld completed, %lld failed, %lld dead)",
            s->stats.completed, s->stats.failed, s->stats.dead);
    rw_sched_stop(s, false);
}

/* ---- control connection ------------------------------------------------- */

static void ctl_connect(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct rw_sched *s = t->data;

    rw_pg_connect(s->ctl);
}

static void registered(rw_pg *pg, const struct rw_pg_result *r, void *arg)
{
    struct rw_sched *s = arg;

    if (!r->ok) {
        if (!r->conn_lost) {
            /* e.g. the schema was dropped: retry through the reconnect backoff */
            rw_error("could not register this worker: %s; retrying (run \"rlsworker "
                     "migrate\" if the schema is missing)", r->error);
            rw_pg_abort(s->ctl, "registration failed");
        }
        return;
    }
    s->registered = true;
    s->ctl_backoff_ms = 0;
    if (!rw_queue_registered_own_session(r))
        rw_info("the control connection does not reach its own server session (a "
                "pooler?): if this worker dies, its jobs return after lock_timeout "
                "(%d s), not at once", s->cfg->lock_timeout_s);
    rw_sched_recovery_start(s);
    if (s->cb.on_registered && !s->stopping)
        s->cb.on_registered(s->cb.arg);
    rw_sched_notify_send_probe(s);
    rw_sched_wake_registered(s);
    s->more_ready = true;
    rw_sched_maybe_claim(s);
}

struct known_ids {
    char *buf;
    size_t cap, len;
};

static void add_known_id(struct rw_job *j, void *arg)
{
    struct known_ids *k = arg;

    k->len += (size_t)snprintf(k->buf + k->len, k->cap - k->len, "%s%lld",
                               k->len > 1 ? "," : "", j->id);
}

/* After (re)connecting: register, and give back jobs this worker holds in
 * the database but does not know (a claim whose answer was lost). Nothing
 * here outlives its transaction: LISTEN is the listener's (notify.c). */
static void ctl_ready(rw_pg *pg, void *arg)
{
    struct rw_sched *s = arg;
    char *known = NULL;
    size_t cap = 2 + (size_t)rw_sched_live(s) * 21, len = 0;
    struct known_ids k;

    s->ctl_ready = true;
    rw_info("connected to the queue database as worker %s", s->id);
    known = malloc(cap + 1);
    if (!known)
        return;
    known[len++] = '{';
    k = (struct known_ids){known, cap, len};
    rw_job_each(&s->jobs, add_known_id, &k);
    len = k.len;
    known[len++] = '}';
    known[len] = '\0';
    /* the pid of our server session as the handshake told it: recorded only
     * if it is the backend running the registration (not behind a pooler) */
    int bpid = rw_pg_conn(pg) ? PQbackendPID(rw_pg_conn(pg)) : 0;
    if (rw_queue_register_worker(pg, s->id, s->host, (int)getpid(), bpid, known, registered,
                                 s) < 0)
        rw_pg_abort(pg, "could not send the registration");
    free(known);
}

int rw_sched_retry_later(struct rw_sched *s, ev_timer *retry, int *backoff_ms)
{
    int max_ms = s->cfg->reconnect_max_s * 1000;

    *backoff_ms = *backoff_ms ? *backoff_ms * 2 : 100;
    if (*backoff_ms > max_ms)
        *backoff_ms = max_ms;
    ev_timer_set(retry, *backoff_ms / 1000.0, 0.);
    ev_timer_start(s->loop, retry);
    return *backoff_ms;
}

static void ctl_lost(rw_pg *pg, const char *why, void *arg)
{
    struct rw_sched *s = arg;

    s->ctl_ready = false;
    s->registered = false;
    s->claim_inflight = false;
    rw_sched_recovery_stop(s);
    if (s->stopped)
        return;
    if (s->stopping) {
        rw_warn("lost the queue database while stopping: %s", why);
        rw_sched_finish(s);
        return;
    }
    rw_warn("lost the queue database: %s; reconnecting in %d ms", why,
            rw_sched_retry_later(s, &s->ctl_retry, &s->ctl_backoff_ms));
}

static void out_connect(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct rw_sched *s = t->data;

    (void)loop;
    (void)revents;
    rw_pg_connect(s->out);
}

static void out_ready(rw_pg *pg, void *arg)
{
    struct rw_sched *s = arg;

    (void)pg;
    s->out_ready = true;
    s->out_backoff_ms = 0;
}

/* Outcomes in flight on it come back as lost and go again (outcomes.c), on
 * the control connection until this one is back. */
static void out_lost(rw_pg *pg, const char *why, void *arg)
{
    struct rw_sched *s = arg;

    (void)pg;
    s->out_ready = false;
    if (s->stopped || s->stopping)
        return;
    rw_info("lost the outcomes connection: %s; the control connection records outcomes "
            "until it is back (reconnecting in %d ms)", why,
            rw_sched_retry_later(s, &s->out_retry, &s->out_backoff_ms));
}

int rw_sched_start(struct rw_sched *s, struct rw_executor *ex)
{
    struct rw_pg_callbacks cb = {ctl_ready, ctl_lost, NULL, s};
    struct rw_pg_callbacks out_cb = {out_ready, out_lost, NULL, s};

    s->ex = ex;

    s->ctl = rw_pg_new(s->loop, s->cfg->database_url, &cb, s->cfg->connect_timeout_s);
    if (!s->ctl)
        return -1;
    rw_pg_set_app_name(s->ctl, "rlsworker control");
    /* its statements are all short: silence this long means a frozen network,
     * and other workers have taken our jobs by then anyway */
    rw_pg_set_reply_timeout(s->ctl, s->cfg->lock_timeout_s);
    ev_init(&s->ctl_retry, ctl_connect);
    s->ctl_retry.data = s;
    s->out = rw_pg_new(s->loop, s->cfg->database_url, &out_cb, s->cfg->connect_timeout_s);
    if (!s->out)
        return -1;
    rw_pg_set_app_name(s->out, "rlsworker outcomes");
    rw_pg_set_reply_timeout(s->out, s->cfg->lock_timeout_s);
    ev_init(&s->out_retry, out_connect);
    s->out_retry.data = s;
    ev_timer_init(&s->poll_timer, on_poll, s->cfg->poll_interval_ms / 1000.0,
                  s->cfg->poll_interval_ms / 1000.0);
    s->poll_timer.data = s;
    ev_timer_start(s->loop, &s->poll_timer);
    ev_prepare_init(&s->flush_prepare, rw_sched_on_prepare);
    s->flush_prepare.data = s;
    ev_prepare_start(s->loop, &s->flush_prepare);
    rw_sched_recovery_init(s);
    if (rw_sched_notify_init(s) < 0)
        return -1;
    rw_pg_connect(s->ctl);
    rw_pg_connect(s->out);
    rw_sched_notify_start(s);
    return 0;
}

/* ---- stopping ------------------------------------------------------------- */

static void deregistered(rw_pg *pg, const struct rw_pg_result *r, void *arg)
{
    struct rw_sched *s = arg;

    if (!r->ok && !r->conn_lost)
        rw_warn("could not deregister: %s", r->error);
    s->stopped = true;
    ev_break(s->loop, EVBREAK_ALL);
}

/* Everything has ended: send what is left, deregister, leave the loop. */
void rw_sched_finish(struct rw_sched *s)
{
    if (s->stopped || s->finishing)
        return;
    if (s->out_inflight > 0) {
        /* the deregistration must not overtake outcomes still in flight on
         * the outcomes connection: flush_done comes back here */
        s->finish_pending = true;
        return;
    }
    s->finishing = true;
    ev_timer_stop(s->loop, &s->stop_timer);
    ev_timer_stop(s->loop, &s->out_retry);
    if (s->ctl_ready) {
        rw_sched_flush_outcomes(s, true);
        if (rw_queue_deregister_worker(s->ctl, s->id, deregistered, s) == 0)
            return;
    }
    if (s->noutcomes)
        rw_warn("%d job outcomes could not be recorded; lock recovery returns those "
                "jobs to the queue after lock_timeout", s->noutcomes);
    s->stopped = true;
    ev_break(s->loop, EVBREAK_ALL);
}

static void abandon(struct rw_job *j, void *arg)
{
    rw_job_abandon(j);
}

static void release_if_waiting(struct rw_job *j, void *arg)
{
    rw_job_release_if_waiting(j);
}

static void mark_abandoned(struct rw_job *j, void *arg)
{
    j->abandoned = true;
}

static void on_stop_timeout(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct rw_sched *s = t->data;

    if (rw_sched_live(s) > 0) {
        rw_warn("shutdown_timeout of %d s reached: cancelling %d running jobs and "
                "putting them back in the queue", s->cfg->shutdown_timeout_s, rw_sched_live(s));
        rw_job_each(&s->jobs, abandon, NULL);
        /* a job whose cancel is ignored is dropped with its connection */
        ev_timer_set(t, 10., 0.);
        ev_timer_start(loop, t);
        s->stop_forced++;
        if (s->stop_forced > 1)
            rw_sched_finish(s);
        return;
    }
    rw_sched_finish(s);
}

/* A second signal: every running job is dropped with its connection (its
 * transaction aborts on the server, and complete_job could no longer
 * succeed) and put back uncounted; then deregister and leave. */
static void stop_now(struct rw_sched *s)
{
    rw_job_each(&s->jobs, mark_abandoned, NULL);
    rw_exec_disconnect_all(s->ex);
    rw_sched_finish(s);
}

void rw_sched_stop(struct rw_sched *s, bool immediate)
{
    if (!s->stopping) {
        s->stopping = true;
        ev_timer_stop(s->loop, &s->poll_timer);
        if (s->cb.on_stopping)
            s->cb.on_stopping(s->cb.arg);
        /* jobs that have not started go back at once, uncounted */
        release_ready(s);
        rw_job_each(&s->jobs, release_if_waiting, NULL);
        ev_init(&s->stop_timer, on_stop_timeout);
        s->stop_timer.data = s;
        ev_timer_set(&s->stop_timer, s->cfg->shutdown_timeout_s, 0.);
        ev_timer_start(s->loop, &s->stop_timer);
    }
    if (immediate) {
        stop_now(s);
        return;
    }
    if (rw_sched_live(s) == 0)
        rw_sched_finish(s);
}

/* ---- the scheduler's life ------------------------------------------------- */

struct rw_sched *rw_sched_new(struct ev_loop *loop, const struct rw_config *cfg,
                              const char *id, const char *host, bool once,
                              const struct rw_sched_callbacks *cb)
{
    struct rw_sched *s = calloc(1, sizeof *s);

    if (!s)
        return NULL;
    s->loop = loop;
    s->cfg = cfg;
    s->cb = *cb;
    s->once = once;
    snprintf(s->id, sizeof s->id, "%s", id);
    snprintf(s->host, sizeof s->host, "%s", host);
    return s;
}

bool rw_sched_stopping(const struct rw_sched *s) { return s->stopping; }
rw_pg *rw_sched_admin(struct rw_sched *s) { return s->ctl; }
const struct rw_stats *rw_sched_stats(const struct rw_sched *s) { return &s->stats; }

void rw_sched_free(struct rw_sched **sp)
{
    struct rw_sched *s = *sp;

    *sp = NULL;
    if (!s)
        return;
    for (int st = 0; st < RW_JOB_ENDED; st++)
        while (s->jobs.by_state[st].head) {
            struct rw_job *j = s->jobs.by_state[st].head;
            rw_job_free(&j);   /* takes it off its list */
        }
    rw_pg_free(&s->ctl);
    rw_pg_free(&s->out);
    rw_pg_free(&s->lsn);
    rw_pg_free(&s->vac);
    rw_sched_free_outcomes(s);
    free(s);
}

bool rw_sched_registered(const struct rw_sched *s) { return s->registered; }
int rw_sched_inflight(const struct rw_sched *s) { return rw_sched_live(s); }
int rw_sched_running(const struct rw_sched *s) { return slots_used(s); }
