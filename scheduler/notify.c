/* How the worker hears of new jobs and of operator cancels.
 *
 * The control connection (DATABASE_URL) only ever runs transaction-scoped
 * work, so it may go through a transaction pooler. LISTEN needs a session:
 * it runs on a connection of its own ("rlsworker listener") to
 * DATABASE_DIRECT_URL, or to DATABASE_URL when no direct URL is given. At
 * each connect the listener probes before it LISTENs to the worker's
 * channels (worker/pg/pooler.h): on a direct connection it NOTIFYs itself;
 * through a proxy (its backend pid is not the server's: a pooler, or Neon's
 * proxy in front of the direct endpoint) the NOTIFY comes from the control
 * connection while the listener idles, which only a session of its own
 * receives. When nothing arrives within notify_probe_timeout it warns,
 * names the fix, unlistens the private probe channel (best effort: behind
 * a transaction pooler that may reach another server session), disconnects,
 * and the scheduler polls every poll_interval_pooled; operator cancels are then
 * found by asking the database (rw_sched_check_cancels), which is also done
 * with every heartbeat in case a notification was lost. After
 * notify_reprobe_interval it connects and probes again. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scheduler/scheduler_int.h"
#include "worker/base/log.h"
#include "worker/pg/pooler.h"
#include "worker/pg/queue.h"

#define JOBS_CHANNEL "rlsworker_jobs"
#define CANCEL_CHANNEL "rlsworker_cancel"

static const char *lsn_source(const struct rw_sched *s)
{
    return s->cfg->direct_url ? "DATABASE_DIRECT_URL" : "DATABASE_URL";
}

/* The poll timer runs at the pace that matches how jobs are heard of. */
static void set_poll(struct rw_sched *s)
{
    int ms = s->lsn_mode == RW_LSN_LISTENING ? s->cfg->poll_interval_ms
                                               : s->cfg->poll_interval_pooled_ms;

    if (s->stopping)
        return;
    s->poll_timer.repeat = ms / 1000.0;
    ev_timer_again(s->loop, &s->poll_timer);
}

bool rw_sched_listening(const struct rw_sched *s)
{
    return s->lsn_mode == RW_LSN_LISTENING;
}

const char *rw_sched_notifications(const struct rw_sched *s)
{
    switch (s->lsn_mode) {
    case RW_LSN_LISTENING:
        return "listen";
    case RW_LSN_POOLED:
        return s->cfg->direct_url
                   ? "polling (DATABASE_DIRECT_URL is pooled or gets no notifications; "
                     "set it to the direct host)"
                   : "polling (pooled connection; set DATABASE_DIRECT_URL)";
    case RW_LSN_LOST:
        return "polling (listener reconnecting)";
    case RW_LSN_PROBING:
        break;
    }
    return "polling (checking whether notifications arrive)";
}

static void unlistened(rw_pg *pg, const struct rw_pg_result *r, void *arg)
{
    if (!r->conn_lost)
        rw_pg_disconnect(pg);
}

/* Polling: after notify_reprobe_interval the listener connects and probes
 * again, so a worker whose probe failed once (a pooler since replaced, a
 * server too slow to answer at start) does not poll for the rest of its
 * life. */
static void schedule_reprobe(struct rw_sched *s, char *when, size_t len)
{
    int secs = s->cfg->notify_reprobe_interval_s;

    snprintf(when, len, "%s", secs > 0 ? "" : "; it will not check again (notify_reprobe_interval 0)");
    if (secs <= 0 || s->stopping)
        return;
    snprintf(when, len, "; it checks again in %d s", secs);
    ev_timer_set(&s->reprobe_timer, secs, 0.);
    ev_timer_start(s->loop, &s->reprobe_timer);
}

static void on_reprobe(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct rw_sched *s = t->data;

    if (s->stopping || s->stopped || s->lsn_mode != RW_LSN_POOLED)
        return;
    rw_debug("checking again whether notifications arrive on %s", lsn_source(s));
    s->lsn_mode = RW_LSN_PROBING;
    rw_pg_connect(s->lsn);
}

