/* Outgoing HTTP on the libev loop: libcurl's multi interface driven by
 * CURLMOPT_SOCKETFUNCTION / CURLMOPT_TIMERFUNCTION (the pattern of curl's
 * evhiperfifo example, with the timeout in seconds as timeout_ms / 1000.0,
 * and curl is never called back from inside its own callbacks: a zero
 * timeout arms a zero-delay ev_timer instead).
 *
 * Callback rules (libuv's): rw_http_start returning NULL never calls its
 * callback; otherwise the callback runs exactly once, from the loop, unless
 * the request is cancelled (rw_http_cancel, rw_http_client_free), in which
 * case it never runs. The result passed to the callback is borrowed and
 * freed when the callback returns. A callback may start new requests and
 * cancel others, but must not free the client.
 *
 * Redirects are never followed. Only the schemes "https" and "http" are
 * allowed; a request may further require https except to loopback hosts. */
#ifndef RW_HTTP_CLIENT_H
#define RW_HTTP_CLIENT_H

#include <ev.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

struct rw_http_client;
struct rw_http_req;

struct rw_http_request {
    const char *method;          /* "GET" (default when NULL) or "POST", ... */
    const char *url;             /* copied */
    const char *const *headers;  /* NULL-terminated "Name: value" lines; copied */
    const void *body;            /* copied; NULL for none */
    size_t body_len;
    long timeout_ms;             /* whole transfer; must be > 0 */
    size_t max_response;         /* body bytes kept at most; more is an error */
    bool https_or_loopback;      /* refuse http:// unless the host is loopback */
    /* Optional connection guard (worker/net/netguard.h): called with every
     * address curl is about to connect to, after DNS resolution; false
     * refuses it, with `why` filled. If no connection can be made, the
     * result has refused set and error = why. allow_arg is borrowed and
     * must outlive the request. */
    bool (*allow_addr)(const struct sockaddr *sa, void *allow_arg, char *why, size_t whylen);
    void *allow_arg;
};

struct rw_http_result {
    bool ok;                     /* transfer completed (any HTTP status) */
    long status;                 /* HTTP status, 0 when !ok */
    const char *error;           /* what failed when !ok, borrowed */
    bool refused;                /* !ok because allow_addr refused the address */
    const char *body;            /* borrowed, NUL-terminated, body_len bytes */
    size_t body_len;
};

typedef void (*rw_http_done_cb)(const struct rw_http_result *res, void *arg);

/* New client on loop (borrowed, must outlive the client). NULL on failure. */
struct rw_http_client *rw_http_client_new(struct ev_loop *loop);
/* Cancels every pending request (no callbacks) and frees the client. */
void rw_http_client_free(struct rw_http_client **c);

/* Starts a request. Returns a handle valid until the callback has run or
 * the request is cancelled, or NULL with err filled (callback never runs). */
struct rw_http_req *rw_http_start(struct rw_http_client *c, const struct rw_http_request *r,
                                  rw_http_done_cb cb, void *arg, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Cancels a pending request; its callback will not run. */
void rw_http_cancel(struct rw_http_client *c, struct rw_http_req *req);

/* True when url is https://, or http:// to a loopback host (127.0.0.0/8,
 * ::1, localhost). Fills err otherwise. */
bool rw_http_url_https_or_loopback(const char *url, char *err, size_t errlen);

#endif
