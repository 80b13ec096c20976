/* The connection handle (pgconn.h): its life (new, free deferred while a
 * callback runs, loss and teardown), the pipeline of ops and their results,
 * notifications, cancel. Opening the connection is pgconn_connect.c's. */
#include "worker/pg/pgconn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "worker/base/log.h"
#include "worker/pg/pgcancel.h"
#include "worker/pg/pgconn_int.h"
#include "worker/pg/pgresolve.h"

struct pg_op {
    struct pg_op *next;
    int nstmts;
    int cur;              /* statement whose results are being read */
    bool got;             /* cur produced a result already */
    bool failed;
    PGresult **results;
    char *error;
    char sqlstate[6];
    rw_pg_done_cb cb;
    void *arg;
};

static void pg_io_cb(struct ev_loop *loop, ev_io *w, int revents);
static void pg_timer_cb(struct ev_loop *loop, ev_timer *w, int revents);
static void pg_reply_timer_cb(struct ev_loop *loop, ev_timer *w, int revents);

rw_pg *rw_pg_new(struct ev_loop *loop, const char *conninfo,
                 const struct rw_pg_callbacks *cb, int connect_timeout_s)
{
    rw_pg *pg = calloc(1, sizeof *pg);

    if (!pg)
        return NULL;
    pg->conninfo = strdup(conninfo);
    if (!pg->conninfo) {
        free(pg);
        return NULL;
    }
    pg->loop = loop;
    snprintf(pg->app_name, sizeof pg->app_name, "rlsworker");
    if (cb)
        pg->cb = *cb;
    pg->connect_timeout_s = connect_timeout_s > 0 ? connect_timeout_s : 10;
    ev_init(&pg->io, pg_io_cb);
    pg->io.data = pg;
    ev_init(&pg->timer, pg_timer_cb);
    pg->timer.data = pg;
    ev_init(&pg->reply_timer, pg_reply_timer_cb);
    pg->reply_timer.data = pg;
    return pg;
}

bool rw_pg_ready(const rw_pg *pg) { return pg->state == PG_READY; }

void rw_pg_set_app_name(rw_pg *pg, const char *name)
{
    snprintf(pg->app_name, sizeof pg->app_name, "%s", name);
}
void rw_pg_set_quiet_notices(rw_pg *pg) { pg->quiet_notices = true; }
int rw_pg_inflight(const rw_pg *pg) { return pg->inflight; }

void rw_pg_set_reply_timeout(rw_pg *pg, int seconds)
{
    pg->reply_timeout_s = seconds > 0 ? seconds : 0;
    pg->reply_timer.repeat = pg->reply_timeout_s;
}

/* Something came from the server, or an op was sent: the clock restarts
 * while ops are in flight and stops when none is. */
static void reply_clock(rw_pg *pg)
{
    if (pg->reply_timeout_s > 0 && pg->inflight > 0)
        ev_timer_again(pg->loop, &pg->reply_timer);
    else
        ev_timer_stop(pg->loop, &pg->reply_timer);
}
PGconn *rw_pg_conn(rw_pg *pg) { return pg->state == PG_READY ? pg->conn : NULL; }

void rw_pg_watch(rw_pg *pg, int events)
{
    int fd = PQsocket(pg->conn);

    if (ev_is_active(&pg->io) && pg->io.fd == fd && pg->io_events == events)
        return;
    ev_io_stop(pg->loop, &pg->io);
    if (fd < 0 || events == 0)
        return;
    ev_io_set(&pg->io, fd, events);
    pg->io_events = events;
    ev_io_start(pg->loop, &pg->io);
}

static void op_free(struct pg_op *op)
{
    for (int i = 0; i < op->nstmts; i++)
        PQclear(op->results[i]);
    free(op->results);
    free(op->error);
    free(op);
}

/* A lookup in flight belongs to a connection attempt that is over. */
static void drop_lookup(rw_pg *pg)
{
    if (pg->lookup)
        rw_pg_lookup_cancel(pg->lookup);
    pg->lookup = NULL;
}

void rw_pg_really_free(rw_pg *pg)
{
    drop_lookup(pg);
    ev_io_stop(pg->loop, &pg->io);
    ev_timer_stop(pg->loop, &pg->timer);
    ev_timer_stop(pg->loop, &pg->reply_timer);
    if (pg->conn)
        PQfinish(pg->conn);
    while (pg->head) {
        struct pg_op *op = pg->head;
        pg->head = op->next;
        op_free(op);
    }
    free(pg->pending_error);
    free(pg->conninfo);
    free(pg);
}

/* Runs an op's callback, then frees the op. Returns false when the handle
 * was freed by the callback (the caller must stop touching it). */
