#include "worker/pg/pgcancel.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "worker/base/log.h"
#include "worker/pg/offloop.h"

struct cancel_req {
    PGcancel *c;
    bool ok;
    char what[64];
    char err[256];
};

static int pending;   /* loop thread only */

static void send_cancel(void *arg)
{
    struct cancel_req *r = arg;

    r->ok = PQcancel(r->c, r->err, (int)sizeof r->err) == 1;
}

static void cancel_done(void *arg)
{
    struct cancel_req *r = arg;

    if (!r->ok) {
        size_t n = strlen(r->err);
        while (n > 0 && (r->err[n - 1] == '\n' || r->err[n - 1] == ' '))
            r->err[--n] = '\0';
        rw_warn("could not cancel the query on %s: %s; the connection is dropped if "
                "the query goes on", r->what, r->err);
    }
    PQfreeCancel(r->c);
    free(r);
    pending--;
}

int rw_pg_cancel_async(struct ev_loop *loop, PGcancel *c, const char *what,
                       char *err, size_t errlen)
{
    struct cancel_req *r;

    if (pending >= RW_PG_CANCELS_MAX) {
        snprintf(err, errlen, "%d cancel requests are still unanswered; the server may be "
                 "unreachable", pending);
        PQfreeCancel(c);
        return -1;
    }
    r = calloc(1, sizeof *r);
    if (!r) {
        snprintf(err, errlen, "out of memory");
        PQfreeCancel(c);
        return -1;
    }
    r->c = c;
    snprintf(r->what, sizeof r->what, "%s", what ? what : "a connection");
    if (rw_offloop_run(loop, send_cancel, cancel_done, r, err, errlen) < 0) {
        PQfreeCancel(c);
        free(r);
        return -1;
    }
    pending++;
    return 0;
}

int rw_pg_cancels_pending(void) { return pending; }
