/* JWKS cache; see jwks.h for the refresh policy. */
#include "worker/auth/jwks.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "worker/base/log.h"

struct waiter {
    rw_jwks_cb cb;
    void *arg;
    struct waiter *next;
};

struct rw_jwks {
    struct ev_loop *loop;           /* borrowed */
    struct rw_http_client *http;    /* borrowed */
    char *url;
    int refresh_interval_s, timeout_s;
    size_t max_bytes;
    struct rw_jwk_set *set;         /* last good set, or NULL */
    struct rw_http_req *req;        /* fetch in flight, or NULL */
    bool fetched_once;
    double last_fetch;              /* monotonic seconds at the last fetch start */
    unsigned long fetches;
    struct waiter *waiters;         /* of the fetch in flight */
    struct waiter *delivering;      /* being called back right now */
};

static double monotonic_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct rw_jwks *rw_jwks_new(struct ev_loop *loop, struct rw_http_client *http,
                            const struct rw_jwks_options *o, char *err, size_t errlen)
{
    char why[160];
    struct rw_jwks *j;

    if (!o->url || !rw_http_url_https_or_loopback(o->url, why, sizeof why)) {
        snprintf(err, errlen, "JWKS_URL: %s", o->url ? why : "not set");
        return NULL;
    }
    j = calloc(1, sizeof *j);
    if (!j || !(j->url = strdup(o->url))) {
        free(j);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    j->loop = loop;
    j->http = http;
    j->refresh_interval_s = o->refresh_interval_s;
    j->timeout_s = o->timeout_s;
    j->max_bytes = o->max_bytes;
    return j;
}

static void free_waiters(struct waiter **list)
{
    while (*list) {
        struct waiter *w = *list;
        *list = w->next;
        free(w);
    }
}

void rw_jwks_free(struct rw_jwks **j)
{
    if (!*j)
        return;
    if ((*j)->req)
        rw_http_cancel((*j)->http, (*j)->req);
    free_waiters(&(*j)->waiters);
    free_waiters(&(*j)->delivering);
    rw_jwk_set_free(&(*j)->set);
    free((*j)->url);
    free(*j);
    *j = NULL;
}

const struct rw_jwk_set *rw_jwks_set(const struct rw_jwks *j)
{
    return j->set;
}

unsigned long rw_jwks_fetch_count(const struct rw_jwks *j)
{
    return j->fetches;
}

/* Takes the fetched document in; keeps the old set on any problem. */
static void accept_response(struct rw_jwks *j, const struct rw_http_result *res)
{
    struct rw_jwk_set *set = NULL;
    char err[160];

    if (!res->ok) {
        rw_warn("could not fetch JWKS from %s: %s; keeping the last good key set",
                j->url, res->error);
        return;
    }
    if (res->status != 200) {
        rw_warn("JWKS endpoint %s answered HTTP %ld; keeping the last good key set",
                j->url, res->status);
        return;
    }
    if (rw_jwk_set_parse(res->body, res->body_len, &set, err, sizeof err) < 0) {
        rw_warn("JWKS from %s unusable: %s; keeping the last good key set", j->url, err);
        return;
    }
    if (set->n == 0) {
        rw_warn("JWKS from %s holds no usable RSA or P-256 key; keeping the last good key set",
                j->url);
        rw_jwk_set_free(&set);
        return;
    }
    rw_jwk_set_free(&j->set);
    j->set = set;
    rw_debug("fetched JWKS from %s: %zu usable keys", j->url, set->n);
}

static void fetch_done(const struct rw_http_result *res, void *arg)
{
    struct rw_jwks *j = arg;

    j->req = NULL;
    accept_response(j, res);
    j->delivering = j->waiters;
    j->waiters = NULL;
    while (j->delivering) {     /* a callback may cancel waiters still listed */
        struct waiter *w = j->delivering;
        j->delivering = w->next;
        rw_jwks_cb cb = w->cb;
        void *cbarg = w->arg;
        free(w);
        cb(cbarg);
    }
}

static bool start_fetch(struct rw_jwks *j)
{
    struct rw_http_request r = {
        .url = j->url,
        .headers = (const char *const[]){"Accept: application/json", NULL},
        .timeout_ms = (long)j->timeout_s * 1000,
        .max_response = j->max_bytes,
        .https_or_loopback = true,
    };
    char err[200];

    j->req = rw_http_start(j->http, &r, fetch_done, j, err, sizeof err);
    if (!j->req) {
        rw_warn("could not start JWKS fetch from %s: %s", j->url, err);
        return false;
    }
    j->fetched_once = true;
    j->last_fetch = monotonic_s();
    j->fetches++;
    return true;
}

enum rw_jwks_refresh rw_jwks_refresh(struct rw_jwks *j, rw_jwks_cb cb, void *arg,
                                     void **waiter)
{
    struct waiter *w;

    if (!j->req) {
        if (j->fetched_once && monotonic_s() - j->last_fetch < j->refresh_interval_s)
            return RW_JWKS_RATE_LIMITED;
        if (!start_fetch(j))
            return RW_JWKS_FAILED;
    }
    if (!cb)
        return RW_JWKS_STARTED;
    w = calloc(1, sizeof *w);
    if (!w)
        return RW_JWKS_FAILED;
    w->cb = cb;
    w->arg = arg;
    w->next = j->waiters;
    j->waiters = w;
    if (waiter)
        *waiter = w;
    return RW_JWKS_STARTED;
}

static bool unlink_waiter(struct waiter **list, void *handle)
{
    for (struct waiter **p = list; *p; p = &(*p)->next) {
        if (*p == handle) {
            struct waiter *w = *p;
            *p = w->next;
            free(w);
            return true;
        }
    }
    return false;
}

void rw_jwks_cancel(struct rw_jwks *j, void *waiter)
{
    if (waiter && !unlink_waiter(&j->waiters, waiter))
        unlink_waiter(&j->delivering, waiter);
}
