/* Opening a connection (pgconn.h): the TCP settings every connection gets,
 * host names resolved off the loop (pgresolve), libpq's non-blocking
 * connect step by step under connect_timeout, and the blocking connect
 * of the CLI and the start-up checks. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "worker/base/log.h"
#include "worker/pg/conninfo.h"
#include "worker/pg/pgconn_int.h"
#include "worker/pg/pgresolve.h"

static struct rw_pg_tcp tcp_defaults;

void rw_pg_set_tcp_defaults(const struct rw_pg_tcp *tcp) { tcp_defaults = *tcp; }

/* libpq's notice processor: the server's notices go to the log. */
static void on_notice(void *arg, const char *message)
{
    const rw_pg *pg = arg;
    int n = (int)strcspn(message, "\n");

    if (!pg->quiet_notices && strncmp(message, "WARNING:", 8) == 0)
        rw_warn("the server says on the %s connection: %.*s", pg->app_name, n, message);
    else
        rw_debug("the server says on the %s connection: %.*s", pg->app_name, n, message);
}

/* Starts libpq's connect; `l`, when given, holds the resolved addresses. */
static void start_connect(rw_pg *pg, const struct rw_pg_lookup *l)
{
    /* the TCP settings come before dbname: the connection string's own win */
    char ka_idle[16], ka_intv[16], ka_count[16], user_tmo[16];
    const char *keys[12], *vals[12];
    int nk = 0;
    if (tcp_defaults.keepalives_idle_s > 0) {
        snprintf(ka_idle, sizeof ka_idle, "%d", tcp_defaults.keepalives_idle_s);
        keys[nk] = "keepalives_idle", vals[nk++] = ka_idle;
    }
    if (tcp_defaults.keepalives_interval_s > 0) {
        snprintf(ka_intv, sizeof ka_intv, "%d", tcp_defaults.keepalives_interval_s);
        keys[nk] = "keepalives_interval", vals[nk++] = ka_intv;
    }
    if (tcp_defaults.keepalives_count > 0) {
        snprintf(ka_count, sizeof ka_count, "%d", tcp_defaults.keepalives_count);
        keys[nk] = "keepalives_count", vals[nk++] = ka_count;
    }
    if (tcp_defaults.user_timeout_ms > 0) {
        snprintf(user_tmo, sizeof user_tmo, "%d", tcp_defaults.user_timeout_ms);
        keys[nk] = "tcp_user_timeout", vals[nk++] = user_tmo;
    }
    keys[nk] = "dbname", vals[nk++] = pg->conninfo;
    if (l) {
        /* after dbname: these replace the string's host list */
        keys[nk] = "host", vals[nk++] = l->host;
        keys[nk] = "hostaddr", vals[nk++] = l->hostaddr;
        if (l->port)
            keys[nk] = "port", vals[nk++] = l->port;
    }
    keys[nk] = "fallback_application_name", vals[nk++] = pg->app_name;
    keys[nk] = NULL, vals[nk] = NULL;
    char bad[400];
    bool malformed = rw_conninfo_check(pg->conninfo, "the connection string", bad,
                                       sizeof bad) < 0;
    pg->conn = malformed ? NULL : PQconnectStartParams(keys, vals, 1);
    pg->state = PG_CONNECTING;
    if (!pg->conn || PQstatus(pg->conn) == CONNECTION_BAD) {
        /* report from the loop, never from inside the caller */
        pg->pending_error = strdup(malformed ? bad
                                   : pg->conn ? PQerrorMessage(pg->conn) : "out of memory");
        ev_timer_set(&pg->timer, 0., 0.);
        ev_timer_start(pg->loop, &pg->timer);
        return;
    }
    PQsetnonblocking(pg->conn, 1);
    PQsetNoticeProcessor(pg->conn, on_notice, pg);
    ev_timer_set(&pg->timer, pg->connect_timeout_s, 0.);
    ev_timer_start(pg->loop, &pg->timer);
    rw_pg_watch(pg, EV_WRITE);
}

static void looked_up(void *arg, struct rw_pg_lookup *l)
{
    rw_pg *pg = arg;
    char msg[300];

    pg->lookup = NULL;
    if (!l->host) {
        snprintf(msg, sizeof msg, "%s", l->err);
        rw_pg_lookup_free(l);
        rw_pg_lost(pg, msg);
        return;
    }
    rw_debug("connecting to %s at %s (resolved off the loop)", l->host, l->hostaddr);
    start_connect(pg, l);
    rw_pg_lookup_free(l);
}

void rw_pg_connect(rw_pg *pg)
{
    char err[256];

    if (pg->state != PG_IDLE && !rw_pg_teardown(pg, "reconnecting"))
        return;
    free(pg->pending_error);
    pg->pending_error = NULL;
    pg->lookup = rw_pg_lookup_new(pg->conninfo);
    if (pg->lookup) {
        /* host names: resolve them off the loop, then connect */
        if (rw_pg_lookup_start(pg->loop, pg->lookup, looked_up, pg, err, sizeof err) == 0) {
            pg->state = PG_CONNECTING;
            ev_timer_set(&pg->timer, pg->connect_timeout_s, 0.);
            ev_timer_start(pg->loop, &pg->timer);
            return;
        }
        rw_warn("resolving host names on the loop: %s", err);
        rw_pg_lookup_free(pg->lookup);
        pg->lookup = NULL;
    }
    start_connect(pg, NULL);
}

void rw_pg_connect_step(rw_pg *pg)
{
    switch (PQconnectPoll(pg->conn)) {
    case PGRES_POLLING_READING:
        rw_pg_watch(pg, EV_READ);
        break;
    case PGRES_POLLING_WRITING:
        rw_pg_watch(pg, EV_WRITE);
        break;
    case PGRES_POLLING_OK:
        ev_timer_stop(pg->loop, &pg->timer);
        if (PQsetnonblocking(pg->conn, 1) != 0 || PQenterPipelineMode(pg->conn) != 1) {
            rw_pg_lost(pg, PQerrorMessage(pg->conn));
            return;
        }
        pg->state = PG_READY;
        rw_pg_watch(pg, EV_READ);
        if (pg->cb.on_ready) {
            pg->depth++;
            pg->cb.on_ready(pg, pg->cb.arg);
            pg->depth--;
            if (pg->free_pending && pg->depth == 0)
                rw_pg_really_free(pg);
        }
        break;
    default:
        rw_pg_lost(pg, PQerrorMessage(pg->conn));
        break;
    }
}

PGconn *rw_pg_connect_blocking(const char *conninfo, const char *what,
                               char *err, size_t errlen)
{
    PGconn *c;

    if (!conninfo || !*conninfo) {
        snprintf(err, errlen, "no connection string for %s", what);
        return NULL;
    }
    if (rw_conninfo_check(conninfo, what, err, errlen) < 0)
        return NULL;
    c = PQconnectdb(conninfo);
    if (PQstatus(c) != CONNECTION_OK) {
        char msg[512];
        size_t n;
        snprintf(msg, sizeof msg, "%s", PQerrorMessage(c));
        n = strlen(msg);
        while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
            msg[--n] = '\0';
        snprintf(err, errlen, "could not connect to %s: %s", what, msg);
        PQfinish(c);
        return NULL;
    }
    return c;
}
