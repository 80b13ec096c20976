/* HTTP intake: libmicrohttpd in external epoll mode on the libev loop,
 * request lifecycle, routing, answers (see worker/http/intake.h, docs/http.md). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "jobs/task/taskcheck.h"
#include "jobs/task/taskfile.h"
#include "worker/http/console.h"
#include "worker/net/http_client.h"
#include "worker/http/intake_int.h"
#include "worker/base/log.h"
#include "worker/base/metrics.h"
#include "worker/pg/migrations.h"
#include "worker/auth/verifier.h"

/* ---- driving MHD from libev ---------------------------------------------- */

static void run_mhd(struct rw_intake *in)
{
    MHD_UNSIGNED_LONG_LONG ms;

    if (in->stopped || !in->mhd)
        return;
    MHD_run(in->mhd);
    ev_timer_stop(in->env.loop, &in->timer);
    if (MHD_get_timeout(in->mhd, &ms) == MHD_YES) {
        ev_timer_set(&in->timer, (double)ms / 1000.0, 0.);
        ev_timer_start(in->env.loop, &in->timer);
    }
}

static void on_io(struct ev_loop *loop, ev_io *io, int revents) { run_mhd(io->data); }
static void on_timer(struct ev_loop *loop, ev_timer *t, int revents) { run_mhd(t->data); }

/* Runs MHD again on the next loop turn (after a resume). */
void rw_intake_kick(struct rw_intake *in)
{
    if (in->stopped)
        return;
    ev_timer_stop(in->env.loop, &in->timer);
    ev_timer_set(&in->timer, 0., 0.);
    ev_timer_start(in->env.loop, &in->timer);
}

/* ---- answers ------------------------------------------------------------- */

static char *json_text(json_t *v)
{
    char *s = v ? json_dumps(v, JSON_COMPACT) : NULL;

    json_decref(v);
    return s;
}

void rw_req_answer(struct rw_req *r, int status, char *body)
{
    free(r->resp);
    r->resp = body;
    r->status = status;
    if (r->counted) {
        r->counted = false;
        r->in->waiting--;
    }
    if (r->suspended) {
        r->suspended = false;
        MHD_resume_connection(r->conn);
        rw_intake_kick(r->in);
    }
}

void rw_req_error(struct rw_req *r, int status, const char *code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    rw_req_answer(r, status, json_text(json_pack("{s:s,s:s}", "error", code, "message", msg)));
}

bool rw_req_suspend(struct rw_req *r)
{
    r->suspended = true;
    r->counted = true;
    r->in->waiting++;
    MHD_suspend_connection(r->conn);
    return true;
}

static const char *route_label(const struct rw_req *r, char *buf, size_t n)
{
    switch (r->route) {
    case RT_JOBS: return "/v1/jobs";
    case RT_HEALTHZ: return "/healthz";
    case RT_READYZ: return "/readyz";
    case RT_METRICS: return "/metrics";
    case RT_UI: return r->url;
    case RT_WEBHOOK:
        snprintf(buf, n, "/v1/webhooks/%s", r->in->env.cfg->webhooks[r->source].name);
        return buf;
    case RT_NONE: break;
    }
    return "(unknown path)";
}

/* Queues the answer: the one place that sends, counts and logs responses. */
static enum MHD_Result send_answer(struct rw_req *r)
{
    struct MHD_Response *resp;
    enum MHD_Result ret;
    char buf[200], pathbuf[160];
    const char *path;

