/* JWK set → OpenSSL 3 EVP_PKEY; see jwk.h for what is kept. */
#include "worker/auth/jwk.h"

#include <jansson.h>
#include <openssl/core_names.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "worker/auth/jwt.h"
#include "worker/base/log.h"

#define MAX_COMPONENT (RW_JWK_MAX_RSA_BITS / 8 + 1)

/* Decodes member `name` (strict base64url) into buf; returns its length or
 * -1 when absent, not a string, empty or too long. */
static int member_bytes(const json_t *jwk, const char *name, unsigned char *buf,
                        size_t cap)
{
    const json_t *v = json_object_get(jwk, name);
    size_t n = 0;

    if (!json_is_string(v) || json_string_length(v) == 0 ||
        !rw_b64url_decode(json_string_value(v), json_string_length(v), buf, cap, &n))
        return -1;
    return (int)n;
}

static EVP_PKEY *pkey_fromdata(const char *type, OSSL_PARAM_BLD *bld)
{
    OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
    EVP_PKEY *pkey = NULL;

    if (!params || !ctx || EVP_PKEY_fromdata_init(ctx) != 1 ||
        EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1)
        pkey = NULL;
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    if (pkey) {             /* the point is on the curve, the modulus sane */
        EVP_PKEY_CTX *chk = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
        if (!chk || EVP_PKEY_public_check(chk) != 1) {
            EVP_PKEY_free(pkey);
            pkey = NULL;
        }
        EVP_PKEY_CTX_free(chk);
    }
    return pkey;
}

static EVP_PKEY *rsa_from_jwk(const json_t *jwk)
{
    unsigned char n[MAX_COMPONENT], e[16];
    int nlen = member_bytes(jwk, "n", n, sizeof n);
    int elen = member_bytes(jwk, "e", e, sizeof e);
    OSSL_PARAM_BLD *bld;
    BIGNUM *bn_n = NULL, *bn_e = NULL;
    EVP_PKEY *pkey = NULL;

    if (nlen < 0 || elen < 0)
        return NULL;
    bld = OSSL_PARAM_BLD_new();
    bn_n = BN_bin2bn(n, nlen, NULL);
    bn_e = BN_bin2bn(e, elen, NULL);
    if (bld && bn_n && bn_e && BN_num_bits(bn_n) <= RW_JWK_MAX_RSA_BITS &&
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn_n) == 1 &&
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, bn_e) == 1)
        pkey = pkey_fromdata("RSA", bld);
    BN_free(bn_n);
    BN_free(bn_e);
    OSSL_PARAM_BLD_free(bld);
    return pkey;
}

static EVP_PKEY *ec_from_jwk(const json_t *jwk, enum rw_jwk_kind *kind)
{
    const char *crv = json_string_value(json_object_get(jwk, "crv"));
    unsigned char x[66], y[66], point[1 + 2 * 66];
    const char *group;
    int size;
    EVP_PKEY *pkey = NULL;

    if (crv && strcmp(crv, "P-256") == 0) {
        group = "prime256v1", size = 32, *kind = RW_JWK_EC_P256;
    } else if (crv && strcmp(crv, "P-384") == 0) {
        group = "secp384r1", size = 48, *kind = RW_JWK_EC_P384;
    } else {
        return NULL;
    }
    if (member_bytes(jwk, "x", x, sizeof x) != size ||
        member_bytes(jwk, "y", y, sizeof y) != size)
        return NULL;
    point[0] = 0x04;            /* uncompressed point */
    memcpy(point + 1, x, (size_t)size);
    memcpy(point + 1 + size, y, (size_t)size);
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    if (bld &&
        OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, group, 0) == 1 &&
        OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point,
                                         1 + 2 * (size_t)size) == 1)
        pkey = pkey_fromdata("EC", bld);
    OSSL_PARAM_BLD_free(bld);
    return pkey;
}

/* `use` absent or "sig"; `key_ops` absent or an array holding "verify". */
static bool jwk_for_signing(const json_t *jwk)
{
    const json_t *use = json_object_get(jwk, "use");
    const json_t *ops = json_object_get(jwk, "key_ops");
    size_t i;
    json_t *op;
    bool verify = false;

    if (use && !(json_is_string(use) && strcmp(json_string_value(use), "sig") == 0))
        return false;
    if (!ops)
        return true;
    if (!json_is_array(ops))
        return false;
    json_array_foreach(ops, i, op)
        if (json_is_string(op) && strcmp(json_string_value(op), "verify") == 0)
            verify = true;
    return verify;
}

