/* What runs when: the control connection (admin role) claims ready jobs in
 * batches, wakes on LISTEN/NOTIFY with a polling fallback, sends batched
 * outcomes, heartbeats, and sweeps jobs of lost workers. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scheduler/cron/cron_runner.h"
#include "worker/cli/run_hooks.h"
#include "scheduler/scheduler_int.h"
#include "worker/base/log.h"
#include "worker/worker.h"

struct rw_outcome {
    enum rw_outcome_kind kind;
    long long id;
    char *error;
    long long delay_ms;
    bool dead;
};

static void ctl_ready(rw_pg *pg, void *arg);
static void ctl_lost(rw_pg *pg, const char *why, void *arg);
static void ctl_notify(rw_pg *pg, const char *channel, const char *payload, void *arg);

/* ---- outcomes ----------------------------------------------------------- */

void rw_sched_report(struct rw_worker *w, enum rw_outcome_kind kind, long long id,
                     const char *error, long long delay_ms, bool dead)
{
    if (w->noutcomes == w->outcomes_cap) {
        int cap = w->outcomes_cap ? w->outcomes_cap * 2 : 256;
        struct rw_outcome *o = realloc(w->outcomes, (size_t)cap * sizeof *o);
        if (!o) {
            rw_error("out of memory: could not record the outcome of job %lld; "
                     "lock recovery will return it to the queue", id);
            return;
        }
        w->outcomes = o;
        w->outcomes_cap = cap;
    }
    w->outcomes[w->noutcomes++] = (struct rw_outcome){
        kind, id, error ? strdup(error) : NULL, delay_ms, dead};
}

void rw_sched_free_outcomes(struct rw_worker *w)
{
    for (int i = 0; i < w->noutcomes; i++)
        free(w->outcomes[i].error);
    free(w->outcomes);
    w->outcomes = NULL;
    w->noutcomes = w->outcomes_cap = 0;
}

struct flush_op {
    struct rw_worker *w;
    struct rw_outcome *items;
    int n;
    char *params[6];
};

static void flush_op_free(struct flush_op *f, bool free_items)
{
    for (int i = 0; free_items && i < f->n; i++)
        free(f->items[i].error);
    free(f->items);
    for (int i = 0; i < 6; i++)
        free(f->params[i]);
    free(f);
}

static void flush_done(rw_pg *pg, const struct rw_pg_result *r, void *arg)
{
    struct flush_op *f = arg;
    struct rw_worker *w = f->w;

    w->flush_inflight--;
    if (!r->ok && r->conn_lost) {
        /* put them back; they are sent again after reconnecting */
        for (int i = 0; i < f->n; i++) {
            rw_sched_report(w, f->items[i].kind, f->items[i].id, f->items[i].error,
                            f->items[i].delay_ms, f->items[i].dead);
        }
    } else if (!r->ok) {
        rw_error("could not record job outcomes: %s; lock recovery will return "
                 "those jobs to the queue", r->error);
    }
    flush_op_free(f, true);
    rw_sched_check_done(w);
}

/* ids as a Postgres array literal; rows for fail as JSON */
static char *ids_literal(const struct rw_outcome *o, int n, enum rw_outcome_kind kind)
{
    size_t cap = 2 + (size_t)n * 21, len = 0;
    char *s = malloc(cap + 1);
    bool any = false;

    if (!s)
        return NULL;
    s[len++] = '{';
    for (int i = 0; i < n; i++) {
        if (o[i].kind != kind)
            continue;
        len += (size_t)snprintf(s + len, cap - len, "%s%lld", any ? "," : "", o[i].id);
        any = true;
    }
    s[len++] = '}';
    s[len] = '\0';
    if (!any) {
        free(s);
        return NULL;
    }
    return s;
}

static char *fail_rows(const struct rw_outcome *o, int n)
{
    json_t *arr = json_array();
    char *s;

    for (int i = 0; i < n; i++) {
        if (o[i].kind != RW_OUT_FAIL)
            continue;
        json_array_append_new(arr, json_pack("{sI ss sI sb}", "id", (json_int_t)o[i].id,
                                             "err", o[i].error ? o[i].error : "failed",
                                             "delay", (json_int_t)o[i].delay_ms,
                                             "dead", o[i].dead));
    }
    s = json_array_size(arr) ? json_dumps(arr, JSON_COMPACT) : NULL;
    json_decref(arr);
    return s;
}

