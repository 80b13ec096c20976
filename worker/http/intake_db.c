/* The intake's own admin connection: readiness (connected, schema current),
 * queue depth for /metrics, and the enqueue statements. Reconnects with
 * backoff when lost; until then every enqueue answers 503. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "worker/http/intake_int.h"
#include "worker/base/log.h"
#include "worker/base/metrics.h"
#include "worker/pg/migrations.h"
#include "worker/pg/queue.h"

static void on_checked(rw_pg *pg, const struct rw_pg_result *res, void *arg)
{
    struct rw_intake *in = arg;
    struct rw_metrics *m = in->env.metrics;
    int v;

    in->check_inflight = false;
    if (!res->ok) {
        in->schema_ok = false;
        snprintf(in->not_ready, sizeof in->not_ready, "readiness check failed: %.100s",
                 res->error ? res->error : "unknown error");
        return;
    }
    v = rw_queue_readiness_version(res);
    in->schema_ok = v == rw_migrations_latest();
    if (!in->schema_ok)
        snprintf(in->not_ready, sizeof in->not_ready,
                 "schema rlsworker is at version %d, this binary needs %d", v,
                 rw_migrations_latest());
    for (int i = 0; m && i < rw_queue_readiness_states(res); i++) {
        const char *state;
        long long count;
        rw_queue_readiness_state(res, i, &state, &count);
        rw_metrics_queue_depth(m, state, count);
    }
}

static void check_now(struct rw_intake *in)
{
    if (!in->pg_ready || in->check_inflight)
        return;
    if (rw_queue_readiness(in->pg, on_checked, in) == 0)
        in->check_inflight = true;
}

static void on_check_timer(struct ev_loop *loop, ev_timer *t, int revents)
{
    check_now(t->data);
}

static void on_ready(rw_pg *pg, void *arg)
{
    struct rw_intake *in = arg;

    if (in->backoff_ms)
        rw_info("http intake: database connection is back");
    in->pg_ready = true;
    in->backoff_ms = 0;
    snprintf(in->not_ready, sizeof in->not_ready, "checking the schema version");
    check_now(in);
}

static void on_lost(rw_pg *pg, const char *why, void *arg)
{
    struct rw_intake *in = arg;
    int max_ms = in->env.cfg->reconnect_max_s * 1000;

    in->pg_ready = false;
    in->schema_ok = false;
    in->check_inflight = false;
    snprintf(in->not_ready, sizeof in->not_ready, "database unreachable");
    if (in->stopped)
        return;
    in->backoff_ms = in->backoff_ms ? in->backoff_ms * 2 : RW_INTAKE_BACKOFF_MIN_MS;
    if (in->backoff_ms > max_ms)
        in->backoff_ms = max_ms;
    rw_warn("http intake: lost the database: %s; reconnecting in %d ms", why, in->backoff_ms);
    ev_timer_set(&in->retry, in->backoff_ms / 1000.0, 0.);
    ev_timer_start(in->env.loop, &in->retry);
}

static void on_retry(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct rw_intake *in = t->data;

    rw_pg_connect(in->pg);
}

int rw_intake_db_start(struct rw_intake *in)
{
    struct rw_pg_callbacks cb = {.on_ready = on_ready, .on_lost = on_lost, .arg = in};
    struct ev_loop *loop = in->env.loop;

    in->pg = rw_pg_new(loop, in->env.cfg->database_url, &cb, in->env.cfg->connect_timeout_s);
    if (!in->pg)
        return -1;
    snprintf(in->not_ready, sizeof in->not_ready, "connecting to the database");
    ev_init(&in->retry, on_retry);
    in->retry.data = in;
    ev_timer_init(&in->check, on_check_timer, RW_INTAKE_READY_CHECK_S, RW_INTAKE_READY_CHECK_S);
    in->check.data = in;
    ev_timer_start(loop, &in->check);
    rw_pg_connect(in->pg);
    return 0;
}

void rw_intake_db_stop(struct rw_intake *in)
{
    if (in->env.loop) {
        ev_timer_stop(in->env.loop, &in->retry);
        ev_timer_stop(in->env.loop, &in->check);
    }
    /* pending ops are dropped without their callbacks (rw_pg_free) */
    rw_pg_free(&in->pg);
    in->pg_ready = false;
}

bool rw_intake_db_ready(const struct rw_intake *in)
{
    return in->pg_ready && in->schema_ok;
}

/* Maps a failed enqueue to an answer: lost connection or server trouble is
 * 503 (retry), a value PostgreSQL refused (e.g. a run_at out of range) 400. */
static void answer_failure(struct rw_req *r, const struct rw_pg_result *res)
{
    const char *st = res->sqlstate ? res->sqlstate : "";

    if (res->conn_lost) {
        rw_req_error(r, 503, "database_unavailable", "the database connection was lost "
                     "while enqueuing; retry (send a key to make retries idempotent)");
    } else if (strncmp(st, "22", 2) == 0) {
        rw_req_error(r, 400, "invalid_value", "the database refused a value: %.200s",
                     res->error ? res->error : "invalid value");
    } else {
        rw_warn("http intake: enqueue failed: %s", res->error ? res->error : "unknown error");
        rw_req_error(r, 503, "enqueue_failed", "the job could not be stored; retry later");
    }
}

static void on_user_job(rw_pg *pg, const struct rw_pg_result *res, void *arg)
{
    struct rw_req *r = arg;

    r->db_wait = false;
    if (!res->ok) {
        answer_failure(r, res);
        return;
    }
    r->job_id = rw_queue_added_job(res);
    rw_req_answer(r, 202, NULL);
}

bool rw_intake_db_add_user_job(struct rw_req *r, const char *claims, const char *sub)
{
    struct rw_intake *in = r->in;
    char *key = NULL, *payload;
    int rc;

    if (!rw_intake_db_ready(in))
        return false;
    payload = json_dumps(r->job.payload, JSON_COMPACT);
    if (r->job.key[0])
        key = rw_intake_user_job_key(sub, r->job.key);
    if (!payload || (r->job.key[0] && !key)) {
        free(payload);
        free(key);
        return false;
    }
    rc = rw_queue_add_user_job(in->pg, r->job.task, payload,
                               r->job.run_at[0] ? r->job.run_at : NULL, key, claims,
                               on_user_job, r);
    free(payload);
    free(key);
    if (rc < 0)
        return false;
    r->db_wait = true;
    return true;
}

static void on_webhook_job(rw_pg *pg, const struct rw_pg_result *res, void *arg)
{
    struct rw_req *r = arg;
    bool replay;

    r->db_wait = false;
    if (!res->ok) {
        answer_failure(r, res);
        return;
    }
    r->job_id = rw_queue_added_job(res);
    replay = rw_queue_added_webhook_replay(res);
    if (replay) {
        char *body = NULL;
        if (asprintf(&body, "{\"id\":%lld,\"replay\":true}", r->job_id) < 0)
            body = NULL;
        rw_req_answer(r, 200, body);
        return;
    }
    rw_req_answer(r, 202, NULL);
}

bool rw_intake_db_add_webhook_job(struct rw_req *r, const char *task, const char *subject,
                                  const char *claims)
{
    struct rw_intake *in = r->in;
    if (!rw_intake_db_ready(in))
        return false;
    if (rw_queue_add_webhook_job(in->pg, in->env.cfg->webhooks[r->source].name, r->wh_id,
                                 task, r->body, subject, claims, on_webhook_job, r) < 0)
        return false;
    r->db_wait = true;
    return true;
}
