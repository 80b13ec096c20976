/* Verifier facade: mode selection, JWKS refresh on unknown kid, async and
 * blocking entry points; see verifier.h. */
#include "worker/auth/verifier.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "worker/auth/jwks.h"
#include "worker/base/log.h"

struct rw_verifier {
    struct ev_loop *loop;           /* borrowed */
    enum rw_jwt_mode mode;
    unsigned char *secret;          /* owned, cleansed on free */
    size_t secret_len;
    char *issuer, *audience;        /* owned or NULL */
    int leeway_s;
    size_t claims_max_bytes;
    enum rw_jwt_engine engine;
    struct rw_jwks *jwks;           /* owned; JWKS mode only */
    struct rw_verify_op *ops;       /* pending, doubly linked */
};

struct rw_verify_op {
    struct rw_verifier *v;
    char *token;                    /* owned copy, cleansed on free */
    size_t len;
    rw_verify_cb cb;
    void *arg;
    ev_timer deliver;               /* zero-delay: answers from the loop */
    void *waiter;                   /* JWKS refresh waiter, or NULL */
    bool refreshed;                 /* one refresh per token at most */
    enum rw_jwt_reason reason;
    json_t *claims;                 /* owned until handed to cb */
    time_t verified_at;
    struct rw_verify_op *prev, *next;
};

static int check_mode(const struct rw_config *cfg, char *err, size_t errlen)
{
    if (cfg->jwks_url && cfg->jwt_secret) {
        snprintf(err, errlen, "both JWKS_URL and JWT_SECRET are set; set only one "
                 "(JWKS_URL for RS256/ES256 keys, JWT_SECRET for HS256)");
        return -1;
    }
    if (!cfg->jwks_url && !cfg->jwt_secret) {
        snprintf(err, errlen, "no token verification configured: set JWKS_URL "
                 "(RS256/ES256) or JWT_SECRET (HS256, at least %d bytes)", RW_JWT_MIN_SECRET);
        return -1;
    }
    if (cfg->jwt_secret && strlen(cfg->jwt_secret) < RW_JWT_MIN_SECRET) {
        snprintf(err, errlen, "JWT_SECRET is %zu bytes; it must be at least %d bytes "
                 "(generate one with: openssl rand -base64 48)",
                 strlen(cfg->jwt_secret), RW_JWT_MIN_SECRET);
        return -1;
    }
    return 0;
}

static int copy_strings(struct rw_verifier *v, const struct rw_config *cfg)
{
    if (cfg->jwt_secret) {
        v->secret_len = strlen(cfg->jwt_secret);
        v->secret = (unsigned char *)strdup(cfg->jwt_secret);
        if (!v->secret)
            return -1;
    }
    if (cfg->jwt_issuer && !(v->issuer = strdup(cfg->jwt_issuer)))
        return -1;
    if (cfg->jwt_audience && !(v->audience = strdup(cfg->jwt_audience)))
        return -1;
    return 0;
}

struct rw_verifier *rw_verifier_new(struct ev_loop *loop, struct rw_http_client *http,
                                    const struct rw_config *cfg, char *err, size_t errlen)
{
    struct rw_verifier *v;

    if (check_mode(cfg, err, errlen) < 0)
        return NULL;
    if (cfg->jwks_url && !http) {
        snprintf(err, errlen, "JWKS_URL needs an HTTP client");
        return NULL;
    }
    v = calloc(1, sizeof *v);
    if (!v || copy_strings(v, cfg) < 0) {
        rw_verifier_free(&v);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    v->loop = loop;
    v->mode = cfg->jwks_url ? RW_JWT_MODE_JWKS : RW_JWT_MODE_SECRET;
    v->leeway_s = cfg->jwt_leeway_s;
    v->claims_max_bytes = cfg->claims_max_bytes > 0 ? (size_t)cfg->claims_max_bytes : 0;
    if (v->mode == RW_JWT_MODE_JWKS) {
        struct rw_jwks_options o = {
            .url = cfg->jwks_url,
            .refresh_interval_s = cfg->jwks_refresh_interval_s,
            .timeout_s = cfg->jwks_timeout_s,
            .max_bytes = (size_t)cfg->http_max_response,
        };
        v->jwks = rw_jwks_new(loop, http, &o, err, errlen);
        if (!v->jwks) {
            rw_verifier_free(&v);
            return NULL;
        }
    }
    return v;
}

static void op_free(struct rw_verify_op *op)
{
    struct rw_verifier *v = op->v;

    if (op->prev)
        op->prev->next = op->next;
    else
        v->ops = op->next;
    if (op->next)
        op->next->prev = op->prev;
    ev_timer_stop(v->loop, &op->deliver);
    if (op->waiter)
        rw_jwks_cancel(v->jwks, op->waiter);
    json_decref(op->claims);
    if (op->token) {
        OPENSSL_cleanse(op->token, op->len);
        free(op->token);
    }
    free(op);
}

void rw_verifier_free(struct rw_verifier **v)
{
    if (!*v)
        return;
    while ((*v)->ops)
        op_free((*v)->ops);
    rw_jwks_free(&(*v)->jwks);
    if ((*v)->secret) {
        OPENSSL_cleanse((*v)->secret, (*v)->secret_len);
        free((*v)->secret);
    }
    free((*v)->issuer);
    free((*v)->audience);
    free(*v);
    *v = NULL;
}

enum rw_jwt_mode rw_verifier_mode(const struct rw_verifier *v)
{
    return v->mode;
}

void rw_verifier_set_engine(struct rw_verifier *v, enum rw_jwt_engine engine)
{
    v->engine = engine;
}

unsigned long rw_verifier_jwks_fetches(const struct rw_verifier *v)
{
    return v->jwks ? rw_jwks_fetch_count(v->jwks) : 0;
}

void rw_verifier_prefetch(struct rw_verifier *v)
{
    if (v->jwks && !rw_jwks_set(v->jwks) &&
        rw_jwks_refresh(v->jwks, NULL, NULL, NULL) != RW_JWKS_STARTED)
        rw_debug("jwks: prefetch not started");
}

static void attempt(struct rw_verify_op *op)
{
    struct rw_verifier *v = op->v;
    struct rw_jwt_params p = {
        .mode = v->mode,
        .secret = v->secret,
        .secret_len = v->secret_len,
        .keys = v->jwks ? rw_jwks_set(v->jwks) : NULL,
        .issuer = v->issuer,
        .audience = v->audience,
        .leeway_s = v->leeway_s,
        .claims_max_bytes = v->claims_max_bytes,
        .engine = v->engine,
    };

    op->verified_at = time(NULL);
    op->reason = rw_jwt_verify(&p, op->token, op->len, op->verified_at, &op->claims);
}

static void deliver_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct rw_verify_op *op = w->data;
    rw_verify_cb cb = op->cb;
    void *arg = op->arg;
    enum rw_jwt_reason reason = op->reason;
    json_t *claims = op->claims;
    time_t at = op->verified_at;

    op->claims = NULL;          /* handed to the callback */
    op_free(op);
    cb(reason, claims, at, arg);
}