/* No LISTEN here: warn at the first failed probe (later ones are logged),
 * drop the session, poll fast, probe again later. */
static void give_up(struct rw_sched *s, bool pooled)
{
    char when[96];

    ev_timer_stop(s->loop, &s->probe_timer);
    s->lsn_mode = RW_LSN_POOLED;
    s->lsn_backoff_ms = 0;
    schedule_reprobe(s, when, sizeof when);
    if (s->probes_failed++ > 0)
        rw_info("notifications still do not arrive on %s; looking for new jobs and cancels "
                "every %d ms%s", lsn_source(s), s->cfg->poll_interval_pooled_ms, when);
    else if (pooled)
        rw_warn("%s goes through a connection pooler: a NOTIFY from another connection "
                "did not reach an idle LISTEN within %d ms, so LISTEN is not used; looking "
                "for new jobs and cancels every %d ms instead%s (fix: %s)",
                lsn_source(s), s->cfg->notify_probe_timeout_ms,
                s->cfg->poll_interval_pooled_ms, when, RW_NOTIFY_FIX);
    else
        rw_warn("a NOTIFY this worker sent itself on %s did not arrive within %d ms; "
                "looking for new jobs and cancels every %d ms instead%s (fix: %s)",
                lsn_source(s), s->cfg->notify_probe_timeout_ms,
                s->cfg->poll_interval_pooled_ms, when, RW_NOTIFY_FIX);
    s->probe_notify_pending = false;
    if (s->probe_channel[0]) {
        /* best effort: behind a transaction pooler this may reach another
         * server session than the one that holds the probe's LISTEN */
        char unlisten[96];
        snprintf(unlisten, sizeof unlisten, "unlisten %s", s->probe_channel);
        s->probe_channel[0] = '\0';
        if (rw_pg_query(s->lsn, unlisten, 0, NULL, unlistened, s) == 0) {
            set_poll(s);
            return;
        }
    }
    rw_pg_disconnect(s->lsn);
    set_poll(s);
}

static void listening(rw_pg *pg, const struct rw_pg_result *r, void *arg)
{
    struct rw_sched *s = arg;

    if (!r->ok) {
        if (!r->conn_lost)
            rw_pg_abort(pg, r->error ? r->error : "LISTEN failed");
        return;
    }
    s->lsn_mode = RW_LSN_LISTENING;
    s->lsn_backoff_ms = 0;
    if (s->probes_failed > 0)
        rw_warn("notifications arrive on %s now, after %d failed check%s: listening "
                "again instead of polling", lsn_source(s), s->probes_failed,
                s->probes_failed > 1 ? "s" : "");
    s->probes_failed = 0;
    rw_info("listening for new jobs and cancels on %s", lsn_source(s));
    set_poll(s);
    /* jobs queued while nobody listened */
    s->more_ready = true;
    rw_sched_maybe_claim(s);
    rw_sched_check_cancels(s);
}

static void probe_sent(rw_pg *pg, const struct rw_pg_result *r, void *arg)
{
    if (!r->ok && !r->conn_lost)
        rw_pg_abort(pg, r->error ? r->error : "the notification probe failed");
}

static void start_probe_timer(struct rw_sched *s)
{
    ev_timer_set(&s->probe_timer, s->cfg->notify_probe_timeout_ms / 1000.0, 0.);
    ev_timer_start(s->loop, &s->probe_timer);
}

static void probe_notified(rw_pg *pg, const struct rw_pg_result *r, void *arg)
{
    if (!r->ok && !r->conn_lost)
        rw_warn("could not send the notification probe: %s", r->error);
}

void rw_sched_notify_send_probe(struct rw_sched *s)
{
    const char *params[1] = {s->probe_channel};

    if (!s->probe_notify_pending || !s->ctl_ready || !s->registered)
        return;
    if (rw_pg_query(s->ctl, "select pg_notify($1, '')", 1, params, probe_notified, s) < 0)
        return;
    s->probe_notify_pending = false;
    start_probe_timer(s);
}