/* The public key as a PEM string (libjwt takes keys only as PEM). Returns a
 * new NUL-terminated string and its length, or NULL. */
static char *pkey_to_pem(EVP_PKEY *pkey, size_t *len)
{
    BIO *bio = BIO_new(BIO_s_mem());
    char *data = NULL, *pem = NULL;
    long n;

    if (bio && PEM_write_bio_PUBKEY(bio, pkey) == 1 &&
        (n = BIO_get_mem_data(bio, &data)) > 0 && (pem = malloc((size_t)n + 1))) {
        memcpy(pem, data, (size_t)n);
        pem[n] = '\0';
        *len = (size_t)n;
    }
    BIO_free(bio);
    return pem;
}

/* Fills k from one JWK; returns false (k untouched) when the key is skipped. */
static bool jwk_parse_one(const json_t *jwk, struct rw_jwk *k)
{
    const json_t *kid = json_object_get(jwk, "kid");
    const json_t *alg = json_object_get(jwk, "alg");
    const char *kty = json_string_value(json_object_get(jwk, "kty"));
    EVP_PKEY *pkey = NULL;
    enum rw_jwk_kind kind = RW_JWK_RSA;

    if (!json_is_object(jwk) || !kty || !json_is_string(kid) ||
        json_string_length(kid) == 0 || json_string_length(kid) > RW_JWK_MAX_KID ||
        strlen(json_string_value(kid)) != json_string_length(kid) ||
        (alg && !json_is_string(alg)))
        return false;
    if (strcmp(kty, "RSA") == 0)
        pkey = rsa_from_jwk(jwk);
    else if (strcmp(kty, "EC") == 0)
        pkey = ec_from_jwk(jwk, &kind);
    if (!pkey) {
        rw_debug("jwks: skipping key \"%.64s\" (kty %.16s): unsupported or malformed",
                 json_string_value(kid), kty);
        return false;
    }
    k->kid = strdup(json_string_value(kid));
    k->alg = alg ? strdup(json_string_value(alg)) : NULL;
    k->pem = pkey_to_pem(pkey, &k->pem_len);
    if (!k->kid || (alg && !k->alg) || !k->pem) {
        free(k->kid);
        free(k->alg);
        free(k->pem);
        EVP_PKEY_free(pkey);
        return false;
    }
    k->kind = kind;
    k->for_signing = jwk_for_signing(jwk);
    k->bits = EVP_PKEY_get_bits(pkey);
    k->pkey = pkey;
    return true;
}

int rw_jwk_set_parse(const char *json, size_t len, struct rw_jwk_set **out,
                     char *err, size_t errlen)
{
    json_error_t jerr;
    json_t *doc = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    const json_t *keys = json_object_get(doc, "keys");
    struct rw_jwk_set *set;
    size_t i;
    json_t *jwk;

    *out = NULL;
    if (!json_is_array(keys)) {
        snprintf(err, errlen, "%s", doc ? "JWKS has no \"keys\" array"
                                        : "JWKS is not valid JSON");
        json_decref(doc);
        return -1;
    }
    set = calloc(1, sizeof *set);
    size_t cap = json_array_size(keys) < RW_JWK_MAX_KEYS ? json_array_size(keys)
                                                          : RW_JWK_MAX_KEYS;
    if (!set || !(set->keys = calloc(cap ? cap : 1, sizeof *set->keys))) {
        free(set);
        json_decref(doc);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    json_array_foreach(keys, i, jwk) {
        if (set->n == cap)
            break;
        const char *kid = json_string_value(json_object_get(jwk, "kid"));
        if (kid && rw_jwk_set_find(set, kid))
            continue;           /* a repeated kid: the first one wins */
        if (jwk_parse_one(jwk, &set->keys[set->n]))
            set->n++;
    }
    json_decref(doc);
    *out = set;
    return 0;
}

void rw_jwk_set_free(struct rw_jwk_set **set)
{
    if (!*set)
        return;
    for (size_t i = 0; i < (*set)->n; i++) {
        free((*set)->keys[i].kid);
        free((*set)->keys[i].alg);
        free((*set)->keys[i].pem);
        EVP_PKEY_free((*set)->keys[i].pkey);
    }
    free((*set)->keys);
    free(*set);
    *set = NULL;
}

const struct rw_jwk *rw_jwk_set_find(const struct rw_jwk_set *set, const char *kid)
{
    if (!set || !kid)
        return NULL;
    for (size_t i = 0; i < set->n; i++)
        if (strcmp(set->keys[i].kid, kid) == 0)
            return &set->keys[i];
    return NULL;
}
