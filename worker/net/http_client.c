/* libcurl multi interface on libev; see http_client.h for the rules. */
#include "worker/net/http_client.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct rw_http_client {
    struct ev_loop *loop;       /* borrowed */
    CURLM *multi;
    ev_timer timer;             /* curl's timeout */
    struct rw_http_req *reqs;   /* pending requests, doubly linked */
};

struct rw_http_req {
    struct rw_http_client *c;
    CURL *easy;
    struct curl_slist *headers;
    char *body;                 /* request body copy */
    char *buf;                  /* response body, NUL-terminated */
    size_t len, max;
    bool too_big;
    char errbuf[CURL_ERROR_SIZE];
    bool (*allow_addr)(const struct sockaddr *, void *, char *, size_t);
    void *allow_arg;
    char refused[256];          /* why allow_addr refused an address, or "" */
    rw_http_done_cb cb;
    void *arg;
    struct rw_http_req *prev, *next;
};

/* One per socket curl asks us to watch (curl_multi_assign'ed to it). */
struct sock_watch {
    ev_io io;
    struct rw_http_client *c;
};

static void check_done(struct rw_http_client *c);

static void io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct rw_http_client *c = ((struct sock_watch *)w)->c;
    int action = (revents & EV_READ ? CURL_CSELECT_IN : 0) |
                 (revents & EV_WRITE ? CURL_CSELECT_OUT : 0);
    int running;

    /* w may be freed by sock_cb during this call: do not touch it after */
    curl_multi_socket_action(c->multi, w->fd, action, &running);
    check_done(c);
}

static void timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct rw_http_client *c = w->data;
    int running;

    curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_done(c);
}

/* CURLMOPT_SOCKETFUNCTION: start, change or stop watching one socket. */
static int sock_cb(CURL *e, curl_socket_t s, int what, void *userp, void *socketp)
{
    struct rw_http_client *c = userp;
    struct sock_watch *sw = socketp;
    int events = (what & CURL_POLL_IN ? EV_READ : 0) | (what & CURL_POLL_OUT ? EV_WRITE : 0);

    if (what == CURL_POLL_REMOVE) {
        if (sw) {
            ev_io_stop(c->loop, &sw->io);
            free(sw);
        }
        return 0;
    }
    if (!sw) {
        sw = calloc(1, sizeof *sw);
        if (!sw)
            return -1;
        sw->c = c;
        curl_multi_assign(c->multi, s, sw);
    } else {
        ev_io_stop(c->loop, &sw->io);
    }
    ev_io_init(&sw->io, io_cb, s, events);
    ev_io_start(c->loop, &sw->io);
    return 0;
}

/* CURLMOPT_TIMERFUNCTION: arm our timer; never call curl from here. */
static int curl_timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
    struct rw_http_client *c = userp;

    ev_timer_stop(c->loop, &c->timer);
    if (timeout_ms >= 0) {
        ev_timer_set(&c->timer, (double)timeout_ms / 1000.0, 0.);
        ev_timer_start(c->loop, &c->timer);
    }
    return 0;
}

struct rw_http_client *rw_http_client_new(struct ev_loop *loop)
{
    static bool global_done;
    struct rw_http_client *c;

    if (!global_done) {     /* once, before any thread exists (main is single-threaded) */
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
            return NULL;
        global_done = true;
    }
    c = calloc(1, sizeof *c);
    if (!c || !(c->multi = curl_multi_init())) {
        free(c);
        return NULL;
    }
    c->loop = loop;
    ev_timer_init(&c->timer, timer_cb, 0., 0.);
    c->timer.data = c;
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, sock_cb);
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, curl_timer_cb);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c);
    return c;
}

static void req_unlink_free(struct rw_http_req *q)
{
    struct rw_http_client *c = q->c;

    if (q->prev)
        q->prev->next = q->next;
    else
        c->reqs = q->next;
    if (q->next)
        q->next->prev = q->prev;
    curl_multi_remove_handle(c->multi, q->easy);
    curl_easy_cleanup(q->easy);
    curl_slist_free_all(q->headers);
    free(q->body);
    free(q->buf);
    free(q);
}

void rw_http_cancel(struct rw_http_client *c, struct rw_http_req *req)
{
    if (req)
        req_unlink_free(req);
}

void rw_http_client_free(struct rw_http_client **c)
{
    if (!*c)
        return;
    while ((*c)->reqs)
        req_unlink_free((*c)->reqs);
    ev_timer_stop((*c)->loop, &(*c)->timer);
    curl_multi_cleanup((*c)->multi);
    free(*c);
    *c = NULL;
}

static size_t write_cb(char *data, size_t size, size_t nmemb, void *userp)
{
    struct rw_http_req *q = userp;
    size_t n = size * nmemb;

    if (n > q->max - q->len) {
        q->too_big = true;
        return 0;               /* aborts the transfer: CURLE_WRITE_ERROR */
    }
    char *nb = realloc(q->buf, q->len + n + 1);
    if (!nb)
        return 0;
    memcpy(nb + q->len, data, n);
    q->buf = nb;
    q->len += n;
    q->buf[q->len] = '\0';
    return n;
}

