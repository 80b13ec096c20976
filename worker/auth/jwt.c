/* Strict JWT parsing and signature verification; see jwt.h for the rules.
 * Order of checks: size, segments and base64url, header, algorithm, key
 * choice and binding, signature length, signature (libjwt or OpenSSL), then
 * claims (jwt_claims.c). Our claim rules run only after the signature
 * holds. */
#include "worker/auth/jwt.h"

#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/hmac.h>
#include <openssl/rsa.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "worker/auth/jwk.h"
#include "worker/auth/jwt_libjwt.h"

static const struct {
    const char *str;
    const char *label;
} reasons[RW_JWT_REASON_COUNT] = {
    [RW_JWT_OK] = {"ok", "ok"},
    [RW_JWT_TOO_LARGE] = {"token too large", "token_too_large"},
    [RW_JWT_MALFORMED] = {"malformed", "malformed"},
    [RW_JWT_BAD_HEADER] = {"bad header", "bad_header"},
    [RW_JWT_ALG_NOT_ALLOWED] = {"algorithm not allowed", "algorithm_not_allowed"},
    [RW_JWT_CRIT] = {"unsupported crit", "unsupported_crit"},
    [RW_JWT_MISSING_KID] = {"missing kid", "missing_kid"},
    [RW_JWT_UNKNOWN_KID] = {"unknown kid", "unknown_kid"},
    [RW_JWT_KEY_MISMATCH] = {"key mismatch", "key_mismatch"},
    [RW_JWT_WEAK_KEY] = {"weak key", "weak_key"},
    [RW_JWT_BAD_SIGNATURE] = {"bad signature", "bad_signature"},
    [RW_JWT_BAD_CLAIMS] = {"bad claims", "bad_claims"},
    [RW_JWT_CLAIMS_TOO_LARGE] = {"claims too large", "claims_too_large"},
    [RW_JWT_MISSING_EXP] = {"missing exp", "missing_exp"},
    [RW_JWT_BAD_TIME_CLAIM] = {"bad time claim", "bad_time_claim"},
    [RW_JWT_EXPIRED] = {"expired", "expired"},
    [RW_JWT_NOT_YET_VALID] = {"not yet valid", "not_yet_valid"},
    [RW_JWT_IAT_FUTURE] = {"issued in the future", "issued_in_the_future"},
    [RW_JWT_BAD_ISSUER] = {"bad issuer", "bad_issuer"},
    [RW_JWT_BAD_AUDIENCE] = {"bad audience", "bad_audience"},
    [RW_JWT_BAD_SUBJECT] = {"bad subject", "bad_subject"},
    [RW_JWT_KEYS_UNAVAILABLE] = {"keys unavailable", "keys_unavailable"},
    [RW_JWT_INTERNAL] = {"internal error", "internal_error"},
};

const char *rw_jwt_reason_str(enum rw_jwt_reason r)
{
    if ((int)r < 0 || r >= RW_JWT_REASON_COUNT)
        return "internal error";
    return reasons[r].str;
}

const char *rw_jwt_reason_label(enum rw_jwt_reason r)
{
    if ((int)r < 0 || r >= RW_JWT_REASON_COUNT)
        return "internal_error";
    return reasons[r].label;
}

/* A token split into its three segments, each decoded. */
struct jwt_parts {
    const char *seg[3];
    size_t seglen[3];
    size_t signed_len;          /* bytes of "header.payload" */
    unsigned char header[RW_B64URL_DECODED_MAX(RW_JWT_MAX_TOKEN)];
    unsigned char payload[RW_B64URL_DECODED_MAX(RW_JWT_MAX_TOKEN)];
    unsigned char sig[RW_B64URL_DECODED_MAX(RW_JWT_MAX_TOKEN)];
    size_t header_len, payload_len, sig_len;
};

static enum rw_jwt_reason split_token(const char *token, size_t len, struct jwt_parts *pt)
{
    size_t start = 0;
    int n = 0;

