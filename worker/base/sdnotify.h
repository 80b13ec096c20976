/* systemd's notify protocol, spoken by hand: datagrams of "KEY=value" lines
 * to the AF_UNIX socket named by $NOTIFY_SOCKET (a path, or an abstract name
 * written with a leading '@'). See sd_notify(3) and systemd.service(5).
 *
 *   READY=1      once the service says it is ready (state() turns READY)
 *   STOPPING=1   once it says it is stopping (state() turns STOPPING)
 *   WATCHDOG=1   from a timer on the event loop, every half of $WATCHDOG_USEC
 *                (or RW_SDNOTIFY_STATUS_S if that is shorter), when that is
 *                set and $WATCHDOG_PID is unset or this process: a loop that
 *                stops turning stops the pings
 *   STATUS=...   the service's status line, sent with READY=1 and then on
 *                the loop's timer whenever it changed (at most every
 *                RW_SDNOTIFY_STATUS_S seconds, or at the watchdog's pace)
 *
 * Without $NOTIFY_SOCKET nothing is started and every call does nothing.
 * The module never blocks: the socket is non-blocking, and a datagram that
 * cannot be sent is dropped (and logged once). Its watchers do not keep the
 * loop alive (ev_unref). */
#ifndef RW_SDNOTIFY_H
#define RW_SDNOTIFY_H

#include <ev.h>
#include <stddef.h>

#define RW_SDNOTIFY_STATUS_S 5.0     /* slowest STATUS= refresh, seconds */

enum rw_sdnotify_state { RW_SD_STARTING, RW_SD_READY, RW_SD_STOPPING };

/* What the module asks the service, on the loop, once per loop turn
 * (state; only its moves forward count: STARTING -> READY -> STOPPING) and
 * per timer tick (status). Both are borrowed for the module's
 * life; arg is passed back. */
struct rw_sdnotify_callbacks {
    enum rw_sdnotify_state (*state)(void *arg);
    /* Writes the status line (no newline) into buf of len bytes. */
    void (*status)(void *arg, char *buf, size_t len);
    void *arg;
};

struct rw_sdnotify;

/* Reads the environment and starts the module's watchers on loop. Returns
 * NULL when $NOTIFY_SOCKET is not set or cannot be used (a warning says
 * why); NULL is a valid argument to rw_sdnotify_free. */
struct rw_sdnotify *rw_sdnotify_new(struct ev_loop *loop,
                                    const struct rw_sdnotify_callbacks *cb);

/* The watchdog period in seconds (half of $WATCHDOG_USEC), 0 when off. */
double rw_sdnotify_watchdog_period(const struct rw_sdnotify *n);

/* Says STOPPING=1 if not said yet (the loop has ended), stops the watchers,
 * closes the socket, frees *n and sets it to NULL. */
void rw_sdnotify_free(struct rw_sdnotify **n);

#endif
