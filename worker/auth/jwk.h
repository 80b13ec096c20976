/* JSON Web Key sets (RFC 7517) turned into OpenSSL 3 public keys.
 *
 * Only public signature keys that rlsworker can use are kept: kty "RSA"
 * (n, e; at most RW_JWK_MAX_RSA_BITS) and kty "EC" with crv P-256 or P-384
 * (x, y of the exact field size, point checked on the curve). Keys without
 * a string `kid`, other kty/crv values ("oct" keys in particular: a JWKS never
 * supplies an HMAC secret) and malformed keys are skipped with a debug line.
 * A key whose kid repeats an earlier one is skipped too (first one wins).
 * Weak RSA keys and P-384 keys are kept so that a token naming them is
 * refused for the right reason ("weak key", "key mismatch") instead of
 * "unknown kid". */
#ifndef RW_JWK_H
#define RW_JWK_H

#include <openssl/evp.h>
#include <stdbool.h>
#include <stddef.h>

#define RW_JWK_MAX_KEYS 64
#define RW_JWK_MAX_RSA_BITS 8192
#define RW_JWK_MAX_KID 256

enum rw_jwk_kind { RW_JWK_RSA, RW_JWK_EC_P256, RW_JWK_EC_P384 };

struct rw_jwk {
    char *kid;           /* owned */
    char *alg;           /* owned; NULL when the JWK has no `alg` */
    enum rw_jwk_kind kind;
    bool for_signing;    /* `use` absent or "sig", `key_ops` absent or has "verify" */
    int bits;            /* key size (modulus bits for RSA) */
    EVP_PKEY *pkey;      /* owned public key */
    char *pem;           /* owned: the same key as a SubjectPublicKeyInfo PEM,
                          * NUL-terminated, for libjwt (worker/jwt_libjwt.c) */
    size_t pem_len;      /* bytes of pem without the NUL */
};

struct rw_jwk_set {
    struct rw_jwk *keys; /* owned array of n keys */
    size_t n;
};

/* Parses a JWKS document {"keys": [...]} of len bytes. Returns 0 and a new
 * set in *out (caller frees with rw_jwk_set_free; it may hold zero keys), or
 * -1 with err filled when the document itself is unusable. */
int rw_jwk_set_parse(const char *json, size_t len, struct rw_jwk_set **out,
                     char *err, size_t errlen) __attribute__((warn_unused_result));

void rw_jwk_set_free(struct rw_jwk_set **set);

/* The key named kid (borrowed from set), or NULL. */
const struct rw_jwk *rw_jwk_set_find(const struct rw_jwk_set *set, const char *kid);

#endif