    for (size_t i = 0; i <= len; i++) {
        if (i < len && token[i] != '.')
            continue;
        if (n == 3)
            return RW_JWT_MALFORMED;        /* a fourth segment */
        pt->seg[n] = token + start;
        pt->seglen[n] = i - start;
        n++;
        start = i + 1;
    }
    if (n != 3 || pt->seglen[0] == 0 || pt->seglen[1] == 0)
        return RW_JWT_MALFORMED;
    pt->signed_len = pt->seglen[0] + 1 + pt->seglen[1];
    if (!rw_b64url_decode(pt->seg[0], pt->seglen[0], pt->header, sizeof pt->header,
                          &pt->header_len) ||
        !rw_b64url_decode(pt->seg[1], pt->seglen[1], pt->payload, sizeof pt->payload,
                          &pt->payload_len) ||
        !rw_b64url_decode(pt->seg[2], pt->seglen[2], pt->sig, sizeof pt->sig,
                          &pt->sig_len))
        return RW_JWT_MALFORMED;
    return RW_JWT_OK;
}

struct jwt_header {
    char alg[8];                /* "RS256", "ES256" or "HS256" */
    const char *kid;            /* borrowed from the json, or NULL */
};

static enum rw_jwt_reason check_alg(const struct rw_jwt_params *p, const json_t *alg,
                                    struct jwt_header *h)
{
    const char *a = json_string_value(alg);

    if (!a)
        return json_is_null(alg) || !alg ? RW_JWT_ALG_NOT_ALLOWED : RW_JWT_BAD_HEADER;
    if (strlen(a) != json_string_length(alg))
        return RW_JWT_ALG_NOT_ALLOWED;
    if (p->mode == RW_JWT_MODE_SECRET ? strcmp(a, "HS256") != 0
                                      : strcmp(a, "RS256") != 0 && strcmp(a, "ES256") != 0)
        return RW_JWT_ALG_NOT_ALLOWED;
    snprintf(h->alg, sizeof h->alg, "%s", a);
    return RW_JWT_OK;
}

/* Parses and checks the header; on success *root owns the JSON that h
 * borrows from. */
static enum rw_jwt_reason parse_header(const struct rw_jwt_params *p,
                                       const struct jwt_parts *pt, json_t **root,
                                       struct jwt_header *h)
{
    json_error_t jerr;
    json_t *hdr = json_loadb((const char *)pt->header, pt->header_len,
                             JSON_REJECT_DUPLICATES, &jerr);
    enum rw_jwt_reason r;

    if (!json_is_object(hdr)) {
        json_decref(hdr);
        return RW_JWT_BAD_HEADER;
    }
    *root = hdr;
    const json_t *typ = json_object_get(hdr, "typ");
    if (typ && !(json_is_string(typ) && strcmp(json_string_value(typ), "JWT") == 0 &&
                 json_string_length(typ) == 3))
        return RW_JWT_BAD_HEADER;
    r = check_alg(p, json_object_get(hdr, "alg"), h);
    if (r != RW_JWT_OK)
        return r;
    if (json_object_get(hdr, "crit"))
        return RW_JWT_CRIT;
    const json_t *kid = json_object_get(hdr, "kid");
    h->kid = NULL;
    if (p->mode == RW_JWT_MODE_JWKS) {
        if (!json_is_string(kid))
            return RW_JWT_MISSING_KID;
        if (json_string_length(kid) == 0 || json_string_length(kid) > RW_JWK_MAX_KID ||
            strlen(json_string_value(kid)) != json_string_length(kid))
            return RW_JWT_UNKNOWN_KID;
        h->kid = json_string_value(kid);
    }
    return RW_JWT_OK;
}

