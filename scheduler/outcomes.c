/* Outcome batching: the executor's reports of ended jobs are queued and
 * sent to the control connection once per loop turn (an ev_prepare
 * watcher, like redis's beforeSleep), as complete_jobs / fail_jobs /
 * release_jobs of deploy/sql/ (rw_queue_record_outcomes, worker/pg/queue.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scheduler/scheduler_int.h"
#include "worker/base/log.h"
#include "worker/pg/queue.h"

struct rw_outcome {
    enum rw_outcome_kind kind;
    long long id;
    char *error;
    long long delay_ms;
    bool dead;
};

/* ---- outcomes ----------------------------------------------------------- */

void rw_sched_report(struct rw_sched *s, enum rw_outcome_kind kind, long long id,
                     const char *error, long long delay_ms, bool dead)
{
    if (s->noutcomes == s->outcomes_cap) {
        int cap = s->outcomes_cap ? s->outcomes_cap * 2 : 256;
        struct rw_outcome *o = realloc(s->outcomes, (size_t)cap * sizeof *o);
        if (!o) {
            rw_error("out of memory: could not record the outcome of job %lld; "
                     "lock recovery will return it to the queue", id);
            return;
        }
        s->outcomes = o;
        s->outcomes_cap = cap;
    }
    s->outcomes[s->noutcomes++] = (struct rw_outcome){
        kind, id, error ? strdup(error) : NULL, delay_ms, dead};
}

void rw_sched_free_outcomes(struct rw_sched *s)
{
    for (int i = 0; i < s->noutcomes; i++)
        free(s->outcomes[i].error);
    free(s->outcomes);
    s->outcomes = NULL;
    s->noutcomes = s->outcomes_cap = 0;
}

struct flush_op {
    struct rw_sched *s;
    struct rw_outcome *items;
    int n;
    char *lists[3];     /* owned: completed ids, failed rows, released ids, or NULL */
    bool on_out;        /* sent on the outcomes connection */
};

/* What the op sends (rw_queue_record_outcomes) and is answered for. */
static struct rw_queue_outcomes sent_of(const struct flush_op *f)
{
    return (struct rw_queue_outcomes){f->s->id, f->lists[0], f->lists[1], f->lists[2]};
}

static void flush_op_free(struct flush_op *f, bool free_items)
{
    for (int i = 0; free_items && i < f->n; i++)
        free(f->items[i].error);
    free(f->items);
    for (int i = 0; i < 3; i++)
        free(f->lists[i]);
    free(f);
}

/* A batch recorded fewer jobs than it named: the others were given back to
 * the queue by lock recovery (this worker was taken for lost) and may run
 * again, or already did elsewhere. */
static void warn_unrecorded(const struct flush_op *f, const struct rw_pg_result *r)
{
    static const char *const what[3] = {"completed", "failed", "released"};
    struct rw_queue_outcomes sent = sent_of(f);
    int recorded[3], named[3] = {0, 0, 0};

    for (int i = 0; i < f->n; i++)
        named[f->items[i].kind]++;
    rw_queue_outcomes_recorded(r, &sent, recorded);
    for (int k = 0; k < 3; k++)
        if (recorded[k] >= 0 && recorded[k] < named[k])
            rw_warn("recorded %d of the %d jobs this worker %s: the others were no longer "
                    "held by it (lock recovery returned them to the queue after this "
                    "worker's heartbeat or session was lost), so they may run again; "
                    "check lock_timeout and the connection to the database",
                    recorded[k], named[k], what[k]);
}

static void flush_done(rw_pg *pg, const struct rw_pg_result *r, void *arg)
{
    struct flush_op *f = arg;
    struct rw_sched *s = f->s;

    s->flush_inflight--;
    if (f->on_out)
        s->out_inflight--;
    if (!r->ok && r->conn_lost) {
        /* put them back; they are sent again after reconnecting */
        for (int i = 0; i < f->n; i++) {
            rw_sched_report(s, f->items[i].kind, f->items[i].id, f->items[i].error,
                            f->items[i].delay_ms, f->items[i].dead);
        }
    } else if (!r->ok) {
        rw_error("could not record job outcomes: %s; lock recovery will return "
                 "those jobs to the queue", r->error);
    } else {
        warn_unrecorded(f, r);
    }
    flush_op_free(f, true);
    if (s->finish_pending && s->out_inflight == 0) {
        s->finish_pending = false;
        rw_sched_finish(s);
        return;
    }
    rw_sched_check_done(s);
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

void rw_sched_flush_outcomes(struct rw_sched *s, bool force)
{
    struct rw_queue_outcomes batch;
    struct flush_op *f;

    if (!s->noutcomes || !s->ctl_ready || (s->flush_inflight >= 2 && !force))
        return;
    f = calloc(1, sizeof *f);
    if (!f)
        return;
    f->s = s;
    f->items = s->outcomes;
    f->n = s->noutcomes;
    s->outcomes = NULL;
    s->noutcomes = s->outcomes_cap = 0;
    f->lists[0] = ids_literal(f->items, f->n, RW_OUT_COMPLETE);
    f->lists[1] = fail_rows(f->items, f->n);
    f->lists[2] = ids_literal(f->items, f->n, RW_OUT_RELEASE);
    batch = sent_of(f);
    /* on the outcomes connection while it is up, so the server records this
     * batch while the control connection claims the next; at the end on the
     * control connection, in front of the deregistration */
    f->on_out = s->out_ready && !s->finishing;
    if (rw_queue_record_outcomes(f->on_out ? s->out : s->ctl, &batch, flush_done, f) < 0) {
        for (int i = 0; i < f->n; i++)
            rw_sched_report(s, f->items[i].kind, f->items[i].id, f->items[i].error,
                            f->items[i].delay_ms, f->items[i].dead);
        flush_op_free(f, true);
        return;
    }
    s->flush_inflight++;
    if (f->on_out)
        s->out_inflight++;
}

void rw_sched_on_prepare(struct ev_loop *loop, ev_prepare *p, int revents)
{
    struct rw_sched *s = p->data;

    rw_sched_flush_outcomes(s, false);
    rw_sched_check_done(s);
}