/* Proxied: the LISTEN is in place and the listener idles; the NOTIFY comes
 * from the control connection, another client. A session proxy (Neon's
 * direct endpoint) delivers it; a transaction pooler cannot, as the idle
 * listener is linked to no server session. */
static void probe_listened(rw_pg *pg, const struct rw_pg_result *r, void *arg)
{
    struct rw_sched *s = arg;

    if (!r->ok) {
        if (!r->conn_lost)
            rw_pg_abort(pg, r->error ? r->error : "the notification probe failed");
        return;
    }
    s->probe_notify_pending = true;
    rw_sched_notify_send_probe(s);
}

static void pid_done(rw_pg *pg, const struct rw_pg_result *r, void *arg)
{
    struct rw_sched *s = arg;
    char listen[96];
    const char *params[1] = {s->probe_channel};

    if (!r->ok) {
        if (!r->conn_lost)
            rw_pg_abort(pg, r->error ? r->error : "could not read the backend pid");
        return;
    }
    s->lsn_proxied = rw_pg_pid_pooled(rw_pg_conn(pg), PQgetvalue(r->results[0], 0, 0));
    rw_pg_probe_channel(s->probe_channel, sizeof s->probe_channel);
    snprintf(listen, sizeof listen, "listen %s", s->probe_channel);
    if (s->lsn_proxied) {
        if (rw_pg_query(pg, listen, 0, NULL, probe_listened, s) < 0)
            rw_pg_abort(pg, "could not send the notification probe");
        return;
    }
    /* direct: two transactions of its own; a LISTEN that lasts beyond its
     * transaction is what needs a session */
    if (rw_pg_query(pg, listen, 0, NULL, probe_sent, s) < 0 ||
        rw_pg_query(pg, "select pg_notify($1, '')", 1, params, probe_sent, s) < 0) {
        rw_pg_abort(pg, "could not send the notification probe");
        return;
    }
    start_probe_timer(s);
}

static void on_probe_timeout(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct rw_sched *s = t->data;

    give_up(s, s->lsn_proxied);
}

static void probe_arrived(struct rw_sched *s)
{
    char unlisten[96];
    struct rw_pg_stmt st[3];

    ev_timer_stop(s->loop, &s->probe_timer);
    snprintf(unlisten, sizeof unlisten, "unlisten %s", s->probe_channel);
    s->probe_channel[0] = '\0';
    st[0] = RW_PG_STMT(unlisten, 0, NULL);
    st[1] = RW_PG_STMT("listen " JOBS_CHANNEL, 0, NULL);
    st[2] = RW_PG_STMT("listen " CANCEL_CHANNEL, 0, NULL);
    if (rw_pg_submit(s->lsn, st, 3, listening, s) < 0)
        rw_pg_abort(s->lsn, "could not send LISTEN");
}

/* Once per job, and only once it waits for or holds a connection: a job
 * still in the ready list is found by the next check after it starts. */
static bool cancellable(const struct rw_job *j)
{
    return !j->cancel_requested && j->state != RW_JOB_READY && j->state != RW_JOB_ENDED;
}

/* Calls fn for every job that waits for or holds a connection (WAITING,
 * RUNNING, STOPPING); fn may end the job it is given. */
static void each_dispatched(struct rw_sched *s, void (*fn)(struct rw_job *j, void *arg),
                            void *arg)
{
    for (int st = RW_JOB_WAITING; st < RW_JOB_ENDED; st++)
        for (struct rw_job *j = s->jobs.by_state[st].head, *next; j; j = next) {
            next = j->next;
            fn(j, arg);
        }
}

static void cancel_if_id(struct rw_job *j, void *arg)
{
    const long long *id = arg;

    if (j->id == *id && cancellable(j))
        rw_job_cancel(j, "cancelled by operator");
}