static bool finish_op(rw_pg *pg, struct pg_op *op, bool conn_lost, const char *why)
{
    struct rw_pg_result r = {
        .ok = !op->failed && !conn_lost,
        .conn_lost = conn_lost,
        .error = op->error ? op->error : (conn_lost ? why : NULL),
        .sqlstate = op->sqlstate[0] ? op->sqlstate : NULL,
        .nresults = op->nstmts,
        .results = op->results,
    };

    if (!r.ok && !r.error)
        r.error = "statement skipped after an earlier error";
    pg->depth++;
    if (op->cb)
        op->cb(pg, &r, op->arg);
    pg->depth--;
    op_free(op);
    if (pg->free_pending && pg->depth == 0) {
        rw_pg_really_free(pg);
        return false;
    }
    return !pg->free_pending;
}

/* Closes the socket and completes every op with conn_lost. Returns false if
 * the handle was freed meanwhile. */
bool rw_pg_teardown(rw_pg *pg, const char *why)
{
    struct pg_op *ops = pg->head;

    ev_io_stop(pg->loop, &pg->io);
    ev_timer_stop(pg->loop, &pg->timer);
    ev_timer_stop(pg->loop, &pg->reply_timer);
    drop_lookup(pg);
    if (pg->conn)
        PQfinish(pg->conn);
    pg->conn = NULL;
    pg->state = PG_IDLE;
    pg->head = pg->tail = NULL;
    pg->inflight = 0;
    while (ops) {
        struct pg_op *next = ops->next;
        if (!finish_op(pg, ops, true, why)) {
            while (next) {
                struct pg_op *n2 = next->next;
                op_free(next);
                next = n2;
            }
            return false;
        }
        ops = next;
    }
    return true;
}

void rw_pg_lost(rw_pg *pg, const char *why)
{
    char msg[512];
    size_t n;

    snprintf(msg, sizeof msg, "%s", why && *why ? why : "connection lost");
    n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
        msg[--n] = '\0';
    if (!rw_pg_teardown(pg, msg))
        return;
    if (pg->cb.on_lost) {
        pg->depth++;
        pg->cb.on_lost(pg, msg, pg->cb.arg);
        pg->depth--;
        if (pg->free_pending && pg->depth == 0)
            rw_pg_really_free(pg);
    }
}

static void pg_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    rw_pg *pg = w->data;
    char msg[600];

    if (pg->pending_error) {
        snprintf(msg, sizeof msg, "%s", pg->pending_error);
        free(pg->pending_error);
        pg->pending_error = NULL;
    } else {
        snprintf(msg, sizeof msg, "timed out after %d s while connecting",
                 pg->connect_timeout_s);
    }
    rw_pg_lost(pg, msg);
}

static void pg_reply_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    rw_pg *pg = w->data;
    char msg[160];

    snprintf(msg, sizeof msg, "no reply from the server for %d s (the network or the "
             "server stopped answering); reconnecting", pg->reply_timeout_s);
    rw_pg_lost(pg, msg);
}

/* Returns false when the handle went away or broke. */
static bool flush(rw_pg *pg)
{
    int r = PQflush(pg->conn);

    if (r < 0) {
        rw_pg_lost(pg, PQerrorMessage(pg->conn));
        return false;
    }
    rw_pg_watch(pg, r == 1 ? EV_READ | EV_WRITE : EV_READ);
    return true;
}

static void keep_result(struct pg_op *op, PGresult *res)
{
    ExecStatusType st = PQresultStatus(res);

    if (st == PGRES_FATAL_ERROR || st == PGRES_NONFATAL_ERROR ||
        st == PGRES_BAD_RESPONSE || st == PGRES_PIPELINE_ABORTED) {
        if (!op->failed && st != PGRES_PIPELINE_ABORTED) {
            const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
            const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
            op->error = strdup(msg ? msg : PQresultErrorMessage(res));
            if (state)
                snprintf(op->sqlstate, sizeof op->sqlstate, "%s", state);
        }
        op->failed = true;
    }
    if (op->cur < op->nstmts && !op->results[op->cur])
        op->results[op->cur] = res;
    else
        PQclear(res);
    op->got = true;
}

/* Reads every complete result. Returns false when the handle went away. */
static bool read_results(rw_pg *pg)
{
    while (pg->head && pg->conn) {
        struct pg_op *op = pg->head;
        PGresult *res;

        if (PQisBusy(pg->conn))
            break;
        res = PQgetResult(pg->conn);
        if (!res) {
            if (!op->got)
                break;
            op->cur++;
            op->got = false;
            continue;
        }
        if (PQresultStatus(res) != PGRES_PIPELINE_SYNC) {
            keep_result(op, res);
            continue;
        }
        PQclear(res);
        pg->head = op->next;
        if (!pg->head)
            pg->tail = NULL;
        pg->inflight--;
        if (!finish_op(pg, op, false, NULL))
            return false;
    }
    return true;
}

