/* The cached JWK set of JWKS_URL, fetched with rw_http on the loop.
 *
 * Policy:
 *   - the first fetch starts on the first rw_jwks_refresh (the verifier asks
 *     at start and whenever a token names an unknown kid);
 *   - a new fetch starts at most once per refresh_interval_s (monotonic,
 *     counted from the start of the last fetch, successful or not); asks in
 *     between are refused with RW_JWKS_RATE_LIMITED, asks while a fetch is in
 *     flight join it;
 *   - a failed fetch (transport error, timeout, HTTP status other than 200,
 *     body over max_bytes, not a JWKS) keeps the last good set and logs a
 *     warning naming the URL and what failed.
 *
 * Waiters are called once when the fetch in flight ends (after the set is
 * swapped in, if it succeeded); rw_jwks_free drops waiters without calling
 * them. The set returned by rw_jwks_set is borrowed and stays valid until
 * the next fetch completes, i.e. only until control returns to the loop. */
#ifndef RW_JWKS_H
#define RW_JWKS_H

#include <ev.h>
#include <stdbool.h>
#include <stddef.h>

#include "worker/net/http_client.h"
#include "worker/auth/jwk.h"

struct rw_jwks;

struct rw_jwks_options {
    const char *url;             /* copied; https://, or http:// to loopback */
    int refresh_interval_s;      /* least seconds between fetches */
    int timeout_s;               /* per fetch */
    size_t max_bytes;            /* largest JWKS document accepted */
};

/* loop and http are borrowed and must outlive the cache. Returns NULL with
 * err filled on a bad URL or out of memory. */
struct rw_jwks *rw_jwks_new(struct ev_loop *loop, struct rw_http_client *http,
                            const struct rw_jwks_options *o, char *err, size_t errlen);
void rw_jwks_free(struct rw_jwks **j);

/* The current set (borrowed), or NULL before the first good fetch. */
const struct rw_jwk_set *rw_jwks_set(const struct rw_jwks *j);

enum rw_jwks_refresh {
    RW_JWKS_STARTED,        /* cb will run when the fetch ends */
    RW_JWKS_RATE_LIMITED,   /* too soon after the last fetch; cb never runs */
    RW_JWKS_FAILED,         /* could not start a fetch; cb never runs */
};

typedef void (*rw_jwks_cb)(void *arg);

/* Asks for a fresh set. A waiter handle is stored in *waiter on
 * RW_JWKS_STARTED so the caller can rw_jwks_cancel it. */
enum rw_jwks_refresh rw_jwks_refresh(struct rw_jwks *j, rw_jwks_cb cb, void *arg,
                                     void **waiter) __attribute__((warn_unused_result));
void rw_jwks_cancel(struct rw_jwks *j, void *waiter);

/* Fetches started so far (for tests and metrics). */
unsigned long rw_jwks_fetch_count(const struct rw_jwks *j);

#endif