/* Picks the JWK for the header and checks that it may verify this alg. */
static enum rw_jwt_reason bind_key(const struct rw_jwt_params *p, const struct jwt_header *h,
                                   const struct rw_jwk **out)
{
    if (!p->keys)
        return RW_JWT_KEYS_UNAVAILABLE;
    const struct rw_jwk *k = rw_jwk_set_find(p->keys, h->kid);
    if (!k)
        return RW_JWT_UNKNOWN_KID;
    if (!k->for_signing || (k->alg && strcmp(k->alg, h->alg) != 0))
        return RW_JWT_KEY_MISMATCH;
    if (strcmp(h->alg, "RS256") == 0) {
        if (k->kind != RW_JWK_RSA)
            return RW_JWT_KEY_MISMATCH;
        if (k->bits < RW_JWT_MIN_RSA_BITS)
            return RW_JWT_WEAK_KEY;
    } else if (k->kind != RW_JWK_EC_P256) {
        return RW_JWT_KEY_MISMATCH;
    }
    *out = k;
    return RW_JWT_OK;
}

/* OpenSSL engine, HS256; the caller checked the key and the length. */
static enum rw_jwt_reason verify_hs256(const struct rw_jwt_params *p,
                                       const struct jwt_parts *pt)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;

    if (!HMAC(EVP_sha256(), p->secret, (int)p->secret_len,
              (const unsigned char *)pt->seg[0], pt->signed_len, mac, &maclen))
        return RW_JWT_INTERNAL;
    if (pt->sig_len != maclen || CRYPTO_memcmp(mac, pt->sig, maclen) != 0)
        return RW_JWT_BAD_SIGNATURE;
    return RW_JWT_OK;
}

/* Raw r||s (32 + 32 bytes) to DER for EVP. Returns DER length or -1. */
static int es256_to_der(const unsigned char *raw, unsigned char **der)
{
    ECDSA_SIG *sig = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(raw, 32, NULL), *s = BN_bin2bn(raw + 32, 32, NULL);
    int n = -1;

    if (sig && r && s && ECDSA_SIG_set0(sig, r, s) == 1) {
        r = s = NULL;           /* now owned by sig */
        *der = NULL;
        n = i2d_ECDSA_SIG(sig, der);
    }
    BN_free(r);
    BN_free(s);
    ECDSA_SIG_free(sig);
    return n;
}

/* OpenSSL engine, RS256/ES256; the caller bound the key and checked the
 * signature's length. */
static enum rw_jwt_reason verify_pkey(const struct rw_jwk *k, const char *alg,
                                      const struct jwt_parts *pt)
{
    unsigned char *der = NULL;
    const unsigned char *sig = pt->sig;
    size_t siglen = pt->sig_len;
    enum rw_jwt_reason result = RW_JWT_INTERNAL;
    EVP_PKEY_CTX *pctx = NULL;

    if (strcmp(alg, "ES256") == 0) {
        int n = es256_to_der(pt->sig, &der);
        if (n < 0)
            return RW_JWT_INTERNAL;
        sig = der;
        siglen = (size_t)n;
    }
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (md && EVP_DigestVerifyInit(md, &pctx, EVP_sha256(), NULL, k->pkey) == 1 &&
        (k->kind != RW_JWK_RSA || EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) == 1)) {
        int ok = EVP_DigestVerify(md, sig, siglen, (const unsigned char *)pt->seg[0],
                                  pt->signed_len);
        result = ok == 1 ? RW_JWT_OK : RW_JWT_BAD_SIGNATURE;
    }
    EVP_MD_CTX_free(md);
    OPENSSL_free(der);
    return result;
}

static enum rw_jwt_reason parse_claims(const struct rw_jwt_params *p,
                                       const struct jwt_parts *pt, time_t now,
                                       json_t **claims);

/* libjwt engine: hands it the token with the pinned algorithm and a key
 * that is never empty (the secret, or the JWK as PEM). */
