/* Host-name lookups off the loop. libpq 15 resolves a host name with a
 * blocking getaddrinfo inside PQconnectStart. When a connection string names
 * a host (not an IP address, not a socket path) and gives no hostaddr, the
 * names are resolved in a helper thread first; the connection then gets
 * host= (unchanged: TLS verification and SNI use it) with hostaddr= (the
 * addresses, so libpq looks nothing up), one host entry per address, as
 * libpq would try them. */
#ifndef RW_PGRESOLVE_H
#define RW_PGRESOLVE_H

#include <ev.h>
#include <stdbool.h>
#include <stddef.h>

struct rw_pg_lookup {
    /* input: comma-separated lists from the connection string */
    char *hosts;
    char *ports;          /* NULL, one port, or one per host */
    /* output, set by the thread */
    char *host, *hostaddr, *port;   /* lists for libpq; port NULL: unchanged */
    char err[256];        /* when host is NULL: why */
    /* owner */
    bool cancelled;       /* loop thread only: the owner went away */
    void (*cb)(void *arg, struct rw_pg_lookup *l);
    void *arg;
};

/* A lookup for `conninfo`, or NULL when none is needed (no host name, a
 * hostaddr given, or the string does not parse: libpq reports that). */
struct rw_pg_lookup *rw_pg_lookup_new(const char *conninfo);
/* Starts it; cb(arg, l) runs later on the loop unless cancelled, and the
 * owner then frees l. Returns -1 with err filled when no thread started (the
 * owner still owns and frees l). */
int rw_pg_lookup_start(struct ev_loop *loop, struct rw_pg_lookup *l,
                       void (*cb)(void *arg, struct rw_pg_lookup *l), void *arg,
                       char *err, size_t errlen);
/* The owner goes away: cb will not run; l is freed when the thread ends. */
void rw_pg_lookup_cancel(struct rw_pg_lookup *l);
void rw_pg_lookup_free(struct rw_pg_lookup *l);

#endif
