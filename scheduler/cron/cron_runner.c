/* Cron at run time; the policy is in cron_runner.h and docs/cron.md. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scheduler/cron/cron_runner.h"
#include "worker/base/log.h"
#include "worker/pg/queue.h"

enum runner_state { RS_STOPPED, RS_LOADING, RS_RUNNING };

/* Progress of one crontab entry (parallel to tab->entries). */
struct slot {
    int64_t cursor;          /* newest tick handled (fired or skipped) */
    int64_t missed_before;   /* ticks <= this are missed (worker was down) */
    int64_t next;            /* next tick after cursor, valid when has_next */
    bool has_next;
    bool never;              /* schedule has no further tick */
};

struct rw_cron_runner {
    struct ev_loop *loop;
    rw_pg *pg;                       /* borrowed */
    struct rw_crontab *tab;          /* owned */
    struct slot *slots;              /* owned, tab->n of them */
    struct rw_cron_runner_opts o;
    ev_timer timer;
    enum runner_state state;
    bool loaded;                     /* last ticks read from the database */
    bool want_run;                   /* start() was called */
    int inflight;                    /* our ops the admin connection still owes */
    bool dying;                      /* freed by the caller; free at inflight 0 */
};

/* One cron_fire call in flight. */
struct fire_op {
    struct rw_cron_runner *r;
    char id[RW_CRON_NAME_MAX + 1];
    int64_t tick;
    bool backfilled;
};

static void arm(struct rw_cron_runner *r, double delay);
static void run_due(struct rw_cron_runner *r);

void rw_cron_runner_opts_default(struct rw_cron_runner_opts *o)
{
    o->grace_s = 300;
    o->max_sleep_s = 30;
    o->retry_s = 1;
    o->max_fires_per_wake = 1000;
}

static int64_t wall_now(void)
{
    return (int64_t)floor(ev_time());
}

static void op_done(struct rw_cron_runner *r)
{
    if (--r->inflight == 0 && r->dying) {
        rw_crontab_free(&r->tab);
        free(r->slots);
        free(r);
    }
}

static struct slot *slot_by_id(struct rw_cron_runner *r, const char *id, int *idx)
{
    for (int i = 0; i < r->tab->n; i++) {
        if (strcmp(r->tab->entries[i].id, id) == 0) {
            *idx = i;
            return &r->slots[i];
        }
    }
    return NULL;
}

static void timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct rw_cron_runner *r = w->data;
    if (r->state == RS_STOPPED && r->want_run)
        rw_cron_runner_start(r);     /* load was not possible yet: try again */
    else if (r->state == RS_RUNNING)
        run_due(r);
}

struct rw_cron_runner *rw_cron_runner_new(struct ev_loop *loop, rw_pg *admin,
                                          struct rw_crontab *tab,
                                          const struct rw_cron_runner_opts *opts)
{
    struct rw_cron_runner *r = calloc(1, sizeof *r);
    if (!r || !(r->slots = calloc((size_t)(tab->n > 0 ? tab->n : 1), sizeof *r->slots))) {
        free(r);
        rw_crontab_free(&tab);
        return NULL;
    }
    r->loop = loop;
    r->pg = admin;
    r->tab = tab;
    if (opts)
        r->o = *opts;
    else
        rw_cron_runner_opts_default(&r->o);
    ev_timer_init(&r->timer, timer_cb, 0, 0);
    r->timer.data = r;
    return r;
}

/* Where an entry starts: from its last fired tick when fill= asks for a
 * backfill, else from now. last < 0: the id never fired. */
static void slot_init(struct slot *s, const struct rw_cron_entry *e, int64_t last,
                      int64_t now)
{
    memset(s, 0, sizeof *s);
    s->missed_before = now;
    s->cursor = now;
    if (last >= 0 && e->fill_s > 0) {
        int64_t oldest = now - e->fill_s - 1;
        s->cursor = last > oldest ? last : oldest;
        if (s->cursor > now)
            s->cursor = now;
    }
}