static void flush_outcomes(struct rw_worker *w, bool force)
{
    struct rw_pg_stmt st[3];
    struct flush_op *f;
    int n = 0;

    if (!w->noutcomes || !w->ctl_ready || (w->flush_inflight >= 2 && !force))
        return;
    f = calloc(1, sizeof *f);
    if (!f)
        return;
    f->w = w;
    f->items = w->outcomes;
    f->n = w->noutcomes;
    w->outcomes = NULL;
    w->noutcomes = w->outcomes_cap = 0;
    f->params[0] = strdup(w->id);
    f->params[1] = ids_literal(f->items, f->n, RW_OUT_COMPLETE);
    f->params[2] = strdup(w->id);
    f->params[3] = fail_rows(f->items, f->n);
    f->params[4] = strdup(w->id);
    f->params[5] = ids_literal(f->items, f->n, RW_OUT_RELEASE);
    if (f->params[1])
        st[n++] = (struct rw_pg_stmt){"select rlsworker.complete_jobs($1, $2::bigint[])", 2,
                                      (const char *const *)&f->params[0]};
    if (f->params[3])
        st[n++] = (struct rw_pg_stmt){
            "select rlsworker.fail_jobs($1, array_agg(id), array_agg(err), array_agg(delay), "
            "array_agg(dead)) from jsonb_to_recordset($2::jsonb) "
            "as t(id bigint, err text, delay bigint, dead boolean)", 2,
            (const char *const *)&f->params[2]};
    if (f->params[5])
        st[n++] = (struct rw_pg_stmt){"select rlsworker.release_jobs($1, $2::bigint[])", 2,
                                      (const char *const *)&f->params[4]};
    if (n == 0 || rw_pg_submit(w->ctl, st, n, flush_done, f) < 0) {
        for (int i = 0; i < f->n; i++)
            rw_sched_report(w, f->items[i].kind, f->items[i].id, f->items[i].error,
                            f->items[i].delay_ms, f->items[i].dead);
        flush_op_free(f, true);
        return;
    }
    w->flush_inflight++;
}

static void on_prepare(struct ev_loop *loop, ev_prepare *p, int revents)
{
    struct rw_worker *w = p->data;

    flush_outcomes(w, false);
    rw_sched_check_done(w);
}

/* ---- claiming ------------------------------------------------------------ */

static char *dup_or_null(const PGresult *res, int row, int col)
{
    return PQgetisnull(res, row, col) ? NULL : strdup(PQgetvalue(res, row, col));
}

static struct rw_job *job_from_row(struct rw_worker *w, const PGresult *res, int row)
{
    struct rw_job *job = calloc(1, sizeof *job);
    json_error_t jerr;

    if (!job)
        return NULL;
    job->w = w;
    job->id = atoll(PQgetvalue(res, row, 0));
    job->task = strdup(PQgetvalue(res, row, 1));
    job->payload = json_loads(PQgetvalue(res, row, 2), 0, &jerr);
    job->claims = dup_or_null(res, row, 3);
    job->subject = dup_or_null(res, row, 4);
    job->run_as = dup_or_null(res, row, 5);
    job->attempts = atoi(PQgetvalue(res, row, 6));
    job->max_attempts = atoi(PQgetvalue(res, row, 7));
    snprintf(job->lock_token, sizeof job->lock_token, "%s", PQgetvalue(res, row, 8));
    job->claims_verified_at = atoll(PQgetvalue(res, row, 9));
    job->state = RW_JOB_CLAIMED;
    if (!job->payload)
        job->payload = json_object();
    job->next = w->jobs;
    if (w->jobs)
        w->jobs->prev = job;
    w->jobs = job;
    w->inflight++;
    w->stats.claimed++;
    return job;
}

/* Starts prefetched jobs while there are free slots. Jobs that end
 * synchronously (built-ins) come back here through rw_sched_job_ended; the
 * flag keeps that from recursing, the loop picks the next one up. */
