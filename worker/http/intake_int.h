/* Internals shared by the intake's files (intake.c: daemon, loop driving,
 * routing, responses; intake_db.c: admin connection, readiness, enqueue;
 * intake_handlers.c: POST /v1/jobs and webhooks). Not a public API. */
#ifndef RW_INTAKE_INT_H
#define RW_INTAKE_INT_H

#include <ev.h>
#include <jansson.h>
#include <microhttpd.h>
#include <stdbool.h>

#include "worker/base/config.h"
#include "worker/http/intake.h"
#include "worker/pg/pgconn.h"

/* Seconds between readiness checks (schema version, queue depth). */
#define RW_INTAKE_READY_CHECK_S 2.0
/* First reconnect delay of the intake's connection; doubles up to reconnect_max. */
#define RW_INTAKE_BACKOFF_MIN_MS 100

#define RW_STR_(x) #x
#define RW_STR(x) RW_STR_(x)

enum rw_route { RT_NONE, RT_JOBS, RT_WEBHOOK, RT_HEALTHZ, RT_READYZ, RT_METRICS, RT_UI };

struct rw_req {
    struct rw_intake *in;
    struct MHD_Connection *conn;
    enum rw_route route;
    int source;                   /* RT_WEBHOOK: index into cfg.webhooks */
    char method[8];               /* for logs */
    char *body;                   /* owned; body_limit bytes at most (+1 NUL) */
    size_t len, cap;
    bool too_big;
    bool suspended;
    bool counted;                 /* counted in in->waiting */
    struct rw_verify_op *vop;     /* pending token verification */
    bool db_wait;                 /* an enqueue op is in flight */
    char *token;                  /* owned copy of the bearer token (never logged) */
    char wh_id[RW_WEBHOOK_ID_MAX + 1];
    struct rw_job_request job;    /* parsed /v1/jobs body */
    char parse_err[256];
    bool parse_failed;
    /* the answer, once known */
    int status;
    char *resp;                   /* owned response body */
    bool resp_text;               /* text/plain (metrics) instead of JSON */
    long long job_id;
    /* RT_UI (worker/console.c) */
    char *url;                    /* owned copy of the path */
    const char *ctype;            /* static Content-Type of the answer, or NULL */
    char note[136];               /* what an action did, for its log line */
    struct rw_req *next, *prev;   /* in->reqs */
};

struct rw_intake {
    struct rw_intake_env env;     /* all borrowed */
    struct MHD_Daemon *mhd;
    ev_io io;                     /* MHD's epoll fd */
    ev_timer timer;               /* MHD_get_timeout */
    struct rw_http_client *http;  /* owned; JWKS fetches (NULL in secret mode) */
    struct rw_verifier *verifier; /* owned; NULL when no JWT settings */
    struct { unsigned char key[RW_WEBHOOK_KEY_MAX]; int keylen; } keys[RW_MAX_WEBHOOKS];
    rw_pg *pg;                    /* owned admin connection */
    struct rw_console *console;   /* owned; NULL when the console is off */
    bool pg_ready, schema_ok, check_inflight;
    int backoff_ms;
    char not_ready[160];          /* why /readyz says 503 */
    ev_timer retry, check;
    int waiting;                  /* requests suspended on verifier or database */
    struct rw_req *reqs;          /* every live request */
    bool stopped;
};

/* intake.c */
void rw_intake_kick(struct rw_intake *in);
/* Sets the answer (body: owned JSON text or NULL for {}), resumes if suspended. */
void rw_req_answer(struct rw_req *r, int status, char *body);
void rw_req_error(struct rw_req *r, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
bool rw_req_suspend(struct rw_req *r);

/* intake_conn.c: the whole-request deadline of each connection */
/* MHD_OPTION_NOTIFY_CONNECTION callback (cls: the intake). */
void rw_intake_on_connection(void *cls, struct MHD_Connection *mc, void **socket_context,
                             enum MHD_ConnectionNotificationCode toe);
/* The request's headers and body are all in: stop the deadline. */
void rw_intake_conn_received(struct MHD_Connection *mc);
/* The answer was sent (or the request ended): the next request's deadline starts. */
void rw_intake_conn_answered(struct MHD_Connection *mc);

/* intake_db.c */
int rw_intake_db_start(struct rw_intake *in) __attribute__((warn_unused_result));
void rw_intake_db_stop(struct rw_intake *in);
bool rw_intake_db_ready(const struct rw_intake *in);
/* Submits the enqueue of a verified /v1/jobs request or a verified webhook;
 * answers the request when done. Returns false (nothing sent) when the
 * database is not ready or the submit failed; the caller answers 503. */
bool rw_intake_db_add_user_job(struct rw_req *r, const char *claims, const char *sub);
/* subject and claims (JSON text) may be NULL. */
bool rw_intake_db_add_webhook_job(struct rw_req *r, const char *task, const char *subject,
                                  const char *claims);
/* The subject at JSON pointer ptr in a webhook body: a non-empty string of at
 * most 255 bytes (no NUL) or an integer, as text in out. Returns 0 or -1. */
int rw_intake_webhook_subject(json_t *body, const char *ptr, char *out, size_t outlen);

/* metrics_db.c: answers GET /metrics, after reading the queues when it can */
void rw_metrics_scrape(struct rw_req *r);

/* intake_handlers.c */
void rw_intake_jobs(struct rw_req *r);
void rw_intake_webhook(struct rw_req *r);

#endif