static void on_loaded(rw_pg *pg, const struct rw_pg_result *res, void *arg)
{
    struct rw_cron_runner *r = arg;
    if (r->dying || r->state != RS_LOADING) {
        op_done(r);
        return;
    }
    if (!res->ok || res->nresults < 1 || !res->results[0]) {
        rw_warn("could not read cron state: %s; retrying",
                res->error ? res->error : "no result");
        r->state = RS_STOPPED;
        arm(r, r->o.retry_s);
        op_done(r);
        return;
    }
    int64_t now = wall_now();
    for (int i = 0; i < r->tab->n; i++)
        slot_init(&r->slots[i], &r->tab->entries[i],
                  rw_queue_cron_last_tick(res, r->tab->entries[i].id), now);
    r->loaded = true;
    r->state = RS_RUNNING;
    rw_info("cron: %d job%s scheduled", r->tab->n, r->tab->n == 1 ? "" : "s");
    op_done(r);
    run_due(r);
}

void rw_cron_runner_start(struct rw_cron_runner *r)
{
    r->want_run = true;
    if (r->state == RS_RUNNING) {
        run_due(r);
        return;
    }
    if (r->state == RS_LOADING)
        return;
    if (!rw_pg_ready(r->pg) ||
        rw_queue_cron_last_ticks(r->pg, on_loaded, r) < 0) {
        arm(r, r->o.retry_s);
        return;
    }
    r->inflight++;
    r->state = RS_LOADING;
}

static void on_fired(rw_pg *pg, const struct rw_pg_result *res, void *arg)
{
    struct fire_op *op = arg;
    struct rw_cron_runner *r = op->r;
    char ts[32];
    const char *job = res->ok ? rw_queue_cron_fire_job(res) : NULL;
    rw_cron_fmt_time(op->tick, ts, sizeof ts);
    if (job) {
        if (op->backfilled)
            rw_info("cron id=%s tick=%s: backfilled, queued job %s", op->id, ts, job);
        else
            rw_debug("cron id=%s tick=%s: queued job %s", op->id, ts, job);
    } else if (res->ok) {
        rw_debug("cron id=%s tick=%s: already fired by another worker", op->id, ts);
    } else if (res->conn_lost && !r->dying) {
        int idx;
        struct slot *s = slot_by_id(r, op->id, &idx);
        if (s && s->cursor >= op->tick) {
            s->cursor = op->tick - 1;      /* due again once reconnected */
            s->has_next = false;
        }
        rw_warn("could not fire cron id=%s tick=%s: connection lost; will retry", op->id, ts);
    } else if (!res->ok) {
        rw_error("could not fire cron id=%s tick=%s: %s", op->id, ts,
                 res->error ? res->error : "unknown error");
    }
    free(op);
    op_done(r);
}

static int fire(struct rw_cron_runner *r, const struct rw_cron_entry *e, int64_t tick,
                bool backfilled)
{
    char ts[32];
    struct fire_op *op = calloc(1, sizeof *op);
    if (!op)
        return -1;
    rw_cron_fmt_time(tick, ts, sizeof ts);
    /* a user task's line gets exactly the claims {"sub": subject} (docs/cron.md) */
    char *claims = NULL;
    if (e->claims_from_subject && e->subject) {
        json_t *c = json_pack("{s:s}", "sub", e->subject);
        claims = c ? json_dumps(c, JSON_COMPACT) : NULL;
        json_decref(c);
        if (!claims) {
            free(op);
            return -1;
        }
    }
    const struct rw_queue_cron_tick t = {e->id, ts, e->task, e->payload, backfilled,
                                         e->queue, e->priority, e->max_attempts,
                                         e->run_as, e->subject, claims};
    op->r = r;
    snprintf(op->id, sizeof op->id, "%s", e->id);
    op->tick = tick;
    op->backfilled = backfilled;
    int rc = rw_queue_cron_fire(r->pg, &t, on_fired, op);
    free(claims);
    if (rc < 0) {
        free(op);
        return -1;
    }
    r->inflight++;
    return 0;
}

/* Fires what is due for one entry; returns fires left in this wake's budget,
 * or -1 when the connection refused work. */
