/* The `http` built-in: delivers one HTTP request (a webhook) described by
 * the job's payload. See docs/http-task.md for the payload and outcomes.
 *
 * Every connection goes through the netguard (worker/netguard.h), checked
 * on the resolved address. Messages name the host and path only: a URL's
 * query string, its user info, headers and bodies may hold secrets and
 * never reach last_error or the log.
 *
 * A request to a host with a configured secret (http_sign.<host>) is signed
 * the Standard Webhooks way (worker/webhook_sig.h): webhook-id is the job's
 * id, the same on every attempt, so receivers can de-duplicate. The secret
 * comes only from the configuration, picked by the URL's host: a payload can
 * neither give one nor pick one for another host, nor set these headers. */
#include <ctype.h>
#include <curl/curl.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "jobs/builtin/builtin.h"
#include "worker/base/config.h"
#include "worker/net/http_client.h"
#include "worker/base/log.h"
#include "worker/net/netguard.h"
#include "worker/base/webhook_sig.h"

#define MAX_HEADERS 64
#define MAX_HEADER_NAME 256
#define MAX_HEADER_VALUE 8192
#define MAX_EXPECT 32
#define MAX_URL 8192
#define MAX_TIMEOUT_S 3600

/* One delivery in flight. Owned by the task from start() until it ends. */
struct http_run {
    struct rw_builtin_job *bj;
    struct rw_http_client *http;     /* borrowed: the worker's */
    struct rw_http_req *req;         /* pending request, or NULL */
    struct rw_netguard *guard;       /* owned */
    char method[8];
    char where[300];                 /* host[:port]/path, for messages */
    int expect[MAX_EXPECT];          /* accepted statuses; none: 2xx */
    int nexpect;
    ev_timer later;                  /* ends the job after abort() */
};

/* The request as the payload describes it (all owned). */
struct http_spec {
    char *url;
    char **headers;                  /* "Name: value" lines, NULL-terminated */
    int nheaders;
    bool has_ctype, has_ua;
    char *body;
    size_t body_len;
    bool body_json;
    long timeout_ms;
};

static void spec_free(struct http_spec *s)
{
    free(s->url);
    for (int i = 0; i < s->nheaders; i++)
        free(s->headers[i]);
    free(s->headers);
    free(s->body);
}

static void run_free(struct http_run *run)
{
    rw_netguard_free(&run->guard);
    free(run);
}

