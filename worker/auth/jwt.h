/* Strict JWT verification (pure: no I/O, no clock; the caller passes the key
 * material and `now`).
 *
 * Two engines check the signature; everything else is ours and shared.
 * libjwt (Debian's 1.10, the default) verifies signatures in production, but
 * only behind our checks: on its own it accepts `alg: none` when given no
 * key, HS256 keyed with an RSA public key's PEM (algorithm confusion),
 * sloppy base64, and checks no time claims. So this module first parses
 * the token strictly, pins the algorithm to the mode and the key's type and
 * never hands libjwt an empty key (worker/jwt_libjwt.c); the claims libjwt
 * parses are thrown away and ours are checked (jwt_claims.c). The second
 * engine verifies the same signatures with OpenSSL 3 EVP directly; it exists
 * so that `rlsworker token verify --engine openssl` and the differential
 * tests can hold the two to the same verdict on every token.
 *
 * Rules (docs/tokens.md lists them for users):
 *   - token at most RW_JWT_MAX_TOKEN bytes, checked before any decoding;
 *     exactly three segments of canonical base64url (no padding, no '+', '/',
 *     whitespace; unused trailing bits zero);
 *   - header: JSON object without duplicate members; `typ` absent or "JWT";
 *     any `crit` refused; `jwk`, `jku`, `x5c`, `x5u` ignored (never used);
 *     `alg` exactly "RS256"/"ES256" (JWKS mode) or "HS256" (secret mode);
 *     JWKS mode needs a string `kid` naming a key of the set;
 *   - key binding: RS256 needs RSA >= 2048 bits, ES256 a P-256 key and a raw
 *     64-byte r||s signature; a JWK's `alg`, when present, equals the token's;
 *     `use` absent or "sig"; `key_ops`, when present, contains "verify";
 *   - signature length exact (HS256 32 bytes, RS256 the modulus size,
 *     ES256 64) before either engine sees it;
 *   - claims: JSON object, valid UTF-8, no duplicates, nothing after it, no
 *     NUL in any string; integer `exp` required, `nbf`/`iat` optional
 *     integers, leeway applied to all three; `iss`, `aud` when configured;
 *     `sub` a non-empty string of at most 255 bytes; canonical size at most
 *     claims_max_bytes. */
#ifndef RW_JWT_H
#define RW_JWT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "worker/base/base64.h"

#define RW_JWT_MAX_TOKEN 8192
#define RW_JWT_MAX_SUB 255
#define RW_JWT_MIN_SECRET 32
#define RW_JWT_MIN_RSA_BITS 2048

/* Why a token was refused. The strings (rw_jwt_reason_str) are stable: the
 * CLI prints them, the intake returns them and counts them in /metrics. */
enum rw_jwt_reason {
    RW_JWT_OK = 0,
    RW_JWT_TOO_LARGE,          /* "token too large" */
    RW_JWT_MALFORMED,          /* "malformed": segments or base64url */
    RW_JWT_BAD_HEADER,         /* "bad header": not an object, dup, typ */
    RW_JWT_ALG_NOT_ALLOWED,    /* "algorithm not allowed" */
    RW_JWT_CRIT,               /* "unsupported crit" */
    RW_JWT_MISSING_KID,        /* "missing kid" */
    RW_JWT_UNKNOWN_KID,        /* "unknown kid" */
    RW_JWT_KEY_MISMATCH,       /* "key mismatch": kty/crv/alg/use */
    RW_JWT_WEAK_KEY,           /* "weak key": RSA below 2048 bits */
    RW_JWT_BAD_SIGNATURE,      /* "bad signature" */
    RW_JWT_BAD_CLAIMS,         /* "bad claims": not an object, dup, UTF-8, NUL */
    RW_JWT_CLAIMS_TOO_LARGE,   /* "claims too large" */
    RW_JWT_MISSING_EXP,        /* "missing exp" */
    RW_JWT_BAD_TIME_CLAIM,     /* "bad time claim": exp/nbf/iat not integers */
    RW_JWT_EXPIRED,            /* "expired" */
    RW_JWT_NOT_YET_VALID,      /* "not yet valid": nbf */
    RW_JWT_IAT_FUTURE,         /* "issued in the future" */
    RW_JWT_BAD_ISSUER,         /* "bad issuer" */
    RW_JWT_BAD_AUDIENCE,       /* "bad audience" */
    RW_JWT_BAD_SUBJECT,        /* "bad subject" */
    RW_JWT_KEYS_UNAVAILABLE,   /* "keys unavailable": JWKS never fetched */
    RW_JWT_INTERNAL,           /* "internal error": out of memory etc. */
    RW_JWT_REASON_COUNT
};

/* Stable human string ("bad signature"); never NULL. */
const char *rw_jwt_reason_str(enum rw_jwt_reason r);
/* Same, as a metrics label value ("bad_signature"); never NULL. */
const char *rw_jwt_reason_label(enum rw_jwt_reason r);

enum rw_jwt_mode { RW_JWT_MODE_JWKS, RW_JWT_MODE_SECRET };

/* Who checks the signature once our checks passed (see above). */
enum rw_jwt_engine {
    RW_JWT_ENGINE_LIBJWT = 0,   /* default */
    RW_JWT_ENGINE_OPENSSL,      /* second implementation, for cross-checks */
};

struct rw_jwk_set;   /* worker/auth/jwk.h */

/* Everything rw_jwt_verify needs; all pointers borrowed. */
struct rw_jwt_params {
    enum rw_jwt_mode mode;
    const unsigned char *secret;    /* secret mode: >= RW_JWT_MIN_SECRET bytes */
    size_t secret_len;
    const struct rw_jwk_set *keys;  /* JWKS mode; NULL = no set fetched yet */
    const char *issuer;             /* NULL: `iss` not checked */
    const char *audience;           /* NULL: `aud` not checked */
    int leeway_s;
    size_t claims_max_bytes;        /* canonical JSON size limit; 0 = none */
    enum rw_jwt_engine engine;      /* zero: libjwt */
};

/* Verifies token[0..len) at wall-clock time `now`. On RW_JWT_OK *claims is
 * a new reference to the claims object (caller owns it); otherwise *claims
 * is NULL. The token is never logged. */
enum rw_jwt_reason rw_jwt_verify(const struct rw_jwt_params *p, const char *token,
                                 size_t len, time_t now, json_t **claims)
    __attribute__((warn_unused_result));

/* rw_b64url_decode and RW_B64URL_DECODED_MAX: worker/base/base64.h */

/* Checks the claim rules (exp/nbf/iat, iss, aud, sub, NUL) on a parsed
 * object. Exposed for unit tests; rw_jwt_verify calls it. */
enum rw_jwt_reason rw_jwt_check_claims(const struct rw_jwt_params *p,
                                       const json_t *claims, time_t now)
    __attribute__((warn_unused_result));

#endif
