/* Work that would block the loop, run in a small detached helper thread:
 * `work(arg)` runs in the thread, then `done(arg)` runs on the loop (a
 * later loop turn, through an ev_async). Used for libpq calls that have no
 * non-blocking form in libpq 15: cancel requests and host-name lookups. */
#ifndef RW_OFFLOOP_H
#define RW_OFFLOOP_H

#include <ev.h>
#include <stddef.h>

typedef void (*rw_offloop_fn)(void *arg);

/* Returns 0 once the thread runs (done will run exactly once), or -1 with
 * err filled (neither runs). One loop per process may use it. */
int rw_offloop_run(struct ev_loop *loop, rw_offloop_fn work, rw_offloop_fn done, void *arg,
                   char *err, size_t errlen);

#endif
