#include "worker/pg/pgcancel.h"

#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "worker/base/log.h"

struct cancel_req {
    struct cancel_req *next;
    PGcancel *c;
    bool ok;
    char what[64];
    char err[256];
};

/* One loop per process runs connections (the worker's); these belong to it.
 * `done` is the only state the helper threads touch, under `mu`. */
static struct {
    pthread_mutex_t mu;
    struct cancel_req *done;
    struct ev_loop *loop;
    ev_async wake;
    int pending;             /* loop thread only */
} cx = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void *send_cancel(void *arg)
{
    struct cancel_req *r = arg;

    r->ok = PQcancel(r->c, r->err, (int)sizeof r->err) == 1;
    pthread_mutex_lock(&cx.mu);
    r->next = cx.done;
    cx.done = r;
    pthread_mutex_unlock(&cx.mu);
    ev_async_send(cx.loop, &cx.wake);
    return NULL;
}

static void on_done(struct ev_loop *loop, ev_async *w, int revents)
{
    struct cancel_req *r;

    pthread_mutex_lock(&cx.mu);
    r = cx.done;
    cx.done = NULL;
    pthread_mutex_unlock(&cx.mu);
    while (r) {
        struct cancel_req *next = r->next;
        if (!r->ok) {
            size_t n = strlen(r->err);
            while (n > 0 && (r->err[n - 1] == '\n' || r->err[n - 1] == ' '))
                r->err[--n] = '\0';
            rw_warn("could not cancel the query on %s: %s; the connection is dropped if "
                    "the query goes on", r->what, r->err);
        }
        PQfreeCancel(r->c);
        free(r);
        cx.pending--;
        r = next;
    }
}

static int start_thread(struct cancel_req *r)
{
    pthread_attr_t attr;
    pthread_t t;
    sigset_t all, old;
    int rc;

    /* signals stay with the loop's thread; a small stack is plenty */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    rc = pthread_create(&t, &attr, send_cancel, r);
    pthread_attr_destroy(&attr);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rc;
}

int rw_pg_cancel_async(struct ev_loop *loop, PGcancel *c, const char *what,
                       char *err, size_t errlen)
{
    struct cancel_req *r;
    int rc;

    if (!cx.loop) {
        cx.loop = loop;
        ev_async_init(&cx.wake, on_done);
        ev_async_start(loop, &cx.wake);
        ev_unref(loop);   /* an idle watcher must not keep the loop running */
    }
    if (loop != cx.loop) {
        snprintf(err, errlen, "cancel requests are sent only from the worker's loop");
        PQfreeCancel(c);
        return -1;
    }
    if (cx.pending >= RW_PG_CANCELS_MAX) {
        snprintf(err, errlen, "%d cancel requests are still unanswered; the server may be "
                 "unreachable", cx.pending);
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
    rc = start_thread(r);
    if (rc != 0) {
        snprintf(err, errlen, "could not start a thread for the cancel request: %s",
                 strerror(rc));
        PQfreeCancel(c);
        free(r);
        return -1;
    }
    cx.pending++;
    return 0;
}

int rw_pg_cancels_pending(void) { return cx.pending; }
