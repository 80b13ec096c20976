/* The libjwt engine: Debian's libjwt 1.10 checks a token's signature behind
 * the strict checks of worker/jwt.c. Only jwt.c calls it, and only after it
 * has decoded every segment strictly, parsed the header, pinned `alg` to the
 * mode and to the key's type, bound the key and checked the signature's
 * length: libjwt on its own would accept `alg: none` without a key and
 * HS256 keyed with an RSA PEM. libjwt's view of the claims is discarded;
 * jwt_claims.c checks ours. */
#ifndef RW_JWT_LIBJWT_H
#define RW_JWT_LIBJWT_H

#include <stddef.h>

#include "worker/auth/jwt.h"

/* All pointers borrowed. */
struct rw_libjwt_input {
    const char *alg;                /* "HS256", "RS256" or "ES256", pinned */
    const unsigned char *key;       /* HS256: the secret; else a PEM public key */
    size_t key_len;                 /* never 0 */
    const char *token;              /* "header.payload.signature", no NUL */
    size_t token_len;
    const unsigned char *payload;   /* the payload as jwt.c decoded it */
    size_t payload_len;
};

/* RW_JWT_OK when libjwt verified the signature; RW_JWT_BAD_SIGNATURE when it
 * refused it; RW_JWT_BAD_CLAIMS when the payload is not JSON that libjwt
 * can load: it loads the payload before it checks the signature, so such a
 * token gets no signature verdict from it. Our rules refuse every such
 * payload (not JSON, or a \u0000 in a string: libjwt loads without
 * JSON_ALLOW_NUL), and jwt.c then reports the claim rule that refuses it.
 * RW_JWT_INTERNAL on misuse or out of memory. */
enum rw_jwt_reason rw_libjwt_verify(const struct rw_libjwt_input *in)
    __attribute__((warn_unused_result));

#endif