void rw_sched_cancel_job(struct rw_sched *s, long long id)
{
    each_dispatched(s, cancel_if_id, &id);
}

static void lsn_notify(rw_pg *pg, const char *channel, const char *payload, void *arg)
{
    struct rw_sched *s = arg;

    if (s->probe_channel[0] && strcmp(channel, s->probe_channel) == 0) {
        probe_arrived(s);
    } else if (strcmp(channel, JOBS_CHANNEL) == 0) {
        s->more_ready = true;
        rw_sched_maybe_claim(s);
    } else if (strcmp(channel, CANCEL_CHANNEL) == 0) {
        rw_sched_cancel_job(s, atoll(payload));
    }
}

static void lsn_ready(rw_pg *pg, void *arg)
{
    struct rw_sched *s = arg;

    s->lsn_mode = RW_LSN_PROBING;
    if (rw_pg_query(pg, "select pg_backend_pid()", 0, NULL, pid_done, s) < 0)
        rw_pg_abort(pg, "could not send the notification probe");
}

static void lsn_connect(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct rw_sched *s = t->data;

    rw_pg_connect(s->lsn);
}

static void lsn_lost(rw_pg *pg, const char *why, void *arg)
{
    struct rw_sched *s = arg;

    ev_timer_stop(s->loop, &s->probe_timer);
    s->probe_channel[0] = '\0';
    s->probe_notify_pending = false;
    s->lsn_mode = RW_LSN_LOST;
    if (s->stopping || s->stopped)
        return;
    set_poll(s);
    rw_warn("lost the notification connection (%s): %s; polling every %d ms and "
            "reconnecting in %d ms", lsn_source(s), why, s->cfg->poll_interval_pooled_ms,
            rw_sched_retry_later(s, &s->lsn_retry, &s->lsn_backoff_ms));
}

/* ---- whether this worker needs notifications (020) ------------------------ */

/* A claim this full, or fuller, makes the worker busy; a full claim of a
 * few jobs (one slot freed) changes nothing. */
#define BUSY_MIN_ROWS 8

static void wants_set(rw_pg *pg, const struct rw_pg_result *r, void *arg)
{
    struct rw_sched *s = arg;

    if (!r->ok) {
        s->wants_notify = -1;          /* the next claim says it again */
        if (!r->conn_lost)
            rw_warn("could not record whether this worker waits for notifications: %s",
                    r->error);
    }
}

static void barrier_done(rw_pg *pg, const struct rw_pg_result *r, void *arg);

static void send_barrier(struct rw_sched *s)
{
    if (s->barrier_inflight || !s->ctl_ready || !s->registered || s->stopping)
        return;
    if (rw_queue_notify_barrier(s->ctl, barrier_done, s) == 0)
        s->barrier_inflight = true;
}

static void on_barrier_timer(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct rw_sched *s = t->data;

    if (s->barrier_pending)
        send_barrier(s);
}

/* Passed: every transaction that skipped its notification while this worker
 * was busy has ended, so one more claim sees what they queued. Not yet:
 * try again, every 200 ms at most, for as long as one is open (it may be a
 * group of this worker's own jobs that chained a job, which ends with no
 * notification and no poll of its own). */
static void barrier_done(rw_pg *pg, const struct rw_pg_result *r, void *arg)
{
    struct rw_sched *s = arg;

    s->barrier_inflight = false;
    if (!s->barrier_pending || s->stopping)
        return;                        /* busy again */
    if (rw_queue_barrier_passed(r)) {
        s->barrier_pending = false;
        s->more_ready = true;
        rw_sched_maybe_claim(s);
        return;
    }
    if (!r->ok) {
        s->barrier_pending = false;
        if (!r->conn_lost)
            rw_warn("could not wait for transactions that queued jobs without notifying: %s; "
                    "the next poll finds their jobs", r->error);
        return;
    }
    ev_timer_set(&s->barrier_timer, s->barrier_delay, 0.);
    ev_timer_start(s->loop, &s->barrier_timer);
    if (s->barrier_delay < 0.2)
        s->barrier_delay *= 2;
}

