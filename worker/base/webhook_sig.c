/* Standard Webhooks signatures, verified by the intake and made by the
 * `http` built-in; see worker/webhook_sig.h. */
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "worker/base/base64.h"
#include "worker/base/webhook_sig.h"
#include "worker/base/webhook_sig.h"

#define SHA256_LEN 32

const char *rw_webhook_verdict_label(enum rw_webhook_verdict v)
{
    switch (v) {
    case RW_WEBHOOK_OK: return "ok";
    case RW_WEBHOOK_MISSING_HEADERS: return "missing_headers";
    case RW_WEBHOOK_BAD_TIMESTAMP: return "bad_timestamp";
    case RW_WEBHOOK_STALE: return "stale_timestamp";
    case RW_WEBHOOK_BAD_SIGNATURE: return "bad_signature";
    }
    return "unknown";
}

/* Strict standard base64 with padding (RFC 4648 §4). Returns the decoded
 * length, or -1 when malformed or longer than max. */
static int b64_decode(const char *in, size_t len, unsigned char *out, size_t max)
{
    size_t n;

    return rw_b64_decode(RW_B64_STD, in, len, out, max, &n) && n <= (size_t)INT32_MAX
           ? (int)n : -1;
}

int rw_webhook_key(const char *secret, unsigned char *key, size_t max)
{
    size_t n;

    if (!secret || !*secret)
        return -1;
    if (strncmp(secret, "whsec_", 6) == 0)
        return b64_decode(secret + 6, strlen(secret + 6), key, max);
    n = strlen(secret);
    if (n > max)
        return -1;
    memcpy(key, secret, n);
    return (int)n;
}

static int mac(const unsigned char *key, size_t keylen, const char *id, const char *ts,
               const char *body, size_t bodylen, unsigned char out[SHA256_LEN])
{
    EVP_MAC *m = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *c = m ? EVP_MAC_CTX_new(m) : NULL;
    OSSL_PARAM params[2] = {
        OSSL_PARAM_construct_utf8_string("digest", (char *)"SHA256", 0),
        OSSL_PARAM_construct_end(),
    };
    size_t outl = 0;
    int ok;

    ok = c && EVP_MAC_init(c, key, keylen, params) &&
         EVP_MAC_update(c, (const unsigned char *)id, strlen(id)) &&
         EVP_MAC_update(c, (const unsigned char *)".", 1) &&
         EVP_MAC_update(c, (const unsigned char *)ts, strlen(ts)) &&
         EVP_MAC_update(c, (const unsigned char *)".", 1) &&
         EVP_MAC_update(c, (const unsigned char *)body, bodylen) &&
         EVP_MAC_final(c, out, &outl, SHA256_LEN) && outl == SHA256_LEN;
    EVP_MAC_CTX_free(c);
    EVP_MAC_free(m);
    return ok ? 0 : -1;
}

int rw_webhook_sign(const unsigned char *key, size_t keylen, const char *id,
                    const char *timestamp, const char *body, size_t bodylen,
                    char *out, size_t outlen)
{
    unsigned char m[SHA256_LEN];

    if (outlen < RW_WEBHOOK_SIG_LEN || mac(key, keylen, id, timestamp, body, bodylen, m) < 0)
        return -1;
    memcpy(out, "v1,", 3);
    EVP_EncodeBlock((unsigned char *)out + 3, m, SHA256_LEN);
    return 0;
}

static bool parse_timestamp(const char *ts, long long *out)
{
    long long v = 0;

    if (!*ts || strlen(ts) > 18)
        return false;
    for (const char *p = ts; *p; p++) {
        if (*p < '0' || *p > '9')
            return false;
        v = v * 10 + (*p - '0');
    }
    *out = v;
    return true;
}

/* True when one "v1,<base64>" entry of the header equals want. Every entry
 * is decoded and compared in constant time (no early exit on a match). */
static bool any_signature_matches(const char *sigs, const unsigned char want[SHA256_LEN])
{
    bool match = false;
    const char *p = sigs;

    while (*p) {
        const char *e;
        unsigned char got[SHA256_LEN + 3];

        while (*p == ' ')
            p++;
        e = p;
        while (*e && *e != ' ')
            e++;
        if (e - p > 3 && strncmp(p, "v1,", 3) == 0 &&
            b64_decode(p + 3, (size_t)(e - p - 3), got, sizeof got) == SHA256_LEN &&
            CRYPTO_memcmp(got, want, SHA256_LEN) == 0)
            match = true;
        p = e;
    }
    return match;
}

enum rw_webhook_verdict rw_webhook_verify(const unsigned char *key, size_t keylen,
                                          const char *id, const char *timestamp,
                                          const char *signatures, const char *body,
                                          size_t bodylen, time_t now, int tolerance_s)
{
    unsigned char want[SHA256_LEN];
    long long ts;

    if (!id || !timestamp || !signatures || !*id || strlen(id) > RW_WEBHOOK_ID_MAX ||
        !*signatures || strlen(signatures) > RW_WEBHOOK_SIG_HEADER_MAX)
        return RW_WEBHOOK_MISSING_HEADERS;
    if (!parse_timestamp(timestamp, &ts))
        return RW_WEBHOOK_BAD_TIMESTAMP;
    if (ts < (long long)now - tolerance_s || ts > (long long)now + tolerance_s)
        return RW_WEBHOOK_STALE;
    if (mac(key, keylen, id, timestamp, body, bodylen, want) < 0)
        return RW_WEBHOOK_BAD_SIGNATURE;
    return any_signature_matches(signatures, want) ? RW_WEBHOOK_OK : RW_WEBHOOK_BAD_SIGNATURE;
}