    if (!r->resp) {
        if (r->job_id)
            snprintf(buf, sizeof buf, "{\"id\":%lld}", r->job_id);
        else
            snprintf(buf, sizeof buf, "{}");
        r->resp = strdup(buf);
    }
    resp = MHD_create_response_from_buffer(r->resp ? strlen(r->resp) : 0, r->resp,
                                           MHD_RESPMEM_MUST_COPY);
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, "Content-Type", r->ctype ? r->ctype : r->resp_text
                            ? "text/plain; version=0.0.4; charset=utf-8" : "application/json");
    if (r->route == RT_UI)
        rw_console_headers(r, resp);
    MHD_add_response_header(resp, "Cache-Control", "no-store");
    if (r->status == 503)
        MHD_add_response_header(resp, "Retry-After", RW_STR(RW_INTAKE_RETRY_AFTER_S));
    if (r->status == 401 && r->route == RT_JOBS)
        MHD_add_response_header(resp, "WWW-Authenticate", "Bearer");
    if (r->status == 405)
        MHD_add_response_header(resp, "Allow", r->route == RT_JOBS || r->route == RT_WEBHOOK
                                ? "POST" : "GET, HEAD");
    ret = MHD_queue_response(r->conn, (unsigned)r->status, resp);
    MHD_destroy_response(resp);
    rw_metrics_intake(r->in->env.metrics, r->status);
    path = route_label(r, pathbuf, sizeof pathbuf);
    if (r->route == RT_JOBS || r->route == RT_WEBHOOK || r->status >= 500) {
        if (r->job_id)
            rw_info("http %s %s %d job=%lld", r->method, path, r->status, r->job_id);
        else
            rw_info("http %s %s %d", r->method, path, r->status);
    } else {
        rw_debug("http %s %s %d", r->method, path, r->status);
    }
    return ret;
}

/* ---- requests ------------------------------------------------------------ */

static void req_free(struct rw_req *r)
{
    struct rw_intake *in = r->in;

    if (r->vop && in->verifier)
        rw_verifier_cancel(in->verifier, r->vop);
    if (r->counted)
        in->waiting--;
    if (r->prev)
        r->prev->next = r->next;
    else
        in->reqs = r->next;
    if (r->next)
        r->next->prev = r->prev;
    rw_job_request_clear(&r->job);
    free(r->url);
    free(r->body);
    free(r->token);
    free(r->resp);
    free(r);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    rw_intake_conn_answered(c);
    if (*con_cls)
        req_free(*con_cls);
    *con_cls = NULL;
}

static void route(struct rw_req *r, const char *url, const char *method)
{
    const struct rw_config *cfg = r->in->env.cfg;
    bool get = !strcmp(method, "GET") || !strcmp(method, "HEAD");
    bool post = !strcmp(method, "POST");

    if (!strcmp(url, "/v1/jobs")) {
        r->route = RT_JOBS;
    } else if (!strncmp(url, "/v1/webhooks/", 13)) {
        for (int i = 0; i < cfg->nwebhooks; i++)
            if (!strcmp(url + 13, cfg->webhooks[i].name)) {
                r->route = RT_WEBHOOK;
                r->source = i;
            }
    } else if (!strcmp(url, "/healthz")) {
        r->route = RT_HEALTHZ;
    } else if (!strcmp(url, "/readyz")) {
        r->route = RT_READYZ;
    } else if (!strcmp(url, "/metrics")) {
        r->route = RT_METRICS;
    } else if (r->in->console && rw_console_path(url) && (r->url = strdup(url))) {
        r->route = RT_UI;
        return;             /* the console checks methods (rw_console_begin) */
    }
    if (r->route == RT_NONE)
        rw_req_error(r, 404, "not_found", "no such endpoint (see docs/http.md)");
    else if ((r->route == RT_JOBS || r->route == RT_WEBHOOK) ? !post : !get)
        rw_req_error(r, 405, "method_not_allowed", "method %s is not allowed here",
                     strlen(method) < 16 ? method : "(long)");
}

/* Checks a POST's headers before reading its body. */
static void check_post_headers(struct rw_req *r)
{
    const char *ct = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Content-Type");
    const char *cl = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Content-Length");
    long long limit = r->in->env.cfg->body_limit;

    if (!rw_intake_is_json(ct)) {
        rw_req_error(r, 415, "unsupported_media_type", "send the body as application/json");
    } else if (cl && strtoull(cl, NULL, 10) > (unsigned long long)limit) {
        rw_req_error(r, 413, "body_too_large", "the body is larger than the %lld-byte limit",
                     limit);
    }
}