static void pump(struct rw_worker *w)
{
    if (w->pumping)
        return;
    w->pumping = true;
    while (w->ready_head && w->running < w->cfg.concurrency && !w->stopping) {
        struct rw_job *job = w->ready_head;
        w->ready_head = job->ready_next;
        if (!w->ready_head)
            w->ready_tail = NULL;
        job->ready_next = NULL;
        rw_job_dispatch(job);
    }
    w->pumping = false;
}

/* Stopping: prefetched jobs go back to the queue at once, uncounted. */
static void release_ready(struct rw_worker *w)
{
    struct rw_job *job = w->ready_head;

    w->ready_head = w->ready_tail = NULL;
    while (job) {
        struct rw_job *next = job->ready_next;
        job->ready_next = NULL;
        rw_job_release_if_waiting(job);
        job = next;
    }
}

static void claim_done(rw_pg *pg, const struct rw_pg_result *r, void *arg)
{
    struct rw_worker *w = arg;
    PGresult *res = r->nresults ? r->results[0] : NULL;
    int rows, asked = w->claim_asked;

    w->claim_inflight = false;
    if (!r->ok) {
        if (!r->conn_lost)
            rw_error("could not claim jobs: %s", r->error);
        return;
    }
    rows = PQntuples(res);
    w->more_ready = rows >= asked;
    w->drained = rows == 0;
    for (int i = 0; i < rows; i++) {
        struct rw_job *job = job_from_row(w, res, i);
        if (!job)
            continue;
        if (w->ready_tail)
            w->ready_tail->ready_next = job;
        else
            w->ready_head = job;
        w->ready_tail = job;
    }
    if (w->stopping) {
        release_ready(w);   /* a claim that was in flight when the stop began */
        return;
    }
    pump(w);
    if (w->claim_again || w->more_ready) {
        w->claim_again = false;
        rw_sched_maybe_claim(w);
    }
    rw_sched_check_done(w);
}

void rw_sched_maybe_claim(struct rw_worker *w)
{
    char n[16];
    const char *params[2] = {w->id, n};
    int free_slots = w->cfg.concurrency + w->cfg.prefetch - w->inflight;

    if (w->stopping || !w->ctl_ready || !w->registered)
        return;
    if (w->claim_inflight) {
        w->claim_again = true;
        return;
    }
    if (free_slots <= 0)
        return;
    w->claim_asked = free_slots < w->cfg.claim_batch ? free_slots : w->cfg.claim_batch;
    snprintf(n, sizeof n, "%d", w->claim_asked);
    if (rw_pg_query(w->ctl,
                    "select id, task, payload::text, claims::text, subject, run_as,"
                    " attempts, coalesce(max_attempts, 0), lock_token::text,"
                    " coalesce(extract(epoch from claims_verified_at)::bigint, 0)"
                    " from rlsworker.claim_jobs($1, $2::int)",
                    2, params, claim_done, w) == 0)
        w->claim_inflight = true;
}

void rw_sched_job_ended(struct rw_worker *w)
{
    if (w->pumping)
        return;         /* the pump's caller claims once the batch is started */
    pump(w);
    if (w->more_ready || w->claim_again)
        rw_sched_maybe_claim(w);
    if (w->stopping && w->inflight == 0)
        rw_sched_finish(w);
}

static void on_poll(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct rw_worker *w = t->data;

    w->more_ready = true;
    rw_sched_maybe_claim(w);
}

/* ---- --once ---------------------------------------------------------------- */

void rw_sched_check_done(struct rw_worker *w)
{
    if (!w->once || w->stopping || w->inflight > 0 || w->claim_inflight ||
        w->noutcomes > 0 || w->flush_inflight > 0)
        return;
    if (!w->drained) {         /* one more claim after everything settled */
        w->more_ready = true;
        rw_sched_maybe_claim(w);
        return;
    }
    rw_info("--once: no ready jobs left (%lld completed, %lld failed, %lld dead)",
            w->stats.completed, w->stats.failed, w->stats.dead);
    rw_sched_stop(w, false);
}

/* ---- control connection ------------------------------------------------- */

