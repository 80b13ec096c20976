#include "worker/pg/offloop.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct offloop_req {
    struct offloop_req *next;
    rw_offloop_fn work, done;
    void *arg;
};

/* One loop per process runs connections (the worker's); this belongs to it.
 * `finished` is the only state the helper threads touch, under `mu`. */
static struct {
    pthread_mutex_t mu;
    struct offloop_req *finished;
    struct ev_loop *loop;
    ev_async wake;
} ol = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void *run(void *p)
{
    struct offloop_req *r = p;

    r->work(r->arg);
    pthread_mutex_lock(&ol.mu);
    r->next = ol.finished;
    ol.finished = r;
    pthread_mutex_unlock(&ol.mu);
    ev_async_send(ol.loop, &ol.wake);
    return NULL;
}

static void on_wake(struct ev_loop *loop, ev_async *w, int revents)
{
    struct offloop_req *r;

    pthread_mutex_lock(&ol.mu);
    r = ol.finished;
    ol.finished = NULL;
    pthread_mutex_unlock(&ol.mu);
    while (r) {
        struct offloop_req *next = r->next;
        r->done(r->arg);
        free(r);
        r = next;
    }
}

int rw_offloop_run(struct ev_loop *loop, rw_offloop_fn work, rw_offloop_fn done, void *arg,
                   char *err, size_t errlen)
{
    struct offloop_req *r;
    pthread_attr_t attr;
    pthread_t t;
    sigset_t all, old;
    int rc;

    if (!ol.loop) {
        ol.loop = loop;
        ev_async_init(&ol.wake, on_wake);
        ev_async_start(loop, &ol.wake);
        ev_unref(loop);   /* an idle watcher must not keep the loop running */
    }
    if (loop != ol.loop) {
        snprintf(err, errlen, "helper threads serve only the worker's loop");
        return -1;
    }
    r = calloc(1, sizeof *r);
    if (!r) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    *r = (struct offloop_req){NULL, work, done, arg};
    /* signals stay with the loop's thread; a small stack is plenty */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    rc = pthread_create(&t, &attr, run, r);
    pthread_attr_destroy(&attr);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        snprintf(err, errlen, "could not start a helper thread: %s", strerror(rc));
        free(r);
        return -1;
    }
    return 0;
}
