/* libFuzzer target for the token verifier: the input is the token. The
 * verifier runs in both modes, against a secret and against a small JWK set
 * (built once) so that header parsing, key binding and signature checks all
 * see hostile bytes. The first input byte also picks a JWKS document variant
 * fuzzed through rw_jwk_set_parse. A second pass treats the input as
 * "header.payload" and appends a valid HS256 signature, so the header and
 * claims rules behind the signature check see hostile bytes too.
 *
 * Every verification runs through both signature engines (libjwt behind our
 * checks, and our own OpenSSL code), which must agree: the same acceptance
 * and claims always, and the same reason except where libjwt could not load
 * the payload and so gave no signature verdict (worker/jwt_libjwt.h): there
 * the OpenSSL engine may say "bad signature" where libjwt's path names the
 * claim rule that refuses the token. */
#include <stdbool.h>
#include <stddef.h>
#include <openssl/hmac.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "worker/auth/jwk.h"
#include "worker/auth/jwt.h"

static const char jwks[] =
    "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"ec\","
    "\"x\":\"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU\","
    "\"y\":\"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0\"},"
    "{\"kty\":\"RSA\",\"kid\":\"rsa\",\"e\":\"AQAB\",\"n\":"
    "\"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw\"}]}";

static size_t b64url(const unsigned char *in, size_t len, char *out)
{
    static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t o = 0;
    unsigned long acc = 0;
    int bits = 0;

    for (size_t i = 0; i < len; i++) {
        acc = (acc << 8) | in[i];
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            out[o++] = a[(acc >> bits) & 63];
        }
    }
    if (bits > 0)
        out[o++] = a[(acc << (6 - bits)) & 63];
    return o;
}

static bool claims_reason(enum rw_jwt_reason r)
{
    return r >= RW_JWT_BAD_CLAIMS && r <= RW_JWT_BAD_SUBJECT;
}

/* Verifies with both engines and traps on any disagreement. */
static void verify_both(struct rw_jwt_params *p, const char *t, size_t len)
{
    json_t *c1 = NULL, *c2 = NULL;

    p->engine = RW_JWT_ENGINE_LIBJWT;
    enum rw_jwt_reason r1 = rw_jwt_verify(p, t, len, 1700000000, &c1);
    p->engine = RW_JWT_ENGINE_OPENSSL;
    enum rw_jwt_reason r2 = rw_jwt_verify(p, t, len, 1700000000, &c2);
    if ((r1 == RW_JWT_OK) != (c1 != NULL) || (r2 == RW_JWT_OK) != (c2 != NULL) ||
        r1 >= RW_JWT_REASON_COUNT || (r1 == RW_JWT_OK) != (r2 == RW_JWT_OK) ||
        (c1 && !json_equal(c1, c2)) ||
        (r1 != r2 && !(r2 == RW_JWT_BAD_SIGNATURE && claims_reason(r1))))
        __builtin_trap();
    json_decref(c1);
    json_decref(c2);
}

/* Verifies data + "." + HS256(data): everything behind the signature. */
static void signed_pass(struct rw_jwt_params *p, const uint8_t *data, size_t size,
                        const char *secret)
{
    unsigned char mac[32];
    unsigned int n = 0;
    char *t;

    if (size > RW_JWT_MAX_TOKEN || !(t = malloc(size + 48)))
        return;
    HMAC(EVP_sha256(), secret, (int)strlen(secret), data, size, mac, &n);
    memcpy(t, data, size);
    t[size] = '.';
    size_t len = size + 1 + b64url(mac, n, t + size + 1);
    verify_both(p, t, len);
    free(t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct rw_jwk_set *set;
    static const char secret[] = "fuzzing-secret-fuzzing-secret-0123456789";
    char err[128];

    if (!set && rw_jwk_set_parse(jwks, sizeof jwks - 1, &set, err, sizeof err) != 0)
        __builtin_trap();
    struct rw_jwt_params p = {
        .mode = RW_JWT_MODE_SECRET,
        .secret = (const unsigned char *)secret,
        .secret_len = sizeof secret - 1,
        .issuer = "https://iss",
        .audience = "api",
        .leeway_s = 30,
        .claims_max_bytes = 4096,
    };
    verify_both(&p, (const char *)data, size);
    signed_pass(&p, data, size, secret);

    p.mode = RW_JWT_MODE_JWKS;
    p.keys = set;
    verify_both(&p, (const char *)data, size);

    struct rw_jwk_set *s = NULL;
    if (size < 65536 && rw_jwk_set_parse((const char *)data, size, &s, err, sizeof err) == 0)
        rw_jwk_set_free(&s);
    return 0;
}