static void schedule_delivery(struct rw_verify_op *op)
{
    ev_timer_set(&op->deliver, 0., 0.);
    ev_timer_start(op->v->loop, &op->deliver);
}

static void refreshed_cb(void *arg)
{
    struct rw_verify_op *op = arg;

    op->waiter = NULL;
    attempt(op);
    schedule_delivery(op);
}

/* After a first attempt: wait for a key-set refresh if it may help. */
static void maybe_refresh(struct rw_verify_op *op)
{
    struct rw_verifier *v = op->v;

    if (v->mode == RW_JWT_MODE_JWKS && !op->refreshed &&
        (op->reason == RW_JWT_UNKNOWN_KID || op->reason == RW_JWT_KEYS_UNAVAILABLE)) {
        op->refreshed = true;
        if (rw_jwks_refresh(v->jwks, refreshed_cb, op, &op->waiter) == RW_JWKS_STARTED)
            return;
    }
    schedule_delivery(op);
}

struct rw_verify_op *rw_verifier_verify(struct rw_verifier *v, const char *token,
                                        size_t len, rw_verify_cb cb, void *arg)
{
    struct rw_verify_op *op = calloc(1, sizeof *op);

    if (!op)
        return NULL;
    op->v = v;
    op->cb = cb;
    op->arg = arg;
    ev_timer_init(&op->deliver, deliver_cb, 0., 0.);
    op->deliver.data = op;
    op->next = v->ops;
    if (v->ops)
        v->ops->prev = op;
    v->ops = op;
    if (len <= RW_JWT_MAX_TOKEN) {      /* larger ones are refused unread */
        op->token = malloc(len ? len : 1);
        if (!op->token) {
            op_free(op);
            return NULL;
        }
        memcpy(op->token, token, len);
    }
    op->len = len;
    attempt(op);
    maybe_refresh(op);
    return op;
}

void rw_verifier_cancel(struct rw_verifier *v, struct rw_verify_op *op)
{
    if (op)
        op_free(op);
}

struct sync_result {
    bool done;
    enum rw_jwt_reason reason;
    json_t *claims;
    time_t at;
};

static void sync_cb(enum rw_jwt_reason reason, json_t *claims, time_t at, void *arg)
{
    struct sync_result *s = arg;

    s->done = true;
    s->reason = reason;
    s->claims = claims;
    s->at = at;
}

enum rw_jwt_reason rw_verifier_verify_sync(struct rw_verifier *v, const char *token,
                                           size_t len, json_t **claims, time_t *verified_at)
{
    struct sync_result s = {0};

    *claims = NULL;
    if (!rw_verifier_verify(v, token, len, sync_cb, &s))
        return RW_JWT_INTERNAL;
    while (!s.done)
        ev_run(v->loop, EVRUN_ONCE);
    *claims = s.claims;
    if (verified_at)
        *verified_at = s.at;
    return s.reason;
}

int rw_verify_token_blocking(const struct rw_config *cfg, const char *token, size_t len,
                             enum rw_jwt_reason *reason, json_t **claims,
                             time_t *verified_at, char *err, size_t errlen)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct rw_http_client *http = loop ? rw_http_client_new(loop) : NULL;
    struct rw_verifier *v = http ? rw_verifier_new(loop, http, cfg, err, errlen) : NULL;
    int result = -1;

    if (!http)
        snprintf(err, errlen, "could not set up an event loop and HTTP client");
    if (v) {
        *reason = rw_verifier_verify_sync(v, token, len, claims, verified_at);
        result = 0;
    }
    rw_verifier_free(&v);
    rw_http_client_free(&http);
    if (loop)
        ev_loop_destroy(loop);
    return result;
}
