/* Unit tests of the pure JWT layer (worker/auth/jwt.c, jwt_claims.c, jwk.c,
 * jwt_libjwt.c): strict base64url, header and claim rules, JWK parsing and
 * key binding, each verdict from both signature engines.
 * Keys are generated here with OpenSSL; tokens are minted by hand. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "worker/auth/jwk.h"
#include "worker/auth/jwt.h"
#include "worker/auth/jwt_libjwt.h"

#define NOW 1700000000
static const char SECRET[] = "0123456789abcdef0123456789abcdef-test";

/* ------------------------------------------------------------ helpers */

static void b64url(const unsigned char *in, size_t len, char *out)
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
    out[o] = '\0';
}

static void b64s(const char *s, char *out)
{
    b64url((const unsigned char *)s, strlen(s), out);
}

/* Signs "h.p" with alg; key is the HMAC secret or an EVP_PKEY. */
static char *mint(const char *header, const char *payload, const char *alg, const void *key)
{
    char *t = malloc(16384), sigb[1024];
    unsigned char sig[1024];
    size_t siglen = sizeof sig;

    b64s(header, t);
    strcat(t, ".");
    b64s(payload, t + strlen(t));
    if (strcmp(alg, "HS256") == 0) {
        unsigned int n = 0;
        HMAC(EVP_sha256(), key, (int)strlen(key), (unsigned char *)t, strlen(t), sig, &n);
        siglen = n;
    } else if (strcmp(alg, "none") == 0) {
        siglen = 0;
    } else {
        EVP_MD_CTX *md = EVP_MD_CTX_new();
        assert_int_equal(EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, (EVP_PKEY *)key), 1);
        assert_int_equal(EVP_DigestSign(md, sig, &siglen, (unsigned char *)t, strlen(t)), 1);
        EVP_MD_CTX_free(md);
        if (strcmp(alg, "ES256") == 0) {    /* DER → raw r||s */
            const unsigned char *p = sig;
            ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)siglen);
            assert_non_null(es);
            BN_bn2binpad(ECDSA_SIG_get0_r(es), sig, 32);
            BN_bn2binpad(ECDSA_SIG_get0_s(es), sig + 32, 32);
            ECDSA_SIG_free(es);
            siglen = 64;
        }
    }
    b64url(sig, siglen, sigb);
    strcat(t, ".");
    strcat(t, sigb);
    return t;
}

static char *claims_json(const char *extra)
{
    char *c = malloc(1024);
    snprintf(c, 1024, "{\"sub\":\"user-1\",\"exp\":%d%s%s}", NOW + 300,
             extra && *extra ? "," : "", extra ? extra : "");
    return c;
}

static struct rw_jwt_params secret_params(void)
{
    struct rw_jwt_params p = {
        .mode = RW_JWT_MODE_SECRET,
        .secret = (const unsigned char *)SECRET,
        .secret_len = strlen(SECRET),
        .leeway_s = 30,
        .claims_max_bytes = 4096,
    };
    return p;
}

static enum rw_jwt_reason check_with(const struct rw_jwt_params *p, const char *token,
                                     enum rw_jwt_engine engine)
{
    struct rw_jwt_params q = *p;
    json_t *claims = NULL;

    q.engine = engine;
    enum rw_jwt_reason r = rw_jwt_verify(&q, token, strlen(token), NOW, &claims);
    if (r == RW_JWT_OK)
        assert_non_null(claims);
    else
        assert_null(claims);
    json_decref(claims);
    return r;
}

/* Every case runs through both signature engines, which must agree. */
static enum rw_jwt_reason check(const struct rw_jwt_params *p, const char *token)
{
    enum rw_jwt_reason r = check_with(p, token, RW_JWT_ENGINE_LIBJWT);

    assert_string_equal(rw_jwt_reason_str(r),
                        rw_jwt_reason_str(check_with(p, token, RW_JWT_ENGINE_OPENSSL)));
    return r;
}

/* ------------------------------------------------------------ base64url */

