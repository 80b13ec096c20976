/* Cancel requests off the loop. libpq 15's PQcancel opens a new connection,
 * sends the request and waits for the server to close it: against an
 * unresponsive server (or a frozen network) that takes as long as the
 * kernel's TCP timeouts, minutes. Each request runs in a small detached
 * thread that owns its PGcancel; the thread tells the loop through an
 * ev_async, and the loop logs a failure and frees the request. */
#ifndef RW_PGCANCEL_H
#define RW_PGCANCEL_H

#include <ev.h>
#include <libpq-fe.h>
#include <stddef.h>

/* Most cancel requests in flight at once; beyond that a request is refused
 * (the caller's fallback, dropping the connection, still applies). */
#define RW_PG_CANCELS_MAX 32

/* Takes ownership of `c` (also on failure) and sends it from a helper
 * thread. `what` names the connection in a later warning. Returns 0 once the
 * thread runs, or -1 with err filled (nothing was sent). */
int rw_pg_cancel_async(struct ev_loop *loop, PGcancel *c, const char *what,
                       char *err, size_t errlen);

/* Cancel requests sent and not yet answered (for tests and metrics). */
int rw_pg_cancels_pending(void);

#endif