static int run_slot(struct rw_cron_runner *r, int i, int64_t now, int budget)
{
    const struct rw_cron_entry *e = &r->tab->entries[i];
    struct slot *s = &r->slots[i];
    int64_t oldest = now - (e->fill_s > r->o.grace_s ? e->fill_s : (int64_t)r->o.grace_s) - 1;
    int skipped = 0;
    if (s->cursor < oldest) {
        s->cursor = oldest;                   /* older ticks are skipped in any case */
        s->has_next = false;
    }
    while (budget > 0 && !s->never) {
        if (!s->has_next && rw_cron_next(&e->sched, e->tz, s->cursor, &s->next) < 0) {
            s->never = true;
            break;
        }
        s->has_next = true;
        if (s->next > now)
            break;
        int64_t t = s->next;
        bool missed = t <= s->missed_before || now - t > (int64_t)r->o.grace_s;
        if (missed && !(e->fill_s > 0 && now - t <= e->fill_s)) {
            skipped++;
        } else {
            if (fire(r, e, t, missed) < 0)
                return -1;
            budget--;
        }
        s->cursor = t;
        s->has_next = false;
    }
    if (skipped > 0)
        rw_info("cron id=%s: skipped %d missed tick%s (set fill= to backfill)", e->id,
                skipped, skipped == 1 ? "" : "s");
    return budget;
}

static void run_due(struct rw_cron_runner *r)
{
    if (r->state != RS_RUNNING)
        return;
    if (!rw_pg_ready(r->pg)) {
        arm(r, r->o.retry_s);
        return;
    }
    int64_t now = wall_now();
    int budget = r->o.max_fires_per_wake;
    for (int i = 0; i < r->tab->n && budget > 0; i++) {
        budget = run_slot(r, i, now, budget);
        if (budget < 0) {
            arm(r, r->o.retry_s);
            return;
        }
    }
    if (budget == 0) {
        arm(r, 0);
        return;
    }
    double delay = r->o.max_sleep_s;
    for (int i = 0; i < r->tab->n; i++)
        if (r->slots[i].has_next && r->slots[i].next - ev_time() < delay)
            delay = (double)r->slots[i].next - ev_time();
    arm(r, delay < 0 ? 0 : delay + 0.001);
}

static void arm(struct rw_cron_runner *r, double delay)
{
    ev_timer_stop(r->loop, &r->timer);
    ev_now_update(r->loop);
    ev_timer_set(&r->timer, delay, 0);
    ev_timer_start(r->loop, &r->timer);
}

void rw_cron_runner_replace(struct rw_cron_runner *r, struct rw_crontab *tab)
{
    struct slot *slots = calloc((size_t)(tab->n > 0 ? tab->n : 1), sizeof *slots);
    if (!slots) {
        rw_error("could not replace the crontab: out of memory; keeping the old one");
        rw_crontab_free(&tab);
        return;
    }
    int64_t now = wall_now();
    for (int i = 0; i < tab->n; i++) {
        int old;
        struct slot *s = slot_by_id(r, tab->entries[i].id, &old);
        slot_init(&slots[i], &tab->entries[i], -1, now);
        if (s && r->loaded) {
            slots[i].cursor = s->cursor;
            slots[i].missed_before = s->missed_before;
        }
    }
    rw_crontab_free(&r->tab);
    free(r->slots);
    r->tab = tab;
    r->slots = slots;
    rw_info("cron: crontab replaced, %d job%s scheduled", tab->n, tab->n == 1 ? "" : "s");
    if (r->state == RS_RUNNING)
        run_due(r);
}

int rw_cron_runner_reload(struct rw_cron_runner *r, const char *path)
{
    char err[4096];
    struct rw_crontab *tab;
    if (rw_crontab_load(path, &tab, err, sizeof err) < 0) {
        rw_error("could not reload crontab, keeping the old one: %s", err);
        return -1;
    }
    rw_cron_runner_replace(r, tab);
    return 0;
}

const struct rw_crontab *rw_cron_runner_tab(const struct rw_cron_runner *r)
{
    return r ? r->tab : NULL;
}

void rw_cron_runner_stop(struct rw_cron_runner *r)
{
    ev_timer_stop(r->loop, &r->timer);
    r->want_run = false;
    r->state = RS_STOPPED;             /* a load in flight is ignored */
    r->loaded = false;
}

void rw_cron_runner_free(struct rw_cron_runner **rp)
{
    struct rw_cron_runner *r = rp ? *rp : NULL;
    if (!r)
        return;
    *rp = NULL;
    rw_cron_runner_stop(r);
    if (r->inflight > 0) {
        r->dying = true;
        return;
    }
    rw_crontab_free(&r->tab);
    free(r->slots);
    free(r);
}
