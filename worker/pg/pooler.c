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

enum rw_notify_probe rw_pg_probe_notify(PGconn *c, int timeout_ms, char *err, size_t errlen)
{
    char ch[64], sql[160];
    PGresult *r = NULL;
    bool pooled, arrived;

    if (run(c, "select pg_backend_pid()", &r, err, errlen) < 0)
        return RW_NOTIFY_ERROR;
    pooled = rw_pg_pid_pooled(c, PQgetvalue(r, 0, 0));
    PQclear(r);
    if (pooled)
        return RW_NOTIFY_POOLED;
    rw_pg_probe_channel(ch, sizeof ch);
    snprintf(sql, sizeof sql, "listen %s", ch);
    if (run(c, sql, NULL, err, errlen) < 0)
        return RW_NOTIFY_ERROR;
    snprintf(sql, sizeof sql, "notify %s", ch);
    if (run(c, sql, NULL, err, errlen) < 0)
        return RW_NOTIFY_ERROR;
    arrived = wait_notify(c, ch, timeout_ms);
    snprintf(sql, sizeof sql, "unlisten %s", ch);
    if (run(c, sql, NULL, err, errlen) < 0)
        return RW_NOTIFY_ERROR;
    return arrived ? RW_NOTIFY_OK : RW_NOTIFY_SILENT;
}
