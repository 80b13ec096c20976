/* Token verifier: one object built from struct rw_config that picks the mode
 * and feeds rw_jwt_verify (worker/auth/jwt.h) with the secret or the cached JWKS.
 *
 * Modes, never mixed: JWKS_URL set → RS256/ES256 against the key set;
 * JWT_SECRET set → HS256 only. Neither, both, or a secret shorter than
 * RW_JWT_MIN_SECRET bytes is refused by rw_verifier_new with a message that
 * names the variable to set.
 *
 * Asynchronous use (HTTP intake): rw_verifier_verify copies the token and
 * answers through the callback, always from the loop and never before it
 * returns. A token naming an unknown kid (or arriving before the first JWKS
 * fetch finished) waits for one refresh of the key set, subject to the
 * cache's rate limit (worker/auth/jwks.h), then is verified again exactly once.
 *
 * Blocking use (CLI): rw_verifier_verify_sync runs the verifier's loop until
 * the answer is there; the loop must be private to the caller and not
 * running. rw_verify_token_blocking does everything on a fresh loop. */
#ifndef RW_VERIFIER_H
#define RW_VERIFIER_H

#include <ev.h>
#include <jansson.h>
#include <time.h>

#include "worker/base/config.h"
#include "worker/net/http_client.h"
#include "worker/auth/jwt.h"

struct rw_verifier;
struct rw_verify_op;

/* claims: on RW_JWT_OK a new reference the callback owns (must json_decref
 * or keep it); NULL otherwise. verified_at: wall-clock time of the check. */
typedef void (*rw_verify_cb)(enum rw_jwt_reason reason, json_t *claims,
                             time_t verified_at, void *arg);

/* loop and http are borrowed and must outlive the verifier (http may be NULL
 * in secret mode). Copies what it needs from cfg. Returns NULL with err
 * filled on misconfiguration (exit 1 at start). */
struct rw_verifier *rw_verifier_new(struct ev_loop *loop, struct rw_http_client *http,
                                    const struct rw_config *cfg, char *err, size_t errlen);
/* Drops pending verifications without calling their callbacks. */
void rw_verifier_free(struct rw_verifier **v);

enum rw_jwt_mode rw_verifier_mode(const struct rw_verifier *v);

/* Which engine checks signatures (worker/jwt.h); libjwt unless changed.
 * Only `rlsworker token verify --engine` changes it, to cross-check. */
void rw_verifier_set_engine(struct rw_verifier *v, enum rw_jwt_engine engine);

/* JWKS mode: starts the first key-set fetch now rather than on the first
 * token (call at start-up). No-op in secret mode. */
void rw_verifier_prefetch(struct rw_verifier *v);

/* Starts verifying token[0..len) (copied). Returns a handle valid until the
 * callback has run, or NULL on out of memory (callback never runs). */
struct rw_verify_op *rw_verifier_verify(struct rw_verifier *v, const char *token,
                                        size_t len, rw_verify_cb cb, void *arg)
    __attribute__((warn_unused_result));
/* Cancels a pending verification; its callback will not run. */
void rw_verifier_cancel(struct rw_verifier *v, struct rw_verify_op *op);

/* JWKS fetches started so far (0 in secret mode). */
unsigned long rw_verifier_jwks_fetches(const struct rw_verifier *v);

/* Verifies and waits (runs the verifier's private loop). *claims: new
 * reference on RW_JWT_OK, else NULL. */
enum rw_jwt_reason rw_verifier_verify_sync(struct rw_verifier *v, const char *token,
                                           size_t len, json_t **claims, time_t *verified_at)
    __attribute__((warn_unused_result));

/* One-shot convenience (e.g. `rlsworker add --token`): builds a private loop,
 * HTTP client and verifier from cfg, verifies, tears everything down.
 * Returns 0 with *reason (and *claims, a new reference, on RW_JWT_OK), or -1
 * with err filled when the configuration is unusable. */
int rw_verify_token_blocking(const struct rw_config *cfg, const char *token, size_t len,
                             enum rw_jwt_reason *reason, json_t **claims,
                             time_t *verified_at, char *err, size_t errlen)
    __attribute__((warn_unused_result));

#endif