static enum rw_jwt_reason verify_libjwt(const struct rw_jwt_params *p,
                                        const struct jwt_parts *pt,
                                        const struct jwt_header *h, const struct rw_jwk *k,
                                        time_t now)
{
    struct rw_libjwt_input in = {
        .alg = h->alg,
        .key = k ? (const unsigned char *)k->pem : p->secret,
        .key_len = k ? k->pem_len : p->secret_len,
        .token = pt->seg[0],
        .token_len = pt->signed_len + 1 + pt->seglen[2],
        .payload = pt->payload,
        .payload_len = pt->payload_len,
    };
    enum rw_jwt_reason r = rw_libjwt_verify(&in);
    json_t *claims = NULL;

    if (r != RW_JWT_BAD_CLAIMS)
        return r;
    /* libjwt could not load the payload (a \u0000 in a string, or not JSON)
     * and so gave no signature verdict. The token is refused either way;
     * our claim rules say why, as the OpenSSL engine does for a token whose
     * signature holds. */
    r = parse_claims(p, pt, now, &claims);
    json_decref(claims);
    return r == RW_JWT_OK ? RW_JWT_BAD_CLAIMS : r;
}

/* Binds the key, checks the signature's length, then lets the engine
 * verify it. */
static enum rw_jwt_reason check_signature(const struct rw_jwt_params *p,
                                          const struct jwt_parts *pt,
                                          const struct jwt_header *h, time_t now)
{
    const struct rw_jwk *k = NULL;
    enum rw_jwt_reason r;
    size_t want;

    if (p->mode == RW_JWT_MODE_SECRET) {
        if (!p->secret || p->secret_len < RW_JWT_MIN_SECRET)
            return RW_JWT_INTERNAL;     /* never verify with an empty key */
        want = 32;
    } else {
        r = bind_key(p, h, &k);
        if (r != RW_JWT_OK)
            return r;
        want = strcmp(h->alg, "ES256") == 0 ? 64 : (size_t)EVP_PKEY_get_size(k->pkey);
    }
    if (pt->sig_len != want)
        return RW_JWT_BAD_SIGNATURE;
    if (p->engine == RW_JWT_ENGINE_OPENSSL)
        return k ? verify_pkey(k, h->alg, pt) : verify_hs256(p, pt);
    return verify_libjwt(p, pt, h, k, now);
}

static enum rw_jwt_reason parse_claims(const struct rw_jwt_params *p,
                                       const struct jwt_parts *pt, time_t now,
                                       json_t **claims)
{
    json_error_t jerr;
    json_t *c = json_loadb((const char *)pt->payload, pt->payload_len,
                           JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
    enum rw_jwt_reason r;

    if (!json_is_object(c)) {
        json_decref(c);
        return RW_JWT_BAD_CLAIMS;
    }
    r = rw_jwt_check_claims(p, c, now);
    if (r == RW_JWT_OK && p->claims_max_bytes > 0) {
        size_t size = json_dumpb(c, NULL, 0, JSON_COMPACT | JSON_SORT_KEYS);
        if (size == 0 || size > p->claims_max_bytes)
            r = RW_JWT_CLAIMS_TOO_LARGE;
    }
    if (r != RW_JWT_OK) {
        json_decref(c);
        return r;
    }
    *claims = c;
    return RW_JWT_OK;
}

enum rw_jwt_reason rw_jwt_verify(const struct rw_jwt_params *p, const char *token,
                                 size_t len, time_t now, json_t **claims)
{
    struct jwt_parts *pt;
    struct jwt_header h;
    json_t *hdr = NULL;
    enum rw_jwt_reason r;

    *claims = NULL;
    if (len > RW_JWT_MAX_TOKEN)
        return RW_JWT_TOO_LARGE;
    if (!token)
        return RW_JWT_MALFORMED;
    pt = malloc(sizeof *pt);
    if (!pt)
        return RW_JWT_INTERNAL;
    r = split_token(token, len, pt);
    if (r == RW_JWT_OK)
        r = parse_header(p, pt, &hdr, &h);
    if (r == RW_JWT_OK)
        r = check_signature(p, pt, &h, now);
    if (r == RW_JWT_OK)
        r = parse_claims(p, pt, now, claims);
    json_decref(hdr);
    OPENSSL_cleanse(pt, sizeof *pt);
    free(pt);
    return r;
}