static void test_b64url_strict(void **state)
{
    unsigned char out[64];
    size_t n = 0;
    static const struct { const char *in; bool ok; const char *want; } cases[] = {
        {"", true, ""},
        {"YQ", true, "a"},
        {"YWI", true, "ab"},
        {"YWJj", true, "abc"},
        {"YQ==", false, NULL},          /* padding */
        {"YR", false, NULL},            /* non-canonical trailing bits */
        {"YWJ", false, NULL},           /* non-canonical trailing bits */
        {"Y", false, NULL},             /* impossible length */
        {"YW Jj", false, NULL},         /* whitespace */
        {"YWJj\n", false, NULL},
        {"+/8", false, NULL},           /* standard alphabet */
        {"-_8", true, "\xfb\xff"},
        {"YWJj.", false, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        bool ok = rw_b64url_decode(cases[i].in, strlen(cases[i].in), out, sizeof out, &n);
        assert_int_equal(ok, cases[i].ok);
        if (ok) {
            assert_int_equal(n, strlen(cases[i].want));
            assert_memory_equal(out, cases[i].want, n);
        }
    }
    assert_false(rw_b64url_decode("YWJj", 4, out, 2, &n));   /* overflow */
}

static void test_reason_strings(void **state)
{
    assert_string_equal(rw_jwt_reason_str(RW_JWT_EXPIRED), "expired");
    assert_string_equal(rw_jwt_reason_str(RW_JWT_BAD_SIGNATURE), "bad signature");
    assert_string_equal(rw_jwt_reason_str(RW_JWT_UNKNOWN_KID), "unknown kid");
    assert_string_equal(rw_jwt_reason_label(RW_JWT_ALG_NOT_ALLOWED), "algorithm_not_allowed");
    for (int i = 0; i < RW_JWT_REASON_COUNT; i++)
        for (int j = i + 1; j < RW_JWT_REASON_COUNT; j++)
            assert_string_not_equal(rw_jwt_reason_str(i), rw_jwt_reason_str(j));
    assert_string_equal(rw_jwt_reason_str(RW_JWT_REASON_COUNT), "internal error");
}

/* ------------------------------------------------------------ libjwt guard */

/* libjwt 1.10 alone accepts {"alg":"none"} with no key; our wrapper refuses
 * to call it with anything but a pinned algorithm and a non-empty key. */
static void test_libjwt_guard(void **state)
{
    static const char none[] = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJhZG1pbiJ9.";
    static const unsigned char pl[] = "{\"sub\":\"admin\"}";
    char *t = mint("{\"alg\":\"HS256\"}", "{\"sub\":\"u\"}", "HS256", SECRET);
    struct rw_libjwt_input in = {
        .alg = "HS256", .key = (const unsigned char *)SECRET, .key_len = strlen(SECRET),
        .token = t, .token_len = strlen(t),
        .payload = (const unsigned char *)"{\"sub\":\"u\"}", .payload_len = 11,
    };

    assert_int_equal(rw_libjwt_verify(&in), RW_JWT_OK);
    in.key_len = 0;
    assert_int_equal(rw_libjwt_verify(&in), RW_JWT_INTERNAL);
    in.key = NULL;
    assert_int_equal(rw_libjwt_verify(&in), RW_JWT_INTERNAL);
    in.key = (const unsigned char *)SECRET;
    in.key_len = strlen(SECRET) - 1;        /* another key: libjwt refuses */
    assert_int_equal(rw_libjwt_verify(&in), RW_JWT_BAD_SIGNATURE);
    in = (struct rw_libjwt_input){
        .alg = "none", .key = (const unsigned char *)SECRET, .key_len = strlen(SECRET),
        .token = none, .token_len = strlen(none),
        .payload = pl, .payload_len = sizeof pl - 1,
    };
    assert_int_equal(rw_libjwt_verify(&in), RW_JWT_INTERNAL);
    in.alg = "HS512";
    assert_int_equal(rw_libjwt_verify(&in), RW_JWT_INTERNAL);
    in.alg = "HS256";                       /* the header says none: libjwt's own check */
    assert_int_not_equal(rw_libjwt_verify(&in), RW_JWT_OK);
    free(t);
}

/* ------------------------------------------------------------ secret mode */

static void test_secret_mode(void **state)
{
    struct rw_jwt_params p = secret_params();
    char *c = claims_json(NULL), *t;

    t = mint("{\"alg\":\"HS256\",\"typ\":\"JWT\"}", c, "HS256", SECRET);
    assert_int_equal(check(&p, t), RW_JWT_OK);
    json_t *claims = NULL;
    assert_int_equal(rw_jwt_verify(&p, t, strlen(t), NOW, &claims), RW_JWT_OK);
    assert_string_equal(json_string_value(json_object_get(claims, "sub")), "user-1");
    json_decref(claims);
    /* the same token checked without a usable secret never passes */
    struct rw_jwt_params empty = p;
    empty.secret = (const unsigned char *)"";
    empty.secret_len = 0;
    assert_int_equal(check(&empty, t), RW_JWT_INTERNAL);
    empty.secret = NULL;
    assert_int_equal(check(&empty, t), RW_JWT_INTERNAL);
    free(t);

    t = mint("{\"alg\":\"HS256\"}", c, "HS256", "another-secret-of-enough-length-000");
    assert_int_equal(check(&p, t), RW_JWT_BAD_SIGNATURE);
    free(t);
    t = mint("{\"alg\":\"none\"}", c, "none", NULL);
    assert_int_equal(check(&p, t), RW_JWT_ALG_NOT_ALLOWED);
    free(t);
    t = mint("{\"alg\":\"HS256\\u0000x\"}", c, "HS256", SECRET);
    assert_int_equal(check(&p, t), RW_JWT_BAD_HEADER);   /* NUL refused by the parser */
    free(t);
    t = mint("{\"alg\":\"HS256\"}", c, "none", NULL);      /* empty signature */
    assert_int_equal(check(&p, t), RW_JWT_BAD_SIGNATURE);
    free(t);
    free(c);
}

static void test_shape_and_header(void **state)
{
    struct rw_jwt_params p = secret_params();
    char *c = claims_json(NULL), *t, big[RW_JWT_MAX_TOKEN + 2];
    static const struct { const char *header; enum rw_jwt_reason want; } hdrs[] = {
        {"{\"alg\":\"HS256\",\"typ\":\"JWT\"}", RW_JWT_OK},
        {"{\"alg\":\"HS256\",\"typ\":\"jwt\"}", RW_JWT_BAD_HEADER},
        {"{\"alg\":\"HS256\",\"typ\":1}", RW_JWT_BAD_HEADER},
        {"{\"alg\":\"HS256\",\"alg\":\"HS256\"}", RW_JWT_BAD_HEADER},
        {"[\"HS256\"]", RW_JWT_BAD_HEADER},
        {"{\"alg\":\"HS256\"} x", RW_JWT_BAD_HEADER},
        {"{\"alg\":\"Hs256\"}", RW_JWT_ALG_NOT_ALLOWED},
        {"{\"alg\":\"RS256\"}", RW_JWT_ALG_NOT_ALLOWED},
        {"{\"alg\":\"HS256\",\"crit\":[]}", RW_JWT_CRIT},
        {"{\"alg\":\"HS256\",\"jku\":\"https://x\",\"jwk\":{}}", RW_JWT_OK},
    };
    for (size_t i = 0; i < sizeof hdrs / sizeof hdrs[0]; i++) {
        t = mint(hdrs[i].header, c, "HS256", SECRET);
        assert_int_equal(check(&p, t), hdrs[i].want);
        free(t);
    }
    t = mint("{\"alg\":\"HS256\"}", c, "HS256", SECRET);
    char buf[16384];
    snprintf(buf, sizeof buf, "%s.", t);
    assert_int_equal(check(&p, buf), RW_JWT_MALFORMED);
    snprintf(buf, sizeof buf, "%s=", t);
    assert_int_equal(check(&p, buf), RW_JWT_MALFORMED);
    snprintf(buf, sizeof buf, " %s", t);
    assert_int_equal(check(&p, buf), RW_JWT_MALFORMED);
    snprintf(buf, sizeof buf, "%s", strchr(t, '.'));
    assert_int_equal(check(&p, buf), RW_JWT_MALFORMED);
    *strrchr(t, '.') = '\0';
    assert_int_equal(check(&p, t), RW_JWT_MALFORMED);
    free(t);
    memset(big, 'a', sizeof big);   /* refused before any decoding */
    assert_int_equal(rw_jwt_verify(&p, big, RW_JWT_MAX_TOKEN + 1, NOW, &(json_t *){NULL}),
                     RW_JWT_TOO_LARGE);
    free(c);
}

/* ------------------------------------------------------------ claims */

static enum rw_jwt_reason claims_of(const struct rw_jwt_params *p, const char *json)
{
    json_error_t e;
    json_t *c = json_loads(json, JSON_ALLOW_NUL, &e);
    assert_non_null(c);
    enum rw_jwt_reason r = rw_jwt_check_claims(p, c, NOW);
    json_decref(c);
    return r;
}

static void test_claims(void **state)
{
    struct rw_jwt_params p = secret_params();
    p.issuer = "https://iss";
    p.audience = "api";
    static const struct { const char *json; enum rw_jwt_reason want; } cases[] = {
        {"{\"sub\":\"u\",\"exp\":1700000300,\"iss\":\"https://iss\",\"aud\":\"api\"}", RW_JWT_OK},
        {"{\"sub\":\"u\",\"exp\":1699999980,\"iss\":\"https://iss\",\"aud\":[\"x\",\"api\"]}", RW_JWT_OK},
        {"{\"sub\":\"u\",\"exp\":1699999970,\"iss\":\"https://iss\",\"aud\":\"api\"}", RW_JWT_EXPIRED},
        {"{\"sub\":\"u\",\"iss\":\"https://iss\",\"aud\":\"api\"}", RW_JWT_MISSING_EXP},
        {"{\"sub\":\"u\",\"exp\":1.7e9,\"iss\":\"https://iss\",\"aud\":\"api\"}", RW_JWT_BAD_TIME_CLAIM},
        {"{\"sub\":\"u\",\"exp\":1700000300,\"nbf\":1700000031,\"iss\":\"https://iss\",\"aud\":\"api\"}", RW_JWT_NOT_YET_VALID},
        {"{\"sub\":\"u\",\"exp\":1700000300,\"nbf\":1700000030,\"iss\":\"https://iss\",\"aud\":\"api\"}", RW_JWT_OK},
        {"{\"sub\":\"u\",\"exp\":1700000300,\"iat\":1700000031,\"iss\":\"https://iss\",\"aud\":\"api\"}", RW_JWT_IAT_FUTURE},
        {"{\"sub\":\"u\",\"exp\":1700000300,\"iat\":null,\"iss\":\"https://iss\",\"aud\":\"api\"}", RW_JWT_BAD_TIME_CLAIM},
        {"{\"sub\":\"u\",\"exp\":1700000300,\"iss\":\"https://ISS\",\"aud\":\"api\"}", RW_JWT_BAD_ISSUER},
        {"{\"sub\":\"u\",\"exp\":1700000300,\"aud\":\"api\"}", RW_JWT_BAD_ISSUER},
        {"{\"sub\":\"u\",\"exp\":1700000300,\"iss\":\"https://iss\",\"aud\":[]}", RW_JWT_BAD_AUDIENCE},
        {"{\"sub\":\"u\",\"exp\":1700000300,\"iss\":\"https://iss\",\"aud\":[\"api\",1]}", RW_JWT_BAD_AUDIENCE},
        {"{\"sub\":\"u\",\"exp\":1700000300,\"iss\":\"https://iss\",\"aud\":\"API\"}", RW_JWT_BAD_AUDIENCE},
        {"{\"sub\":\"u\",\"exp\":1700000300,\"iss\":\"https://iss\",\"aud\":\"api\\u0000\"}", RW_JWT_BAD_AUDIENCE},
        {"{\"sub\":\"\",\"exp\":1700000300,\"iss\":\"https://iss\",\"aud\":\"api\"}", RW_JWT_BAD_SUBJECT},
        {"{\"sub\":\"u\\u0000v\",\"exp\":1700000300,\"iss\":\"https://iss\",\"aud\":\"api\"}", RW_JWT_BAD_SUBJECT},
        {"{\"sub\":[\"u\"],\"exp\":1700000300,\"iss\":\"https://iss\",\"aud\":\"api\"}", RW_JWT_BAD_SUBJECT},
        {"{\"sub\":\"u\",\"exp\":1700000300,\"iss\":\"https://iss\",\"aud\":\"api\",\"x\":[\"\\u0000\"]}", RW_JWT_BAD_CLAIMS},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        enum rw_jwt_reason r = claims_of(&p, cases[i].json);
        if (r != cases[i].want)
            fail_msg("case %zu (%s): got \"%s\", want \"%s\"", i, cases[i].json,
                     rw_jwt_reason_str(r), rw_jwt_reason_str(cases[i].want));
    }
    char sub[300], json[400];
    memset(sub, 'u', sizeof sub);
    sub[255] = '\0';
    snprintf(json, sizeof json, "{\"sub\":\"%s\",\"exp\":1700000300}", sub);
    p.issuer = p.audience = NULL;
    assert_int_equal(claims_of(&p, json), RW_JWT_OK);
    sub[255] = 'u';
    sub[256] = '\0';
    snprintf(json, sizeof json, "{\"sub\":\"%s\",\"exp\":1700000300}", sub);
    assert_int_equal(claims_of(&p, json), RW_JWT_BAD_SUBJECT);
}

static void test_claims_syntax(void **state)
{
    struct rw_jwt_params p = secret_params();
    static const struct { const char *payload; enum rw_jwt_reason want; } cases[] = {
        {"{\"sub\":\"u\",\"exp\":1700000300}", RW_JWT_OK},
        {"{\"sub\":\"u\",\"sub\":\"v\",\"exp\":1700000300}", RW_JWT_BAD_CLAIMS},
        {"{\"sub\":\"u\",\"exp\":1700000300}{}", RW_JWT_BAD_CLAIMS},
        {"{\"sub\":\"\xc3\x28\",\"exp\":1700000300}", RW_JWT_BAD_CLAIMS},
        {"[1]", RW_JWT_BAD_CLAIMS},
        {"{\"sub\":\"u\",\"exp\":99999999999999999999}", RW_JWT_BAD_CLAIMS},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *t = mint("{\"alg\":\"HS256\"}", cases[i].payload, "HS256", SECRET);
        assert_int_equal(check(&p, t), cases[i].want);
        free(t);
    }
    char *c = claims_json("\"pad\":\"................................................................\"");
    p.claims_max_bytes = 64;
    char *t = mint("{\"alg\":\"HS256\"}", c, "HS256", SECRET);
    assert_int_equal(check(&p, t), RW_JWT_CLAIMS_TOO_LARGE);
    free(t);
    free(c);
}

/* ------------------------------------------------------------ JWKS mode */

struct keys {
    EVP_PKEY *rsa, *rsa_weak, *ec, *ec384;
    struct rw_jwk_set *set;
};

static void bn_b64(const EVP_PKEY *k, const char *param, char *out, int pad)
{
    BIGNUM *bn = NULL;
    unsigned char buf[1024];
    assert_int_equal(EVP_PKEY_get_bn_param(k, param, &bn), 1);
    int n = pad ? BN_bn2binpad(bn, buf, pad) : BN_bn2bin(bn, buf);
    b64url(buf, (size_t)n, out);
    BN_free(bn);
}

static void jwk_json(const EVP_PKEY *k, const char *kid, const char *extra, char *out,
                     size_t cap)
{
    char a[1400], b[1400];
    if (EVP_PKEY_is_a(k, "RSA")) {
        bn_b64(k, OSSL_PKEY_PARAM_RSA_N, a, 0);
        bn_b64(k, OSSL_PKEY_PARAM_RSA_E, b, 0);
        snprintf(out, cap, "{\"kty\":\"RSA\",\"kid\":\"%s\",\"n\":\"%s\",\"e\":\"%s\"%s}",
                 kid, a, b, extra);
    } else {
        int size = EVP_PKEY_get_bits(k) == 256 ? 32 : 48;
        bn_b64(k, OSSL_PKEY_PARAM_EC_PUB_X, a, size);
        bn_b64(k, OSSL_PKEY_PARAM_EC_PUB_Y, b, size);
        snprintf(out, cap, "{\"kty\":\"EC\",\"crv\":\"%s\",\"kid\":\"%s\",\"x\":\"%s\","
                 "\"y\":\"%s\"%s}", size == 32 ? "P-256" : "P-384", kid, a, b, extra);
    }
}

static int keys_setup(void **state)
{
    struct keys *k = calloc(1, sizeof *k);
    char *doc = malloc(16384), j[3000], err[128];

    k->rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    k->rsa_weak = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
    k->ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    k->ec384 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
    assert_true(k->rsa && k->rsa_weak && k->ec && k->ec384);
    strcpy(doc, "{\"keys\":[");
    jwk_json(k->rsa, "rsa", "", j, sizeof j);
    strcat(doc, j);
    jwk_json(k->rsa, "rsa-ps", ",\"alg\":\"PS256\"", j, sizeof j);
    strcat(strcat(doc, ","), j);
    jwk_json(k->rsa, "rsa-enc", ",\"use\":\"enc\"", j, sizeof j);
    strcat(strcat(doc, ","), j);
    jwk_json(k->rsa, "rsa-ops", ",\"key_ops\":[\"encrypt\"]", j, sizeof j);
    strcat(strcat(doc, ","), j);
    jwk_json(k->rsa_weak, "weak", "", j, sizeof j);
    strcat(strcat(doc, ","), j);
    jwk_json(k->ec, "ec", ",\"alg\":\"ES256\",\"use\":\"sig\"", j, sizeof j);
    strcat(strcat(doc, ","), j);
    jwk_json(k->ec384, "ec384", "", j, sizeof j);
    strcat(strcat(doc, ","), j);
    jwk_json(k->rsa_weak, "rsa", "", j, sizeof j);   /* repeated kid: ignored */
    strcat(strcat(doc, ","), j);
    strcat(doc, ",{\"kty\":\"oct\",\"kid\":\"oct\",\"k\":\"c2VjcmV0\"}"
                ",{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"offcurve\","
                "\"x\":\"AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\","
                "\"y\":\"AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"}]}");
    assert_int_equal(rw_jwk_set_parse(doc, strlen(doc), &k->set, err, sizeof err), 0);
    free(doc);
    *state = k;
    return 0;
}