static enum MHD_Result first_call(struct rw_intake *in, struct MHD_Connection *c,
                                  const char *url, const char *method, void **con_cls)
{
    struct rw_req *r = calloc(1, sizeof *r);

    if (!r)
        return MHD_NO;
    r->in = in;
    r->conn = c;
    snprintf(r->method, sizeof r->method, "%s", strlen(method) < 8 ? method : "OTHER");
    r->next = in->reqs;
    if (in->reqs)
        in->reqs->prev = r;
    in->reqs = r;
    *con_cls = r;
    route(r, url, method);
    if (!r->status && r->route == RT_UI)
        rw_console_begin(in->console, r);
    if (!r->status && (r->route == RT_JOBS || r->route == RT_WEBHOOK ||
                       (r->route == RT_UI && !strcmp(method, "POST"))))
        check_post_headers(r);
    if (r->status)
        return send_answer(r);
    return MHD_YES;
}

/* Appends a body chunk; past the limit the rest is discarded and answered
 * with 413 at the end, or the connection is dropped past 4x the limit. */
static enum MHD_Result take_chunk(struct rw_req *r, const char *data, size_t n)
{
    size_t limit = (size_t)r->in->env.cfg->body_limit;

    if (r->too_big || r->len + n > limit) {
        r->too_big = true;
        r->len += n;
        return r->len > 4 * limit ? MHD_NO : MHD_YES;
    }
    if (r->len + n + 1 > r->cap) {
        size_t cap = r->cap ? r->cap : 4096;
        char *b;
        while (cap < r->len + n + 1)
            cap *= 2;
        if (cap > limit + 1)
            cap = limit + 1;
        if (!(b = realloc(r->body, cap)))
            return MHD_NO;
        r->body = b;
        r->cap = cap;
    }
    memcpy(r->body + r->len, data, n);
    r->len += n;
    r->body[r->len] = '\0';
    return MHD_YES;
}

static void answer_get(struct rw_req *r)
{
    struct rw_intake *in = r->in;

    if (r->route == RT_HEALTHZ) {
        rw_req_answer(r, 200, strdup("{\"status\":\"ok\"}"));
    } else if (r->route == RT_READYZ && rw_intake_db_ready(in)) {
        json_t *o = json_pack("{s:s,s:i}", "status", "ready",
                              "schema_version", rw_migrations_latest());
        if (o && in->env.notifications)
            json_object_set_new(o, "notifications",
                                json_string(in->env.notifications(in->env.arg)));
        rw_req_answer(r, 200, json_text(o));
    } else if (r->route == RT_READYZ) {
        rw_req_error(r, 503, "not_ready", "%s", in->not_ready);
    } else {
        rw_metrics_scrape(r);
    }
}

static void final_call(struct rw_req *r)
{
    if (r->route == RT_UI && !r->too_big) {
        rw_console_handle(r->in->console, r);
        return;
    }
    if (r->route != RT_JOBS && r->route != RT_WEBHOOK && r->route != RT_UI) {
        answer_get(r);
        return;
    }
    if (r->too_big) {
        rw_req_error(r, 413, "body_too_large", "the body is larger than the %d-byte limit",
                     r->in->env.cfg->body_limit);
        return;
    }
    if (!r->body && !(r->body = calloc(1, 1))) {
        rw_req_error(r, 503, "out_of_memory", "out of memory");
        return;
    }
    if (r->in->waiting >= r->in->env.cfg->intake_max_inflight) {
        rw_req_error(r, 503, "overloaded", "too many requests in flight; retry shortly");
        return;
    }
    if (r->route == RT_JOBS)
        rw_intake_jobs(r);
    else
        rw_intake_webhook(r);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version,
                                  const char *data, size_t *size, void **con_cls)
{
    struct rw_req *r = *con_cls;

    if (!r)
        return first_call(cls, c, url, method, con_cls);
    if (r->status)
        return send_answer(r);
    if (*size) {
        enum MHD_Result res = take_chunk(r, data, *size);
        *size = 0;
        return res;
    }
    if (r->suspended || r->vop || r->db_wait)
        return MHD_YES;
    rw_intake_conn_received(c);
    final_call(r);
    return r->status && !r->suspended ? send_answer(r) : MHD_YES;
}

