/* HTTP intake of `rlsworker run --listen ADDR:PORT` (docs/http.md).
 *
 * libmicrohttpd in external-select epoll mode, driven by the worker's libev
 * loop: one ev_io on MHD's epoll fd and one ev_timer from MHD_get_timeout.
 * Requests that wait for the token verifier or the database are suspended
 * (MHD_suspend_connection) and resumed from the callback; nothing blocks.
 *
 *   POST /v1/jobs               Bearer JWT -> user-scoped job with the verified claims
 *   POST /v1/webhooks/<source>  Standard Webhooks signature -> the source's task
 *   GET  /healthz /readyz /metrics
 *
 * The intake has its own admin connection (DATABASE_URL) for enqueuing and
 * readiness, reconnecting with backoff; while it is down /readyz and every
 * enqueue answer 503 and nothing is stored.
 *
 * The pure functions below (body parsing, Standard Webhooks signatures,
 * header parsing) take outside input, never touch the loop, and are what the
 * unit tests and the fuzz target call. */
#ifndef RW_INTAKE_H
#define RW_INTAKE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include <time.h>

#include "worker/base/webhook_sig.h"

struct ev_loop;
struct rw_config;
struct rw_metrics;
struct rw_registry;
struct rw_crontab;
struct rw_intake;

/* What the intake uses, all borrowed; each must outlive the intake. */
struct rw_intake_env {
    struct ev_loop *loop;
    const struct rw_config *cfg;
    struct rw_metrics *metrics;
    struct rw_registry *const *tasks;   /* the registry in use (SIGHUP swaps *tasks) */
    /* For the console and /metrics; each may be NULL. */
    const char *worker_id;
    /* The crontab in use (borrowed until the next loop turn), or NULL. */
    const struct rw_crontab *(*crontab)(void *arg);
    /* Records this process's per-pool connection figures into m. */
    void (*pool_stats)(struct rw_metrics *m, void *arg);
    /* How the worker hears of new jobs, for /readyz ("listen" or "polling
     * (why)"); NULL leaves the field out. */
    const char *(*notifications)(void *arg);
    void *arg;
};

/* Retry-After sent with 503 answers. */
#define RW_INTAKE_RETRY_AFTER_S 1
/* Fields of a POST /v1/jobs body. */
#define RW_JOB_TASK_MAX 128
#define RW_JOB_KEY_MAX 255
#define RW_JOB_RUN_AT_MAX 64

/* ---- lifecycle (called by worker/cli/run_hooks.c) ----------------------- */

/* Parses cfg->listen, checks the webhook sources against the task registry,
 * builds the token verifier, binds and starts serving on env->loop. Returns
 * the intake (owned by the caller), or NULL with err filled (port in use,
 * bad address, misconfigured source or JWT settings); nothing is left
 * running then. */
struct rw_intake *rw_intake_start(const struct rw_intake_env *env, char *err, size_t errlen)
    __attribute__((warn_unused_result));
/* Stops accepting and closes every connection; waiting requests are dropped
 * (nothing half-stored: an enqueue is one statement). Idempotent. */
void rw_intake_stop(struct rw_intake *in);
/* Stops (if needed) and frees the intake; NULLs *in. */
void rw_intake_free(struct rw_intake **in);

/* ---- pure helpers -------------------------------------------------------- */

/* "ADDR:PORT", "[v6]:PORT" or ":PORT" (all addresses). Fills ss/len. */
int rw_intake_parse_listen(const char *listen, struct sockaddr_storage *ss,
                           socklen_t *len, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* A parsed POST /v1/jobs body: {"task", "payload"?, "run_at"?, "key"?}. */
struct rw_job_request {
    char task[RW_JOB_TASK_MAX + 1];
    json_t *payload;                     /* owned: a JSON object ({} if absent) */
    char run_at[RW_JOB_RUN_AT_MAX + 1];  /* RFC 3339, or "" */
    char key[RW_JOB_KEY_MAX + 1];        /* or "" */
};

/* Parses and validates body[0..len): a JSON object with exactly the fields
 * above (unknown fields, and claims/role/subject/run_as in particular, are
 * refused), task a task-name identifier, payload an object, run_at an
 * RFC 3339 timestamp, key 1..255 printable characters. Returns 0 (out filled;
 * release with rw_job_request_clear) or -1 with err naming the problem (out
 * holds nothing to release). */
int rw_intake_parse_job_body(const char *body, size_t len, struct rw_job_request *out,
                             char *err, size_t errlen) __attribute__((warn_unused_result));
void rw_job_request_clear(struct rw_job_request *r);

/* True for "YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM)" (T or t or space). */
bool rw_intake_rfc3339(const char *s);

/* "Bearer <token>" (scheme case-insensitive). Points *tok into authz. */
bool rw_intake_bearer(const char *authz, const char **tok, size_t *toklen);

/* application/json, optionally with parameters (e.g. "; charset=utf-8"). */
bool rw_intake_is_json(const char *content_type);

/* The stable job key stored for key `key` of user `sub`: keys sent to
 * POST /v1/jobs are scoped per user so one user cannot replace another's
 * job. Returns a malloc'd string ("u<len(sub)>:<sub>:<key>") or NULL. */
char *rw_intake_user_job_key(const char *sub, const char *key);

#endif