static int keys_teardown(void **state)
{
    struct keys *k = *state;
    rw_jwk_set_free(&k->set);
    assert_null(k->set);
    EVP_PKEY_free(k->rsa);
    EVP_PKEY_free(k->rsa_weak);
    EVP_PKEY_free(k->ec);
    EVP_PKEY_free(k->ec384);
    free(k);
    return 0;
}

static void test_jwk_set(void **state)
{
    struct keys *k = *state;
    struct rw_jwk_set *s = NULL;
    char err[128];

    assert_int_equal(k->set->n, 7);     /* oct, off-curve and the repeat skipped */
    assert_null(rw_jwk_set_find(k->set, "oct"));
    assert_null(rw_jwk_set_find(k->set, "offcurve"));
    assert_int_equal(rw_jwk_set_find(k->set, "rsa")->bits, 2048);
    assert_int_equal(rw_jwk_set_find(k->set, "weak")->bits, 1024);
    assert_false(rw_jwk_set_find(k->set, "rsa-enc")->for_signing);
    assert_false(rw_jwk_set_find(k->set, "rsa-ops")->for_signing);
    assert_int_equal(rw_jwk_set_parse("nope", 4, &s, err, sizeof err), -1);
    assert_null(s);
    assert_int_equal(rw_jwk_set_parse("{\"keys\":{}}", 11, &s, err, sizeof err), -1);
    assert_int_equal(rw_jwk_set_parse("{\"keys\":[]}", 11, &s, err, sizeof err), 0);
    assert_int_equal(s->n, 0);
    rw_jwk_set_free(&s);
}