/* ---- start and stop ------------------------------------------------------ */

__attribute__((format(printf, 2, 0)))
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    char msg[300];
    size_t n;

    vsnprintf(msg, sizeof msg, fmt, ap);
    n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '.'))
        msg[--n] = '\0';
    rw_debug("http intake: libmicrohttpd: %s", msg);
}

static int listen_socket(const char *addr, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    socklen_t len;
    int fd, one = 1;

    if (rw_intake_parse_listen(addr, &ss, &len, err, errlen) < 0)
        return -1;
    fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "could not create the listen socket: %s", strerror(errno));
        return -1;
    }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, 128) < 0) {
        snprintf(err, errlen, "could not listen on %s: %s%s", addr, strerror(errno),
                 errno == EADDRINUSE ? " (another process uses this port; pick another "
                 "with --listen)" : "");
        close(fd);
        return -1;
    }
    return fd;
}

/* Webhook sources need a usable secret and a loaded task that can run as a
 * webhook's job: a user-scoped task or a `scope: subject` one only when the
 * source names where its subject comes from (webhook.<source>.subject). */
static int check_webhooks(struct rw_intake *in, char *err, size_t errlen)
{
    const struct rw_config *cfg = in->env.cfg;
    char why[600], how[200];

    for (int i = 0; i < cfg->nwebhooks; i++) {
        const struct rw_webhook_source *s = &cfg->webhooks[i];
        const struct rw_task *t = s->task ? rw_registry_find(*in->env.tasks, s->task) : NULL;

        if (!s->secret || !s->task) {
            snprintf(err, errlen, "webhook source \"%s\" needs both webhook.%s.secret and "
                     "webhook.%s.task", s->name, s->name, s->name);
            return -1;
        }
        in->keys[i].keylen = rw_webhook_key(s->secret, in->keys[i].key, RW_WEBHOOK_KEY_MAX);
        if (in->keys[i].keylen <= 0) {
            snprintf(err, errlen, "webhook.%s.secret is not usable: give whsec_<base64> or "
                     "raw text of at most %d bytes", s->name, RW_WEBHOOK_KEY_MAX);
            return -1;
        }
        if (!t) {
            snprintf(err, errlen, "webhook.%s.task \"%s\" is not a loaded task", s->name,
                     s->task);
            return -1;
        }
        snprintf(how, sizeof how, "webhook.%s.subject = /json/pointer/in/the/body", s->name);
        if (rw_task_check_trusted(t, NULL, s->subject != NULL, how, NULL, why, sizeof why) < 0) {
            snprintf(err, errlen, "webhook.%s.task: %s", s->name, why);
            return -1;
        }
    }
    return 0;
}

static int make_verifier(struct rw_intake *in, char *err, size_t errlen)
{
    const struct rw_config *cfg = in->env.cfg;

    if (!cfg->jwt_secret && !cfg->jwks_url) {
        rw_warn("http intake: neither JWT_SECRET nor JWKS_URL is set: "
                "POST /v1/jobs answers 503 until one is");
        return 0;
    }
    if (cfg->jwks_url && !(in->http = rw_http_client_new(in->env.loop))) {
        snprintf(err, errlen, "could not create the HTTP client for JWKS_URL");
        return -1;
    }
    in->verifier = rw_verifier_new(in->env.loop, in->http, cfg, err, errlen);
    if (!in->verifier)
        return -1;
    rw_verifier_prefetch(in->verifier);
    return 0;
}

