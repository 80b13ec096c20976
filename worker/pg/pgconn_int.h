/* Internal to worker/pg's connection handle: its state, shared by pgconn.c
 * (the handle's life, the pipeline of ops and their results) and
 * pgconn_connect.c (opening the connection). */
#ifndef RW_PGCONN_INT_H
#define RW_PGCONN_INT_H

#include "worker/pg/pgconn.h"

enum pg_state { PG_IDLE, PG_CONNECTING, PG_READY };

struct pg_op;
struct rw_pg_lookup;

struct rw_pg {
    struct ev_loop *loop;
    char *conninfo;
    char app_name[64];    /* fallback_application_name: the URL's own wins */
    struct rw_pg_callbacks cb;
    int connect_timeout_s;
    PGconn *conn;
    enum pg_state state;
    ev_io io;
    int io_events;
    ev_timer timer;       /* connect timeout, or deferred connect failure */
    int reply_timeout_s;  /* 0: none */
    bool quiet_notices;   /* the server's warnings go to the debug log too */
    ev_timer reply_timer; /* no byte from the server while ops are in flight */
    char *pending_error;  /* connect failure to report from the timer */
    struct rw_pg_lookup *lookup; /* host names being resolved off the loop */
    struct pg_op *head, *tail;
    int inflight;
    int depth;            /* callbacks running; free is deferred while > 0 */
    bool free_pending;
};

/* pgconn.c, for pgconn_connect.c */
void rw_pg_watch(rw_pg *pg, int events);
/* Closes the socket and completes every op with conn_lost; false if the
 * handle was freed meanwhile. */
bool rw_pg_teardown(rw_pg *pg, const char *why);
/* teardown, then on_lost. */
void rw_pg_lost(rw_pg *pg, const char *why);
void rw_pg_really_free(rw_pg *pg);

/* pgconn_connect.c, for pgconn.c: one step of libpq's connect, when the
 * socket is ready. */
void rw_pg_connect_step(rw_pg *pg);

#endif
