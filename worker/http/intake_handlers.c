/* POST /v1/jobs and POST /v1/webhooks/<source>: authenticate, validate,
 * then hand the enqueue to intake_db.c. Order of checks for /v1/jobs:
 * bearer token (401) before anything about the body (400) or the task (403),
 * so an unauthenticated caller learns nothing about tasks. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "jobs/task/taskcheck.h"
#include "jobs/task/taskfile.h"
#include "worker/http/intake_int.h"
#include "worker/base/log.h"
#include "worker/base/metrics.h"
#include "worker/auth/verifier.h"

static void not_ready(struct rw_req *r)
{
    rw_req_error(r, 503, "not_ready", "the queue database is not reachable (%s); "
                 "nothing was stored, retry shortly", r->in->not_ready);
}

static void token_refused(struct rw_req *r, const char *label, const char *why)
{
    rw_metrics_token_rejected(r->in->env.metrics, label);
    rw_req_error(r, 401, "invalid_token", "the bearer token was refused: %s", why);
}

/* Canonical claims text, or NULL (answered) when too large or out of memory. */
static char *claims_text(struct rw_req *r, json_t *claims)
{
    char *text = json_dumps(claims, JSON_COMPACT | JSON_SORT_KEYS);

    if (!text) {
        rw_req_error(r, 503, "out_of_memory", "out of memory");
        return NULL;
    }
    if (strlen(text) > (size_t)r->in->env.cfg->claims_max_bytes) {
        free(text);
        token_refused(r, "claims_too_large", "claims too large");
        return NULL;
    }
    return text;
}

static void enqueue_verified(struct rw_req *r, json_t *claims)
{
    const struct rw_task *t;
    json_t *sub = json_object_get(claims, "sub");
    char *text;

    if (r->parse_failed) {
        rw_req_error(r, 400, "bad_request", "%s", r->parse_err);
        return;
    }
    t = rw_registry_find(*r->in->env.tasks, r->job.task);
    if (!t || !t->http_enqueue || t->run_as != RW_RUN_AS_USER) {
        /* One answer for a task that does not exist and one that exists but
         * takes no jobs over HTTP, so a caller cannot list tasks; the
         * operator finds the reason in the log. */
        rw_info("http intake: refused task %.128s: %s", r->job.task,
                !t ? "no such task" : "its file lacks \"-- enqueue: user\" or it does not "
                "run as user");
        rw_req_error(r, 403, "task_not_allowed", "unknown task \"%s\": no task of that name "
                     "accepts jobs over HTTP", r->job.task);
        return;
    }
    if (!json_is_string(sub)) {
        token_refused(r, "bad_subject", "bad subject");
        return;
    }
    if (!(text = claims_text(r, claims)))
        return;
    if (!rw_intake_db_add_user_job(r, text, json_string_value(sub)))
        not_ready(r);
    else
        rw_info("http intake: enqueuing task %s for sub %s", r->job.task,
                json_string_value(sub));
    free(text);
}

static void on_verified(enum rw_jwt_reason reason, json_t *claims, time_t verified_at,
                        void *arg)
{
    struct rw_req *r = arg;

    r->vop = NULL;
    free(r->token);
    r->token = NULL;
    if (reason != RW_JWT_OK)
        token_refused(r, rw_jwt_reason_label(reason), rw_jwt_reason_str(reason));
    else
        enqueue_verified(r, claims);
    json_decref(claims);
}

void rw_intake_jobs(struct rw_req *r)
{
    struct rw_intake *in = r->in;
    const char *authz = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
                                                    "Authorization");
    const char *tok;
    size_t toklen;

    if (!in->verifier) {
        rw_req_error(r, 503, "jobs_disabled", "POST /v1/jobs is off: the worker has "
                     "neither JWT_SECRET nor JWKS_URL");
        return;
    }
    if (!rw_intake_bearer(authz, &tok, &toklen)) {
        token_refused(r, "missing_token", "send \"Authorization: Bearer <JWT>\"");
        return;
    }
    if (rw_intake_parse_job_body(r->body, r->len, &r->job, r->parse_err,
                                 sizeof r->parse_err) < 0)
        r->parse_failed = true;
    r->vop = rw_verifier_verify(in->verifier, tok, toklen, on_verified, r);
    if (!r->vop) {
        rw_req_error(r, 503, "out_of_memory", "out of memory");
        return;
    }
    rw_req_suspend(r);
}

static const char *header(struct rw_req *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

void rw_intake_webhook(struct rw_req *r)
{
    struct rw_intake *in = r->in;
    const struct rw_webhook_source *s = &in->env.cfg->webhooks[r->source];
    const char *id = header(r, "webhook-id");
    enum rw_webhook_verdict v;
    const struct rw_task *t;
    json_t *body;
    char subject[256], why[600], *claims = NULL;
    bool user_claims, ok;

    v = rw_webhook_verify(in->keys[r->source].key, (size_t)in->keys[r->source].keylen, id,
                          header(r, "webhook-timestamp"), header(r, "webhook-signature"),
                          r->body, r->len, time(NULL), in->env.cfg->webhook_tolerance_s);
    if (v != RW_WEBHOOK_OK) {
        char label[40];
        snprintf(label, sizeof label, "webhook_%s", rw_webhook_verdict_label(v));
        rw_metrics_token_rejected(in->env.metrics, label);
        rw_req_error(r, 401, "invalid_signature", "webhook refused: %s (Standard Webhooks "
                     "headers webhook-id, webhook-timestamp, webhook-signature)",
                     rw_webhook_verdict_label(v));
        return;
    }
    snprintf(r->wh_id, sizeof r->wh_id, "%s", id);
    body = json_loadb(r->body, r->len, JSON_REJECT_DUPLICATES, NULL);
    if (!json_is_object(body)) {
        json_decref(body);
        rw_req_error(r, 400, "bad_request", "the webhook body must be a JSON object");
        return;
    }
    /* Nothing is stored (the delivery is not marked seen) unless its job can
     * run: a redelivery after a fix then enqueues it. */
    if (s->subject && rw_intake_webhook_subject(body, s->subject, subject, sizeof subject) < 0) {
        json_decref(body);
        rw_req_error(r, 422, "no_subject", "the body has no subject at %s (a non-empty "
                     "string or an integer); nothing was stored", s->subject);
        return;
    }
    json_decref(body);
    t = rw_registry_find(*in->env.tasks, s->task);
    if (!t) {
        rw_req_error(r, 503, "task_not_loaded", "task \"%s\" of this source is not loaded; "
                     "nothing was stored", s->task);
        return;
    }
    if (rw_task_check_trusted(t, NULL, s->subject != NULL, "webhook.<source>.subject",
                              &user_claims, why, sizeof why) < 0) {
        rw_warn("http intake: webhook source %s: %s", s->name, why);
        rw_req_error(r, 503, "task_not_runnable", "task \"%s\" of this source cannot run "
                     "a webhook's job (see the worker's log); nothing was stored", s->task);
        return;
    }
    if (user_claims) {
        json_t *c = json_pack("{s:s}", "sub", subject);
        claims = c ? json_dumps(c, JSON_COMPACT) : NULL;
        json_decref(c);
        if (!claims) {
            rw_req_error(r, 503, "out_of_memory", "out of memory");
            return;
        }
    }
    ok = rw_intake_db_add_webhook_job(r, s->task, s->subject ? subject : NULL, claims);
    free(claims);
    if (!ok) {
        not_ready(r);
        return;
    }
    rw_req_suspend(r);
}