static int start_daemon(struct rw_intake *in, char *err, size_t errlen)
{
    const struct rw_config *cfg = in->env.cfg;
    const union MHD_DaemonInfo *info;
    int fd = listen_socket(cfg->listen, err, errlen);

    if (fd < 0)
        return -1;
    in->mhd = MHD_start_daemon(
        MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG, 0, NULL, NULL,
        on_request, in,
        MHD_OPTION_LISTEN_SOCKET, fd,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)(cfg->intake_max_inflight * 2 + 64),
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)cfg->intake_conn_timeout_s,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)cfg->intake_conns_per_address,
        MHD_OPTION_NOTIFY_CONNECTION, rw_intake_on_connection, in,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, in,
        MHD_OPTION_EXTERNAL_LOGGER, mhd_log, in,
        MHD_OPTION_END);
    if (!in->mhd) {
        close(fd);
        snprintf(err, errlen, "could not start the HTTP intake on %s", cfg->listen);
        return -1;
    }
    info = MHD_get_daemon_info(in->mhd, MHD_DAEMON_INFO_EPOLL_FD);
    if (!info) {
        snprintf(err, errlen, "libmicrohttpd gave no epoll descriptor");
        return -1;
    }
    ev_io_init(&in->io, on_io, info->epoll_fd, EV_READ);
    in->io.data = in;
    ev_io_start(in->env.loop, &in->io);
    ev_init(&in->timer, on_timer);
    in->timer.data = in;
    run_mhd(in);
    return 0;
}

struct rw_intake *rw_intake_start(const struct rw_intake_env *env, char *err, size_t errlen)
{
    struct rw_intake *in = calloc(1, sizeof *in);

    if (!in) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    in->env = *env;
    if (check_webhooks(in, err, errlen) < 0 || make_verifier(in, err, errlen) < 0 ||
        rw_intake_db_start(in) < 0 || rw_console_new(&in->env, &in->console, err, errlen) < 0 ||
        start_daemon(in, err, errlen) < 0) {
        if (!err[0])
            snprintf(err, errlen, "out of memory");
        rw_intake_free(&in);
        return NULL;
    }
    rw_info("http intake listening on %s (%d webhook sources, POST /v1/jobs %s)",
            env->cfg->listen, env->cfg->nwebhooks, in->verifier ? "on" : "off");
    return in;
}

void rw_intake_stop(struct rw_intake *in)
{
    bool was_running;

    if (!in || in->stopped)
        return;
    in->stopped = true;
    was_running = in->mhd != NULL;
    if (in->mhd) {
        ev_io_stop(in->env.loop, &in->io);
        ev_timer_stop(in->env.loop, &in->timer);
    }
    /* requests waiting on the verifier or the database are dropped: resume
     * them so MHD can close them; nothing was stored for those on the
     * verifier, and an enqueue in flight is one statement (stored or not) */
    for (struct rw_req *r = in->reqs; r; r = r->next) {
        if (r->vop)
            rw_verifier_cancel(in->verifier, r->vop);
        r->vop = NULL;
        r->db_wait = false;
        if (r->suspended) {
            r->suspended = false;
            MHD_resume_connection(r->conn);
        }
    }
    rw_intake_db_stop(in);
    rw_console_free(&in->console);
    if (in->mhd)
        MHD_stop_daemon(in->mhd);
    in->mhd = NULL;
    while (in->reqs)
        req_free(in->reqs);
    if (was_running)
        rw_info("http intake stopped");
}

void rw_intake_free(struct rw_intake **inp)
{
    struct rw_intake *in = *inp;

    *inp = NULL;
    if (!in)
        return;
    rw_intake_stop(in);
    rw_verifier_free(&in->verifier);
    rw_http_client_free(&in->http);
    free(in);
}