static void finish(struct rw_http_req *q, CURLcode code)
{
    struct rw_http_result res = {.body = q->buf ? q->buf : "", .body_len = q->len};
    char msg[CURL_ERROR_SIZE + 64];

    if (code == CURLE_OK) {
        res.ok = true;
        curl_easy_getinfo(q->easy, CURLINFO_RESPONSE_CODE, &res.status);
    } else if (q->refused[0] && code == CURLE_COULDNT_CONNECT) {
        res.refused = true;
        res.error = q->refused;
    } else if (q->too_big || code == CURLE_FILESIZE_EXCEEDED) {
        snprintf(msg, sizeof msg, "response larger than %zu bytes", q->max);
        res.error = msg;
    } else {
        snprintf(msg, sizeof msg, "%s", q->errbuf[0] ? q->errbuf : curl_easy_strerror(code));
        res.error = msg;
    }
    q->cb(&res, q->arg);
}

static void check_done(struct rw_http_client *c)
{
    CURLMsg *m;
    int left;

    while ((m = curl_multi_info_read(c->multi, &left))) {
        if (m->msg != CURLMSG_DONE)
            continue;
        struct rw_http_req *q = NULL;
        CURLcode code = m->data.result;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&q);
        curl_multi_remove_handle(c->multi, q->easy);
        finish(q, code);
        req_unlink_free(q);
    }
}

static bool is_loopback_host(const char *host)
{
    unsigned char a[16];

    if (strcasecmp(host, "localhost") == 0 || strcmp(host, "[::1]") == 0)
        return true;
    return inet_pton(AF_INET, host, a) == 1 && a[0] == 127;
}

bool rw_http_url_https_or_loopback(const char *url, char *err, size_t errlen)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL;
    bool ok = false;

    if (u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK) {
        ok = strcmp(scheme, "https") == 0 ||
             (strcmp(scheme, "http") == 0 && is_loopback_host(host));
        if (!ok)
            snprintf(err, errlen, "URL must use https:// (http:// only to a loopback host)");
    } else {
        snprintf(err, errlen, "URL is not a valid absolute http(s) URL");
    }
    curl_free(scheme);
    curl_free(host);
    curl_url_cleanup(u);
    return ok;
}

/* CURLOPT_OPENSOCKETFUNCTION: the guard sees the resolved address right
 * before the connection, so DNS rebinding cannot slip past it. */
static curl_socket_t open_guarded(void *clientp, curlsocktype purpose,
                                  struct curl_sockaddr *a)
{
    struct rw_http_req *q = clientp;

    if (!q->allow_addr(&a->addr, q->allow_arg, q->refused, sizeof q->refused))
        return CURL_SOCKET_BAD;
    return socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
}

/* Sets the easy handle's options; returns false on failure. */
static bool setup_easy(struct rw_http_req *q, const struct rw_http_request *r)
{
    CURL *e = q->easy;
    const char *method = r->method ? r->method : "GET";

    for (const char *const *h = r->headers; h && *h; h++) {
        struct curl_slist *n = curl_slist_append(q->headers, *h);
        if (!n)
            return false;
        q->headers = n;
    }
    if (r->body) {
        q->body = malloc(r->body_len ? r->body_len : 1);
        if (!q->body)
            return false;
        memcpy(q->body, r->body, r->body_len);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, q->body);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_len);
    }
    if (r->allow_addr) {
        q->allow_addr = r->allow_addr;
        q->allow_arg = r->allow_arg;
        if (curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, open_guarded) != CURLE_OK ||
            curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, q) != CURLE_OK)
            return false;
    }
    return curl_easy_setopt(e, CURLOPT_URL, r->url) == CURLE_OK &&
           curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method) == CURLE_OK &&
           curl_easy_setopt(e, CURLOPT_HTTPGET, (long)(strcmp(method, "GET") == 0 && !r->body)) == CURLE_OK &&
           curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https") == CURLE_OK &&
           curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L) == CURLE_OK &&
           curl_easy_setopt(e, CURLOPT_NOPROXY, "*") == CURLE_OK &&
           curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L) == CURLE_OK &&
           curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, r->timeout_ms) == CURLE_OK &&
           curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)r->max_response) == CURLE_OK &&
           curl_easy_setopt(e, CURLOPT_HTTPHEADER, q->headers) == CURLE_OK &&
           curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb) == CURLE_OK &&
           curl_easy_setopt(e, CURLOPT_WRITEDATA, q) == CURLE_OK &&
           curl_easy_setopt(e, CURLOPT_ERRORBUFFER, q->errbuf) == CURLE_OK &&
           curl_easy_setopt(e, CURLOPT_PRIVATE, q) == CURLE_OK;
}

struct rw_http_req *rw_http_start(struct rw_http_client *c, const struct rw_http_request *r,
                                  rw_http_done_cb cb, void *arg, char *err, size_t errlen)
{
    struct rw_http_req *q;

    if (!r->url || r->timeout_ms <= 0 || r->max_response == 0) {
        snprintf(err, errlen, "bad request parameters");
        return NULL;
    }
    if (r->https_or_loopback && !rw_http_url_https_or_loopback(r->url, err, errlen))
        return NULL;
    q = calloc(1, sizeof *q);
    if (!q || !(q->easy = curl_easy_init())) {
        free(q);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    q->c = c;
    q->max = r->max_response;
    q->cb = cb;
    q->arg = arg;
    q->next = c->reqs;      /* linked first so that req_unlink_free works */
    if (c->reqs)
        c->reqs->prev = q;
    c->reqs = q;
    if (!setup_easy(q, r) || curl_multi_add_handle(c->multi, q->easy) != CURLM_OK) {
        snprintf(err, errlen, "could not set up the request for %s", r->url);
        req_unlink_free(q);
        return NULL;
    }
    return q;
}