static bool token_char(unsigned char c)
{
    return isalnum(c) || (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* Ends the job and frees run: error NULL = delivered. */
static void run_end(struct http_run *run, const char *error, bool final)
{
    struct rw_builtin_job *bj = run->bj;

    ev_timer_stop(rw_builtin_loop(bj), &run->later);
    run_free(run);
    if (final)
        rw_builtin_fail_final(bj, error);
    else
        rw_builtin_done(bj, error);
}

/* ---- the payload ---------------------------------------------------------- */

static int parse_method(const json_t *v, char out[8], char *err, size_t errlen)
{
    static const char *const methods[] = {"GET", "POST", "PUT", "PATCH", "DELETE"};

    if (!v) {
        snprintf(out, 8, "POST");
        return 0;
    }
    for (size_t i = 0; json_is_string(v) && i < sizeof methods / sizeof methods[0]; i++)
        if (strcasecmp(json_string_value(v), methods[i]) == 0) {
            snprintf(out, 8, "%s", methods[i]);
            return 0;
        }
    snprintf(err, errlen, "payload.method must be one of GET, POST, PUT, PATCH, DELETE");
    return -1;
}

static int add_line(struct http_spec *s, const char *name, const char *value)
{
    size_t n = strlen(name) + strlen(value) + 3;
    char *line = malloc(n);

    if (!line)
        return -1;
    /* "Name;" sends an empty header; "Name:" would tell curl to drop it */
    if (value[0])
        snprintf(line, n, "%s: %s", name, value);
    else
        snprintf(line, n, "%s;", name);
    s->headers[s->nheaders++] = line;
    return 0;
}

static int check_header(const char *name, const json_t *v, char *err, size_t errlen)
{
    size_t n = strlen(name);

    if (n == 0 || n > MAX_HEADER_NAME) {
        snprintf(err, errlen, "payload.headers: a header name must have 1 to %d bytes",
                 MAX_HEADER_NAME);
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        if (!token_char((unsigned char)name[i])) {
            snprintf(err, errlen, "payload.headers: header name \"%.64s\" has a character "
                     "not allowed in a header name (e.g. CR, LF, ':' or a space)", name);
            return -1;
        }
    if (strcasecmp(name, "host") == 0 || strcasecmp(name, "content-length") == 0 ||
        strcasecmp(name, "transfer-encoding") == 0 || strcasecmp(name, "connection") == 0) {
        snprintf(err, errlen, "payload.headers: %s is set by the worker and may not be given",
                 name);
        return -1;
    }
    if (!json_is_string(v) || json_string_length(v) > MAX_HEADER_VALUE ||
        strlen(json_string_value(v)) != json_string_length(v) ||
        strpbrk(json_string_value(v), "\r\n")) {
        snprintf(err, errlen, "payload.headers.%.64s must be a string of at most %d bytes "
                 "without CR, LF or NUL", name, MAX_HEADER_VALUE);
        return -1;
    }
    return 0;
}

static int parse_headers(const json_t *obj, struct http_spec *s, char *err, size_t errlen)
{
    const char *name;
    json_t *v;

    if (obj && !json_is_object(obj)) {
        snprintf(err, errlen, "payload.headers must be an object of names to string values");
        return -1;
    }
    if (obj && json_object_size(obj) > MAX_HEADERS) {
        snprintf(err, errlen, "payload.headers has more than %d headers", MAX_HEADERS);
        return -1;
    }
    /* the payload's, then content-type, user-agent, expect, three
     * webhook-* headers, and NULL */
    if (!(s->headers = calloc((obj ? json_object_size(obj) : 0) + 7, sizeof *s->headers))) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    json_object_foreach((json_t *)obj, name, v) {
        if (check_header(name, v, err, errlen) < 0)
            return -1;
        s->has_ctype |= strcasecmp(name, "content-type") == 0;
        s->has_ua |= strcasecmp(name, "user-agent") == 0;
        if (add_line(s, name, json_string_value(v)) < 0) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
    }
    return 0;
}

static int parse_body(const json_t *v, const char *method, struct http_spec *s,
                      char *err, size_t errlen)
{
    if (!v || json_is_null(v))
        return 0;
    if (strcmp(method, "GET") == 0) {
        snprintf(err, errlen, "payload.body: a GET request cannot have a body");
        return -1;
    }
    if (json_is_string(v)) {
        s->body_len = json_string_length(v);
        s->body = malloc(s->body_len + 1);
        if (s->body)
            memcpy(s->body, json_string_value(v), s->body_len + 1);
    } else {
        s->body_json = true;
        s->body = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        s->body_len = s->body ? strlen(s->body) : 0;
    }
    if (!s->body) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

static int parse_expect(const json_t *v, struct http_run *run, char *err, size_t errlen)
{
    size_t i;
    json_t *e;

    if (!v)
        return 0;
    if (!json_is_array(v) || json_array_size(v) == 0 || json_array_size(v) > MAX_EXPECT) {
        snprintf(err, errlen, "payload.expect must be a list of 1 to %d HTTP statuses",
                 MAX_EXPECT);
        return -1;
    }
    json_array_foreach(v, i, e) {
        if (!json_is_integer(e) || json_integer_value(e) < 100 || json_integer_value(e) > 599) {
            snprintf(err, errlen, "payload.expect[%zu] must be an HTTP status (100 to 599)", i);
            return -1;
        }
        run->expect[run->nexpect++] = (int)json_integer_value(e);
    }
    return 0;
}

/* Request timeout: payload.timeout or http_timeout, capped by the job's
 * timeout. When the job's timeout is the cap, curl gets a little longer so
 * that the job timeout is what ends (and names) the attempt. */
static int parse_timeout(const json_t *v, struct rw_builtin_job *bj, struct http_spec *s,
                         char *err, size_t errlen)
{
    double want = rw_builtin_config(bj)->http_timeout_s;
    int job_s = rw_builtin_timeout_s(bj);

    if (v) {
        if (!json_is_number(v) || json_number_value(v) <= 0 ||
            json_number_value(v) > MAX_TIMEOUT_S) {
            snprintf(err, errlen, "payload.timeout must be a number of seconds, above 0 and "
                     "at most %d", MAX_TIMEOUT_S);
            return -1;
        }
        want = json_number_value(v);
    }
    if (want >= job_s)
        s->timeout_ms = job_s * 1000L + 500;
    else
        s->timeout_ms = (long)(want * 1000.0) > 0 ? (long)(want * 1000.0) : 1;
    return 0;
}

/* Fills run->where ("host[:port]/path") and checks the scheme. */
static int parse_url(const json_t *v, struct http_run *run, struct http_spec *s,
                     char **host, char *err, size_t errlen)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *port = NULL, *path = NULL;
    int rc = -1;

    if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > MAX_URL ||
        strlen(json_string_value(v)) != json_string_length(v)) {
        snprintf(err, errlen, "payload.url is required: an http:// or https:// URL of at most "
                 "%d bytes", MAX_URL);
    } else if (!u || curl_url_set(u, CURLUPART_URL, json_string_value(v), 0) != CURLUE_OK ||
               curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
               curl_url_get(u, CURLUPART_HOST, host, 0) != CURLUE_OK) {
        snprintf(err, errlen, "payload.url is not a valid absolute URL");
    } else if (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0) {
        snprintf(err, errlen, "payload.url must use http:// or https://, not %.16s://", scheme);
    } else if (!(s->url = strdup(json_string_value(v)))) {
        snprintf(err, errlen, "out of memory");
    } else {
        curl_url_get(u, CURLUPART_PORT, &port, 0);      /* absent: stays NULL */
        curl_url_get(u, CURLUPART_PATH, &path, 0);
        snprintf(run->where, sizeof run->where, "%s%s%s%.200s", *host, port ? ":" : "",
                 port ? port : "", path ? path : "/");
        rc = 0;
    }
    curl_free(scheme);
    curl_free(port);
    curl_free(path);
    curl_url_cleanup(u);
    return rc;
}

/* ---- signing ------------------------------------------------------------------ */

static const char *const sign_headers[] = {"webhook-id", "webhook-timestamp",
                                           "webhook-signature"};

/* A header line of the payload that signing would set, or NULL. */
static const char *signed_header_given(const struct http_spec *s)
{
    for (int i = 0; i < s->nheaders; i++)
        for (size_t k = 0; k < sizeof sign_headers / sizeof sign_headers[0]; k++) {
            size_t n = strlen(sign_headers[k]);
            if (strncasecmp(s->headers[i], sign_headers[k], n) == 0 &&
                (s->headers[i][n] == ':' || s->headers[i][n] == ';'))
                return sign_headers[k];
        }
    return NULL;
}

/* Adds webhook-id, webhook-timestamp and webhook-signature when the host
 * has a secret. The key bytes live on the stack and are wiped; messages
 * never hold the secret. */
static int sign_request(struct rw_builtin_job *bj, struct http_spec *s, const char *host,
                        char *err, size_t errlen)
{
    const char *secret = rw_config_http_sign_secret(rw_builtin_config(bj), host);
    unsigned char key[RW_WEBHOOK_KEY_MAX];
    char id[32], ts[32], sig[RW_WEBHOOK_SIG_LEN];
    const char *given;
    int keylen, rc;

    if (!secret)
        return 0;
    if ((given = signed_header_given(s))) {
        snprintf(err, errlen, "payload.headers: %s is set by the worker when it signs "
                 "requests to %.64s (http_sign)", given, host);
        return -1;
    }
    snprintf(id, sizeof id, "%lld", rw_builtin_job_id(bj));
    snprintf(ts, sizeof ts, "%lld", (long long)time(NULL));
    keylen = rw_webhook_key(secret, key, sizeof key);
    rc = keylen > 0 ? rw_webhook_sign(key, (size_t)keylen, id, ts, s->body ? s->body : "",
                                      s->body_len, sig, sizeof sig) : -1;
    OPENSSL_cleanse(key, sizeof key);
    if (rc < 0) {
        snprintf(err, errlen, "could not sign the request to %.64s: check http_sign.%.64s",
                 host, host);
        return -1;
    }
    if (add_line(s, sign_headers[0], id) < 0 || add_line(s, sign_headers[1], ts) < 0 ||
        add_line(s, sign_headers[2], sig) < 0) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

static int parse_payload(struct rw_builtin_job *bj, struct http_run *run, struct http_spec *s,
                         char **host, char *err, size_t errlen)
{
    const json_t *p = rw_builtin_payload(bj);

    if (parse_url(json_object_get(p, "url"), run, s, host, err, errlen) < 0 ||
        parse_method(json_object_get(p, "method"), run->method, err, errlen) < 0 ||
        parse_headers(json_object_get(p, "headers"), s, err, errlen) < 0 ||
        parse_body(json_object_get(p, "body"), run->method, s, err, errlen) < 0 ||
        parse_timeout(json_object_get(p, "timeout"), bj, s, err, errlen) < 0 ||
        parse_expect(json_object_get(p, "expect"), run, err, errlen) < 0 ||
        sign_request(bj, s, *host, err, errlen) < 0)
        return -1;
    /* defaults the payload did not set; "Expect:" stops curl waiting for 100-continue */
    if ((!s->has_ctype && s->body &&
         add_line(s, "Content-Type", s->body_json ? "application/json"
                                                  : "text/plain; charset=utf-8") < 0) ||
        (!s->has_ua && add_line(s, "User-Agent", "rlsworker/" RW_VERSION) < 0) ||
        !(s->headers[s->nheaders++] = strdup("Expect:"))) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

/* ---- the request ------------------------------------------------------------ */

static bool guard_cb(const struct sockaddr *sa, void *arg, char *why, size_t whylen)
{
    struct http_run *run = arg;
    return rw_netguard_check_addr(run->guard, sa, why, whylen);
}

static bool accepted(const struct http_run *run, long status)
{
    if (run->nexpect == 0)
        return status >= 200 && status <= 299;
    for (int i = 0; i < run->nexpect; i++)
        if (run->expect[i] == status)
            return true;
    return false;
}

/* Statuses worth another attempt; any other unexpected status is final. */
static bool retryable(long status)
{
    return status >= 500 || status == 408 || status == 425 || status == 429;
}

static void on_response(const struct rw_http_result *res, void *arg)
{
    struct http_run *run = arg;
    char err[600];

    run->req = NULL;
    if (!res->ok) {
        snprintf(err, sizeof err, "%s %s: %s", run->method, run->where, res->error);
        run_end(run, err, res->refused);
        return;
    }
    if (accepted(run, res->status)) {
        rw_debug("http: %s %s answered %ld", run->method, run->where, res->status);
        run_end(run, NULL, false);
        return;
    }
    char host[256];
    snprintf(host, sizeof host, "%.*s", (int)strcspn(run->where, "/"), run->where);
    snprintf(err, sizeof err, "HTTP %ld from %s%s", res->status, host,
             res->status >= 300 && res->status <= 399 ? " (redirects are not followed)" : "");
    run_end(run, err, !retryable(res->status));
}

static void on_later(struct ev_loop *loop, ev_timer *t, int revents)
{
    run_end(t->data, "cancelled before the response arrived", false);
}

/* Sets up the run; returns 0 with the request sent, or -1 with err filled
 * and *final telling whether another attempt could help. */
static int start_request(struct rw_builtin_job *bj, struct http_run *run, char *err,
                         size_t errlen, bool *final)
{
    const struct rw_config *cfg = rw_builtin_config(bj);
    struct http_spec s = {0};
    char *host = NULL, why[300];
    bool named = false;
    int rc = -1;

    *final = true;
    if (parse_payload(bj, run, &s, &host, err, errlen) < 0) {
    } else if (rw_netguard_new(cfg->http_allow, &run->guard, why, sizeof why) < 0) {
        snprintf(err, errlen, "invalid http_allow setting: %s", why);
    } else if (!rw_netguard_check_host(run->guard, host, &named, why, sizeof why)) {
        snprintf(err, errlen, "%s %s: %s", run->method, run->where, why);
    } else if (!(run->http = rw_builtin_http(bj))) {
        snprintf(err, errlen, "could not create the HTTP client");
        *final = false;
    } else {
        struct rw_http_request r = {
            .method = run->method, .url = s.url, .headers = (const char *const *)s.headers,
            .body = s.body, .body_len = s.body_len, .timeout_ms = s.timeout_ms,
            .max_response = (size_t)cfg->http_max_response,
            .allow_addr = named ? NULL : guard_cb, .allow_arg = run,
        };
        run->req = rw_http_start(run->http, &r, on_response, run, why, sizeof why);
        if (run->req)
            rc = 0;
        else
            snprintf(err, errlen, "%s %s: could not start the request", run->method,
                     run->where);
        *final = false;
    }
    curl_free(host);
    spec_free(&s);
    return rc;
}

void rw_http_task_start(struct rw_builtin_job *bj)
{
    struct http_run *run = calloc(1, sizeof *run);
    char err[700];
    bool final;

    if (!run) {
        rw_builtin_done(bj, "out of memory");
        return;
    }
    run->bj = bj;
    ev_init(&run->later, on_later);
    run->later.data = run;
    rw_builtin_set_data(bj, run);
    if (start_request(bj, run, err, sizeof err, &final) < 0)
        run_end(run, err, final);
}

void rw_http_task_abort(struct rw_builtin_job *bj)
{
    struct http_run *run = rw_builtin_data(bj);

    if (!run || !run->req)
        return;         /* already ending */
    rw_http_cancel(run->http, run->req);
    run->req = NULL;
    ev_timer_set(&run->later, 0., 0.);
    ev_timer_start(rw_builtin_loop(bj), &run->later);
}