static void ctl_connect(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct rw_worker *w = t->data;

    rw_pg_connect(w->ctl);
}

static void registered(rw_pg *pg, const struct rw_pg_result *r, void *arg)
{
    struct rw_worker *w = arg;

    if (!r->ok) {
        if (!r->conn_lost) {
            /* e.g. the schema was dropped: retry through the reconnect backoff */
            rw_error("could not register this worker: %s; retrying (run \"rlsworker "
                     "migrate\" if the schema is missing)", r->error);
            rw_pg_abort(w->ctl, "registration failed");
        }
        return;
    }
    w->registered = true;
    w->ctl_backoff_ms = 0;
    rw_sched_recovery_start(w);
    if (w->cron && !w->stopping)
        rw_cron_runner_start(w->cron);
    w->more_ready = true;
    rw_sched_maybe_claim(w);
}

/* After (re)connecting: LISTEN, register, and give back jobs this worker
 * holds in the database but does not know (a claim whose answer was lost). */
static void ctl_ready(rw_pg *pg, void *arg)
{
    struct rw_worker *w = arg;
    char pid[16], *known = NULL;
    size_t cap = 2 + (size_t)w->inflight * 21, len = 0;
    struct rw_pg_stmt st[4];

    w->ctl_ready = true;
    rw_info("connected to the queue database as worker %s", w->id);
    snprintf(pid, sizeof pid, "%d", (int)getpid());
    known = malloc(cap + 1);
    if (!known)
        return;
    known[len++] = '{';
    for (struct rw_job *j = w->jobs; j; j = j->next)
        len += (size_t)snprintf(known + len, cap - len, "%s%lld", len > 1 ? "," : "", j->id);
    known[len++] = '}';
    known[len] = '\0';
    const char *reg[3] = {w->id, w->host, pid};
    const char *rel[2] = {w->id, known};
    st[0] = (struct rw_pg_stmt){"listen rlsworker_jobs", 0, NULL};
    st[1] = (struct rw_pg_stmt){"listen rlsworker_cancel", 0, NULL};
    st[2] = (struct rw_pg_stmt){"select rlsworker.register_worker($1, $2, $3::int)", 3, reg};
    st[3] = (struct rw_pg_stmt){
        "select rlsworker.release_jobs($1, array(select id from rlsworker.jobs"
        " where locked_by = $1 and state = 'running' and id <> all($2::bigint[])))", 2, rel};
    if (rw_pg_submit(pg, st, 4, registered, w) < 0)
        rw_pg_abort(pg, "could not send the registration");
    free(known);
}

static void ctl_lost(rw_pg *pg, const char *why, void *arg)
{
    struct rw_worker *w = arg;
    int max_ms = w->cfg.reconnect_max_s * 1000;

    w->ctl_ready = false;
    w->registered = false;
    w->claim_inflight = false;
    rw_sched_recovery_stop(w);
    if (w->stopped)
        return;
    if (w->stopping) {
        rw_warn("lost the queue database while stopping: %s", why);
        rw_sched_finish(w);
        return;
    }
    w->ctl_backoff_ms = w->ctl_backoff_ms ? w->ctl_backoff_ms * 2 : 100;
    if (w->ctl_backoff_ms > max_ms)
        w->ctl_backoff_ms = max_ms;
    rw_warn("lost the queue database: %s; reconnecting in %d ms", why, w->ctl_backoff_ms);
    ev_timer_set(&w->ctl_retry, w->ctl_backoff_ms / 1000.0, 0.);
    ev_timer_start(w->loop, &w->ctl_retry);
}

static void ctl_notify(rw_pg *pg, const char *channel, const char *payload, void *arg)
{
    struct rw_worker *w = arg;

    if (strcmp(channel, "rlsworker_jobs") == 0) {
        w->more_ready = true;
        rw_sched_maybe_claim(w);
    } else if (strcmp(channel, "rlsworker_cancel") == 0) {
        long long id = atoll(payload);
        for (struct rw_job *j = w->jobs; j; j = j->next) {
            if (j->id == id) {
                rw_job_cancel(j, "cancelled by operator");
                break;
            }
        }
    }
}

