#include "worker/pg/pooler.h"

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

bool rw_pg_pid_pooled(PGconn *c, const char *server_pid)
{
    return atoi(server_pid) != PQbackendPID(c);
}

void rw_pg_probe_channel(char *out, size_t outlen)
{
    static unsigned n;

    snprintf(out, outlen, "rlsworker_probe_%d_%u", (int)getpid(), ++n);
}

static int run(PGconn *c, const char *sql, PGresult **out, char *err, size_t errlen)
{
    PGresult *r = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(r);

    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        snprintf(err, errlen, "%s", PQresultErrorMessage(r));
        err[strcspn(err, "\n")] = '\0';
        PQclear(r);
        return -1;
    }
    if (out)
        *out = r;
    else
        PQclear(r);
    return 0;
}

static double now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000.0 + ts.tv_nsec / 1e6;
}

/* Waits for a notification on channel until timeout_ms passes. */
static bool wait_notify(PGconn *c, const char *channel, int timeout_ms)
{
    double end = now_ms() + timeout_ms;

    for (;;) {
        PGnotify *n;
        bool hit = false;
        if (!PQconsumeInput(c))
            return false;
        while ((n = PQnotifies(c)) != NULL) {
            hit |= strcmp(n->relname, channel) == 0;
            PQfreemem(n);
        }
        if (hit)
            return true;
        double left = end - now_ms();
        if (left <= 0)
            return false;
        struct pollfd p = {PQsocket(c), POLLIN, 0};
        if (poll(&p, 1, (int)left + 1) < 0)
            return false;
    }
}

/* NOTIFY channel from a connection of its own to url. */
static int notify_from(const char *url, const char *sql, char *err, size_t errlen)
{
    PGconn *n = PQconnectdb(url);
    int rc;

    if (PQstatus(n) != CONNECTION_OK) {
        snprintf(err, errlen, "could not connect to send the probe's NOTIFY: %s",
                 PQerrorMessage(n));
        err[strcspn(err, "\n")] = '\0';
        PQfinish(n);
        return -1;
    }
    rc = run(n, sql, NULL, err, errlen);
    PQfinish(n);
    return rc;
}

enum rw_notify_probe rw_pg_probe_notify(PGconn *c, const char *notify_url, int timeout_ms,
                                        char *err, size_t errlen)
{
    char ch[64], sql[160];
    PGresult *r = NULL;
    bool proxied, arrived;

    if (run(c, "select pg_backend_pid()", &r, err, errlen) < 0)
        return RW_NOTIFY_ERROR;
    proxied = rw_pg_pid_pooled(c, PQgetvalue(r, 0, 0));
    PQclear(r);
    rw_pg_probe_channel(ch, sizeof ch);
    snprintf(sql, sizeof sql, "listen %s", ch);
    if (run(c, sql, NULL, err, errlen) < 0)
        return RW_NOTIFY_ERROR;
    snprintf(sql, sizeof sql, "notify %s", ch);
    if ((proxied ? notify_from(notify_url, sql, err, errlen) : run(c, sql, NULL, err, errlen)) < 0)
        return RW_NOTIFY_ERROR;
    arrived = wait_notify(c, ch, timeout_ms);
    snprintf(sql, sizeof sql, "unlisten %s", ch);
    if (run(c, sql, NULL, err, errlen) < 0)
        return RW_NOTIFY_ERROR;
    if (arrived)
        return RW_NOTIFY_OK;
    return proxied ? RW_NOTIFY_POOLED : RW_NOTIFY_SILENT;
}