static void wait_for_work(struct rw_sched *s)
{
    if (rw_queue_set_wants_notify(s->ctl, s->id, true, wants_set, s) < 0)
        return;
    s->wants_notify = 1;
    s->barrier_pending = true;
    s->barrier_delay = 0.005;
    send_barrier(s);
}

void rw_sched_wake_claimed(struct rw_sched *s, int rows, int asked)
{
    if (rows >= asked && rows >= BUSY_MIN_ROWS) {
        s->barrier_pending = false;
        ev_timer_stop(s->loop, &s->barrier_timer);
        if (s->wants_notify != 0 &&
            rw_queue_set_wants_notify(s->ctl, s->id, false, wants_set, s) == 0)
            s->wants_notify = 0;
    } else if (rows < asked && s->wants_notify != 1) {
        wait_for_work(s);
    }
}

void rw_sched_wake_registered(struct rw_sched *s)
{
    ev_timer_stop(s->loop, &s->barrier_timer);
    wait_for_work(s);
}

/* ---- cancels without notifications --------------------------------------- */

static void cancels_done(rw_pg *pg, const struct rw_pg_result *r, void *arg)
{
    struct rw_sched *s = arg;

    s->cancel_check_inflight = false;
    if (!r->ok) {
        if (!r->conn_lost)
            rw_warn("could not look for cancelled jobs: %s", r->error);
        return;
    }
    for (int i = 0; i < rw_queue_cancels_requested_count(r); i++)
        rw_sched_cancel_job(s, rw_queue_cancels_requested_id(r, i));
}

void rw_sched_check_cancels(struct rw_sched *s)
{
    char *ids;
    size_t cap = 3, len = 0;
    int n = 0;

    if (s->cancel_check_inflight || !s->ctl_ready || !s->registered)
        return;
    for (int st = RW_JOB_WAITING; st < RW_JOB_ENDED; st++)
        for (struct rw_job *j = s->jobs.by_state[st].head; j; j = j->next)
            if (cancellable(j))
                cap += 21;
    if (cap == 3 || !(ids = malloc(cap)))
        return;
    ids[len++] = '{';
    for (int st = RW_JOB_WAITING; st < RW_JOB_ENDED; st++)
        for (struct rw_job *j = s->jobs.by_state[st].head; j; j = j->next)
            if (cancellable(j))
                len += (size_t)snprintf(ids + len, cap - len, "%s%lld", n++ ? "," : "",
                                        j->id);
    ids[len++] = '}';
    ids[len] = '\0';
    if (rw_queue_cancels_requested(s->ctl, s->id, ids, cancels_done, s) == 0)
        s->cancel_check_inflight = true;
    free(ids);
}

/* ---- the listener's life --------------------------------------------------- */

int rw_sched_notify_init(struct rw_sched *s)
{
    struct rw_pg_callbacks cb = {lsn_ready, lsn_lost, lsn_notify, s};
    const char *url = s->cfg->direct_url ? s->cfg->direct_url : s->cfg->database_url;

    s->lsn = rw_pg_new(s->loop, url, &cb, s->cfg->connect_timeout_s);
    if (!s->lsn)
        return -1;
    rw_pg_set_app_name(s->lsn, "rlsworker listener");
    s->lsn_mode = RW_LSN_PROBING;
    ev_init(&s->lsn_retry, lsn_connect);
    s->lsn_retry.data = s;
    ev_init(&s->probe_timer, on_probe_timeout);
    s->probe_timer.data = s;
    ev_init(&s->reprobe_timer, on_reprobe);
    s->reprobe_timer.data = s;
    ev_init(&s->barrier_timer, on_barrier_timer);
    s->barrier_timer.data = s;
    s->wants_notify = -1;
    return 0;
}

void rw_sched_notify_start(struct rw_sched *s)
{
    rw_pg_connect(s->lsn);
}