static bool read_notifies(rw_pg *pg)
{
    PGnotify *n;

    while (pg->conn && (n = PQnotifies(pg->conn)) != NULL) {
        if (pg->cb.on_notify) {
            pg->depth++;
            pg->cb.on_notify(pg, n->relname, n->extra, pg->cb.arg);
            pg->depth--;
        }
        PQfreemem(n);
        if (pg->free_pending) {
            if (pg->depth == 0)
                rw_pg_really_free(pg);
            return false;
        }
    }
    return true;
}

static void pg_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    rw_pg *pg = w->data;

    if (pg->state == PG_CONNECTING) {
        rw_pg_connect_step(pg);
        return;
    }
    if ((revents & EV_WRITE) && !flush(pg))
        return;
    if (!(revents & EV_READ))
        return;
    if (!PQconsumeInput(pg->conn)) {
        rw_pg_lost(pg, PQerrorMessage(pg->conn));
        return;
    }
    if (!read_results(pg) || !read_notifies(pg))
        return;
    reply_clock(pg);
    if (pg->conn && PQstatus(pg->conn) == CONNECTION_BAD) {
        rw_pg_lost(pg, PQerrorMessage(pg->conn));
        return;
    }
    if (pg->conn && (pg->io_events & EV_WRITE))
        flush(pg);
}

int rw_pg_submit(rw_pg *pg, const struct rw_pg_stmt *stmts, int n,
                 rw_pg_done_cb cb, void *arg)
{
    struct pg_op *op;

    if (pg->state != PG_READY || n <= 0)
        return -1;
    op = calloc(1, sizeof *op);
    if (!op || !(op->results = calloc((size_t)n, sizeof *op->results))) {
        free(op);
        return -1;
    }
    op->nstmts = n;
    op->cb = cb;
    op->arg = arg;
    for (int i = 0; i < n; i++) {
        const struct rw_pg_stmt *s = &stmts[i];
        int sent = !s->name ? PQsendQueryParams(pg->conn, s->sql, s->nparams, NULL,
                                                s->params, NULL, NULL, 0)
                 : s->prepare ? PQsendPrepare(pg->conn, s->name, s->sql, s->nparams, NULL)
                 : PQsendQueryPrepared(pg->conn, s->name, s->nparams, s->params, NULL, NULL, 0);
        if (!sent) {
            /* the connection is broken: results of what was sent have no owner */
            op_free(op);
            rw_error("could not send query: %s", PQerrorMessage(pg->conn));
            rw_pg_lost(pg, PQerrorMessage(pg->conn));
            return -1;
        }
    }
    if (!PQpipelineSync(pg->conn)) {
        op_free(op);
        rw_pg_lost(pg, PQerrorMessage(pg->conn));
        return -1;
    }
    if (pg->tail)
        pg->tail->next = op;
    else
        pg->head = op;
    pg->tail = op;
    pg->inflight++;
    if (pg->inflight == 1)
        reply_clock(pg);
    if (pg->depth == 0) {
        flush(pg);
    } else {
        /* inside a callback: flush now, but report loss from the loop */
        int r = PQflush(pg->conn);
        rw_pg_watch(pg, r == 0 ? EV_READ : EV_READ | EV_WRITE);
    }
    return 0;
}

int rw_pg_query(rw_pg *pg, const char *sql, int nparams,
                const char *const *params, rw_pg_done_cb cb, void *arg)
{
    struct rw_pg_stmt s = RW_PG_STMT(sql, nparams, params);
    return rw_pg_submit(pg, &s, 1, cb, arg);
}

int rw_pg_cancel(rw_pg *pg, char *err, size_t errlen)
{
    PGcancel *c;

    if (pg->state != PG_READY) {
        snprintf(err, errlen, "not connected");
        return -1;
    }
    c = PQgetCancel(pg->conn);
    if (!c) {
        snprintf(err, errlen, "could not build a cancel request");
        return -1;
    }
    /* never on the loop: PQcancel blocks until the server answers */
    return rw_pg_cancel_async(pg->loop, c, pg->app_name, err, errlen);
}

void rw_pg_disconnect(rw_pg *pg)
{
    if (pg->state != PG_IDLE || pg->conn)
        rw_pg_teardown(pg, "disconnected");
}

void rw_pg_abort(rw_pg *pg, const char *why)
{
    if (pg->state == PG_IDLE)
        return;
    free(pg->pending_error);
    pg->pending_error = strdup(why);
    ev_io_stop(pg->loop, &pg->io);
    ev_timer_stop(pg->loop, &pg->timer);
    ev_timer_set(&pg->timer, 0., 0.);
    ev_timer_start(pg->loop, &pg->timer);
}

void rw_pg_free(rw_pg **pgp)
{
    rw_pg *pg = *pgp;

    *pgp = NULL;
    if (!pg)
        return;
    if (pg->depth > 0) {
        pg->free_pending = true;
        ev_io_stop(pg->loop, &pg->io);
        ev_timer_stop(pg->loop, &pg->timer);
        return;
    }
    rw_pg_really_free(pg);
}