int rw_sched_start(struct rw_worker *w)
{
    struct rw_pg_callbacks cb = {ctl_ready, ctl_lost, ctl_notify, w};

    w->ctl = rw_pg_new(w->loop, w->cfg.database_url, &cb, w->cfg.connect_timeout_s);
    if (!w->ctl)
        return -1;
    rw_pg_set_app_name(w->ctl, "rlsworker control");
    ev_init(&w->ctl_retry, ctl_connect);
    w->ctl_retry.data = w;
    ev_timer_init(&w->poll_timer, on_poll, w->cfg.poll_interval_ms / 1000.0,
                  w->cfg.poll_interval_ms / 1000.0);
    w->poll_timer.data = w;
    ev_timer_start(w->loop, &w->poll_timer);
    ev_prepare_init(&w->flush_prepare, on_prepare);
    w->flush_prepare.data = w;
    ev_prepare_start(w->loop, &w->flush_prepare);
    rw_sched_recovery_init(w);
    rw_pg_connect(w->ctl);
    return 0;
}

/* ---- stopping ------------------------------------------------------------- */

static void deregistered(rw_pg *pg, const struct rw_pg_result *r, void *arg)
{
    struct rw_worker *w = arg;

    if (!r->ok && !r->conn_lost)
        rw_warn("could not deregister: %s", r->error);
    w->stopped = true;
    ev_break(w->loop, EVBREAK_ALL);
}

/* Everything has ended: send what is left, deregister, leave the loop. */
void rw_sched_finish(struct rw_worker *w)
{
    const char *params[1] = {w->id};

    if (w->stopped || w->finishing)
        return;
    w->finishing = true;
    ev_timer_stop(w->loop, &w->stop_timer);
    if (w->ctl_ready) {
        flush_outcomes(w, true);
        if (rw_pg_query(w->ctl, "select rlsworker.deregister_worker($1)", 1, params,
                        deregistered, w) == 0)
            return;
    }
    if (w->noutcomes)
        rw_warn("%d job outcomes could not be recorded; lock recovery returns those "
                "jobs to the queue after lock_timeout", w->noutcomes);
    w->stopped = true;
    ev_break(w->loop, EVBREAK_ALL);
}

static void on_stop_timeout(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct rw_worker *w = t->data;

    if (w->inflight > 0) {
        rw_warn("shutdown_timeout of %d s reached: cancelling %d running jobs and "
                "putting them back in the queue", w->cfg.shutdown_timeout_s, w->inflight);
        for (struct rw_job *j = w->jobs, *next; j; j = next) {
            next = j->next;
            rw_job_abandon(j);
        }
        /* a job whose cancel is ignored is dropped with its connection */
        ev_timer_set(t, 10., 0.);
        ev_timer_start(loop, t);
        w->stop_forced++;
        if (w->stop_forced > 1)
            rw_sched_finish(w);
        return;
    }
    rw_sched_finish(w);
}

/* A second signal: every running job is dropped with its connection (its
 * transaction aborts on the server, and complete_job could no longer
 * succeed) and put back uncounted; then deregister and leave. */
static void stop_now(struct rw_worker *w)
{
    for (struct rw_job *j = w->jobs; j; j = j->next)
        j->abandoned = true;
    for (int i = 0; i < w->npools; i++)
        rw_pool_disconnect_all(w->pools[i]);
    rw_sched_finish(w);
}

void rw_sched_stop(struct rw_worker *w, bool immediate)
{
    if (!w->stopping) {
        w->stopping = true;
        ev_timer_stop(w->loop, &w->poll_timer);
        rw_run_hooks_quiesce(w);
        /* jobs that have not started go back at once, uncounted */
        release_ready(w);
        for (struct rw_job *j = w->jobs, *next; j; j = next) {
            next = j->next;
            rw_job_release_if_waiting(j);
        }
        ev_init(&w->stop_timer, on_stop_timeout);
        w->stop_timer.data = w;
        ev_timer_set(&w->stop_timer, w->cfg.shutdown_timeout_s, 0.);
        ev_timer_start(w->loop, &w->stop_timer);
    }
    if (immediate) {
        stop_now(w);
        return;
    }
    if (w->inflight == 0)
        rw_sched_finish(w);
}
