/* Connection pools, one per database role: bounded, opened on demand; a
 * connection not idle after use is discarded, never reused.
 *
 * A user of the pool waits for a connection with a struct rw_pool_waiter it
 * owns (embedded in its own object); the pool reports through the waiter's
 * callbacks, never by calling up into the executor. */
#ifndef RW_POOL_H
#define RW_POOL_H

#include <ev.h>

#include "worker/pg/pgconn.h"

struct rw_pool;
struct rw_pconn;

struct rw_pool_waiter {
    /* It has a connection (borrowed until rw_pool_release). */
    void (*on_conn)(struct rw_pool_waiter *wt, struct rw_pconn *pc);
    /* No connection can be opened (the role cannot log in now). */
    void (*on_fail)(struct rw_pool_waiter *wt, const char *why);
    struct rw_pool_waiter *next;   /* the pool's wait list; the pool's to touch */
};

/* A pool of at most `max` connections to `url`, named for logs and lookups
 * (name and url are copied). NULL when out of memory. */
struct rw_pool *rw_pool_new(struct ev_loop *loop, const char *name, const char *url, int max,
                            int connect_timeout_s);
void rw_pool_free(struct rw_pool **p);
const char *rw_pool_name(const struct rw_pool *p);
/* Connections by use, and waiters waiting for one (for /metrics). */
struct rw_pool_stats { int in_use, idle, opening, waiting, max; };
void rw_pool_stats(const struct rw_pool *p, struct rw_pool_stats *st);
/* Queues the waiter for a connection; wt->on_conn is called when it has one
 * (possibly before this returns), or wt->on_fail. */
void rw_pool_acquire(struct rw_pool *p, struct rw_pool_waiter *wt);
/* Takes the waiter off the wait list if it is waiting. */
void rw_pool_forget(struct rw_pool *p, struct rw_pool_waiter *wt);
/* The job's session on pc was reset (DISCARD ALL seen to succeed), or
 * nothing was sent on it since it was given: it may serve another job. */
void rw_pool_mark_clean(struct rw_pconn *pc);
/* Gives the connection back; one not marked clean since it was given, or
 * not idle, is discarded (closed), never reused. */
void rw_pool_release(struct rw_pconn *pc);
/* Immediate stop: drops every connection; running users see conn_lost. */
void rw_pool_disconnect_all(struct rw_pool *p);
rw_pg *rw_pconn_pg(struct rw_pconn *pc);
struct rw_pool *rw_pconn_pool(struct rw_pconn *pc);

#endif
