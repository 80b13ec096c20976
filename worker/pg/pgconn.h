/* Non-blocking PostgreSQL connection on the libev loop.
 *
 * Each rw_pg owns one PGconn in non-blocking pipeline mode, watched with
 * ev_io on PQsocket. Work is submitted as an "op": one or more statements
 * (extended protocol, text parameters, types inferred by the server) sent
 * back to back and closed by a pipeline sync, so one op is one round trip.
 * Several ops may be in flight; their callbacks run in submission order.
 * Statements of one op without BEGIN run in one implicit transaction.
 *
 * Callback rules (libuv's): rw_pg_submit returning -1 never calls its
 * callback; otherwise the callback runs exactly once, also when the
 * connection is lost (r->conn_lost). Results passed to callbacks are
 * borrowed and freed when the callback returns. rw_pg_free may be called
 * from inside a callback: the free is deferred until the callback returns. */
#ifndef RW_PGCONN_H
#define RW_PGCONN_H

#include <ev.h>
#include <libpq-fe.h>
#include <stdbool.h>

typedef struct rw_pg rw_pg;

struct rw_pg_stmt {
    const char *sql;
    int nparams;
    const char *const *params;   /* copied at submit; NULL entries are SQL NULL */
    /* NULL: sql runs as the unnamed statement. Otherwise, with prepare set,
     * sql is prepared under this name (one result, no rows); without it,
     * the statement prepared under this name runs with params (sql unused). */
    const char *name;
    bool prepare;
};
/* An unnamed statement: SQL text, parameter count, parameters. */
#define RW_PG_STMT(sql, nparams, params) \
    ((struct rw_pg_stmt){(sql), (nparams), (params), NULL, false})

struct rw_pg_result {
    bool ok;                     /* every statement succeeded */
    bool conn_lost;              /* the connection failed before the op finished */
    const char *error;           /* first error message, borrowed, or NULL */
    const char *sqlstate;        /* SQLSTATE of the first error, or NULL */
    int nresults;
    PGresult *const *results;    /* one per statement, borrowed; NULL if skipped */
};

typedef void (*rw_pg_done_cb)(rw_pg *pg, const struct rw_pg_result *r, void *arg);

struct rw_pg_callbacks {
    void (*on_ready)(rw_pg *pg, void *arg);               /* connected, usable */
    void (*on_lost)(rw_pg *pg, const char *why, void *arg); /* connect failed or dropped */
    void (*on_notify)(rw_pg *pg, const char *channel, const char *payload, void *arg);
    void *arg;
};

/* TCP settings every connection gets (libpq's keepalives_idle,
 * keepalives_interval, keepalives_count, tcp_user_timeout), so that a
 * network that stops answering is noticed; a connection string's own values
 * win. Process-wide, set once at start before connecting (like the log
 * level); zero fields leave libpq's defaults. */
struct rw_pg_tcp {
    int keepalives_idle_s;
    int keepalives_interval_s;
    int keepalives_count;
    int user_timeout_ms;
};
void rw_pg_set_tcp_defaults(const struct rw_pg_tcp *tcp);

/* New, unconnected handle; conninfo is copied. Returns NULL on OOM. */
rw_pg *rw_pg_new(struct ev_loop *loop, const char *conninfo,
                 const struct rw_pg_callbacks *cb, int connect_timeout_s);
/* application_name the server shows for it (default "rlsworker"; an
 * application_name in the connection string wins). Call before connecting. */
void rw_pg_set_app_name(rw_pg *pg, const char *name);
/* The server's notices (a task's RAISE NOTICE, a VACUUM's "skipping") go to
 * the worker's log, never raw to stderr: at debug level, WARNING at warn
 * level unless this was called (expected warnings, like a vacuum skipping a
 * table another vacuum holds). Call before connecting. */
void rw_pg_set_quiet_notices(rw_pg *pg);
/* Drops the connection (as lost) when statements are in flight and nothing
 * at all has come from the server for `seconds` (0: never, the default).
 * For connections whose statements are all short (the control connection):
 * a frozen network is noticed even where TCP cannot tell (a middlebox that
 * still acknowledges but forwards nothing). */
void rw_pg_set_reply_timeout(rw_pg *pg, int seconds);
/* Starts connecting (again). on_ready or on_lost follows. */
void rw_pg_connect(rw_pg *pg);
bool rw_pg_ready(const rw_pg *pg);
/* Ops sent but not yet answered. */
int rw_pg_inflight(const rw_pg *pg);
/* The underlying PGconn (borrowed; NULL when not connected). */
PGconn *rw_pg_conn(rw_pg *pg);

int rw_pg_submit(rw_pg *pg, const struct rw_pg_stmt *stmts, int n,
                 rw_pg_done_cb cb, void *arg) __attribute__((warn_unused_result));
int rw_pg_query(rw_pg *pg, const char *sql, int nparams,
                const char *const *params, rw_pg_done_cb cb, void *arg)
    __attribute__((warn_unused_result));

/* Asks the server to cancel whatever runs now, without blocking: the
 * request goes from a helper thread (worker/pg/pgcancel.h), and a failure is
 * logged later. Returns 0 once sent off, or -1 with err filled. */
int rw_pg_cancel(rw_pg *pg, char *err, size_t errlen);

/* Drops the connection: pending ops complete with conn_lost; on_lost is not
 * called. The handle may be connected again. */
void rw_pg_disconnect(rw_pg *pg);
/* Drops the connection as if it had been lost: pending ops complete with
 * conn_lost, then on_lost runs (from the loop, not from inside the caller). */
void rw_pg_abort(rw_pg *pg, const char *why);
void rw_pg_free(rw_pg **pg);

/* Blocking helpers for CLI subcommands (never used inside the loop). */
PGconn *rw_pg_connect_blocking(const char *conninfo, const char *what,
                               char *err, size_t errlen);

#endif