static void test_key_binding(void **state)
{
    struct keys *k = *state;
    struct rw_jwt_params p = {.mode = RW_JWT_MODE_JWKS, .keys = k->set, .leeway_s = 30};
    char *c = claims_json(NULL);
    static const char rsa_pem_secret[] = "-----BEGIN PUBLIC KEY-----\nnot really\n";
    struct { const char *header; const char *alg; EVP_PKEY *key; enum rw_jwt_reason want; } cases[] = {
        {"{\"alg\":\"RS256\",\"kid\":\"rsa\"}", "RS256", k->rsa, RW_JWT_OK},
        {"{\"alg\":\"ES256\",\"kid\":\"ec\"}", "ES256", k->ec, RW_JWT_OK},
        {"{\"alg\":\"RS256\"}", "RS256", k->rsa, RW_JWT_MISSING_KID},
        {"{\"alg\":\"RS256\",\"kid\":7}", "RS256", k->rsa, RW_JWT_MISSING_KID},
        {"{\"alg\":\"RS256\",\"kid\":\"zzz\"}", "RS256", k->rsa, RW_JWT_UNKNOWN_KID},
        {"{\"alg\":\"RS256\",\"kid\":\"oct\"}", "RS256", k->rsa, RW_JWT_UNKNOWN_KID},
        {"{\"alg\":\"RS256\",\"kid\":\"ec\"}", "RS256", k->rsa, RW_JWT_KEY_MISMATCH},
        {"{\"alg\":\"ES256\",\"kid\":\"rsa\"}", "ES256", k->ec, RW_JWT_KEY_MISMATCH},
        {"{\"alg\":\"ES256\",\"kid\":\"ec384\"}", "ES256", k->ec, RW_JWT_KEY_MISMATCH},
        {"{\"alg\":\"RS256\",\"kid\":\"rsa-ps\"}", "RS256", k->rsa, RW_JWT_KEY_MISMATCH},
        {"{\"alg\":\"RS256\",\"kid\":\"rsa-enc\"}", "RS256", k->rsa, RW_JWT_KEY_MISMATCH},
        {"{\"alg\":\"RS256\",\"kid\":\"rsa-ops\"}", "RS256", k->rsa, RW_JWT_KEY_MISMATCH},
        {"{\"alg\":\"RS256\",\"kid\":\"weak\"}", "RS256", k->rsa_weak, RW_JWT_WEAK_KEY},
        {"{\"alg\":\"RS256\",\"kid\":\"rsa\"}", "RS256", k->rsa_weak, RW_JWT_BAD_SIGNATURE},
        {"{\"alg\":\"ES256\",\"kid\":\"ec\"}", "ES256", k->ec384, RW_JWT_BAD_SIGNATURE},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *t = mint(cases[i].header, c, cases[i].alg, cases[i].key);
        enum rw_jwt_reason r = check(&p, t);
        if (r != cases[i].want)
            fail_msg("case %zu %s: got \"%s\"", i, cases[i].header, rw_jwt_reason_str(r));
        free(t);
    }
    /* algorithm confusion: HS256 keyed with "the public key" is not allowed */
    char *t = mint("{\"alg\":\"HS256\",\"kid\":\"rsa\"}", c, "HS256", rsa_pem_secret);
    assert_int_equal(check(&p, t), RW_JWT_ALG_NOT_ALLOWED);
    free(t);
    /* ES256 with a (valid) DER signature instead of raw r||s */
    t = mint("{\"alg\":\"ES256\",\"kid\":\"ec\"}", c, "DER", k->ec);
    assert_int_equal(check(&p, t), RW_JWT_BAD_SIGNATURE);
    free(t);
    /* no set fetched yet */
    p.keys = NULL;
    t = mint("{\"alg\":\"RS256\",\"kid\":\"rsa\"}", c, "RS256", k->rsa);
    assert_int_equal(check(&p, t), RW_JWT_KEYS_UNAVAILABLE);
    free(t);
    free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_b64url_strict),
        cmocka_unit_test(test_reason_strings),
        cmocka_unit_test(test_libjwt_guard),
        cmocka_unit_test(test_secret_mode),
        cmocka_unit_test(test_shape_and_header),
        cmocka_unit_test(test_claims),
        cmocka_unit_test(test_claims_syntax),
        cmocka_unit_test_setup_teardown(test_jwk_set, keys_setup, keys_teardown),
        cmocka_unit_test_setup_teardown(test_key_binding, keys_setup, keys_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
