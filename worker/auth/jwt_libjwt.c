/* libjwt engine; see jwt_libjwt.h. libjwt's <jwt.h> is included here only. */
#include "worker/auth/jwt_libjwt.h"

#include <errno.h>
#include <jansson.h>
#include <jwt.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

/* libjwt 1.10 loads the payload with json_loads(NUL-terminated, 0) before it
 * looks at the signature; predicts whether that load succeeds. */
static bool libjwt_loads_payload(const unsigned char *payload, size_t len)
{
    char *buf = malloc(len + 1);
    json_error_t jerr;
    json_t *j = NULL;

    if (!buf)
        return false;
    memcpy(buf, payload, len);
    buf[len] = '\0';
    j = json_loads(buf, 0, &jerr);
    OPENSSL_cleanse(buf, len);
    free(buf);
    json_decref(j);
    return j != NULL;
}

static bool pinned_alg(const char *alg, jwt_alg_t *out)
{
    *out = jwt_str_alg(alg);
    return *out == JWT_ALG_HS256 || *out == JWT_ALG_RS256 || *out == JWT_ALG_ES256;
}

enum rw_jwt_reason rw_libjwt_verify(const struct rw_libjwt_input *in)
{
    jwt_alg_t want;
    jwt_t *jwt = NULL;
    char *token;
    enum rw_jwt_reason result;

    if (!in->alg || !pinned_alg(in->alg, &want) || !in->key || in->key_len == 0 ||
        in->key_len > INT_MAX || !in->token || memchr(in->token, '\0', in->token_len))
        return RW_JWT_INTERNAL;     /* never an empty key, never alg none */
    if (!libjwt_loads_payload(in->payload, in->payload_len))
        return RW_JWT_BAD_CLAIMS;
    token = malloc(in->token_len + 1);
    if (!token)
        return RW_JWT_INTERNAL;
    memcpy(token, in->token, in->token_len);
    token[in->token_len] = '\0';
    int rc = jwt_decode(&jwt, token, in->key, (int)in->key_len);
    if (rc == 0)    /* it must have read the algorithm we pinned */
        result = jwt_get_alg(jwt) == want ? RW_JWT_OK : RW_JWT_ALG_NOT_ALLOWED;
    else
        result = rc == ENOMEM ? RW_JWT_INTERNAL : RW_JWT_BAD_SIGNATURE;
    jwt_free(jwt);
    OPENSSL_cleanse(token, in->token_len);
    free(token);
    return result;
}
