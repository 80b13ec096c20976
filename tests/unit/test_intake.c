/* HTTP intake, pure parts: POST /v1/jobs body parsing, Standard Webhooks
 * signatures (the spec's published vector plus vectors computed with
 * Python's hmac), header parsing, listen addresses, per-user job keys. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <netinet/in.h>

#include "worker/http/intake.h"

/* ---- POST /v1/jobs bodies ------------------------------------------------ */

struct body_case {
    const char *body;
    const char *err;   /* NULL: accepted; else a substring of the error */
};

static const struct body_case body_cases[] = {
    {"{\"task\":\"add_todo\"}", NULL},
    {"{\"task\":\"a.b:c-d_e\",\"payload\":{\"x\":[1,2]}}", NULL},
    {"{\"task\":\"t\",\"run_at\":\"2030-01-02T03:04:05Z\",\"key\":\"k 1\"}", NULL},
    {"{\"task\":\"t\",\"run_at\":\"2030-01-02T03:04:05.123456+02:00\"}", NULL},
    {"{\"task\":\"t\",\"run_at\":null,\"key\":null}", NULL},
    {"", "malformed JSON"},
    {"{", "malformed JSON"},
    {"{\"task\":\"t\"} trailing", "malformed JSON"},
    {"[]", "must be a JSON object"},
    {"\"task\"", "must be a JSON object"},
    {"{}", "\"task\" is required"},
    {"{\"task\":\"\"}", "\"task\" must be"},
    {"{\"task\":\"a b\"}", "\"task\" must be"},
    {"{\"task\":\"x;drop\"}", "\"task\" must be"},
    {"{\"task\":1}", "must be a string"},
    {"{\"task\":\"t\",\"task\":\"u\"}", "duplicate"},
    {"{\"task\":\"t\",\"payload\":[]}", "\"payload\" must be a JSON object"},
    {"{\"task\":\"t\",\"payload\":null}", "\"payload\" must be a JSON object"},
    {"{\"task\":\"t\",\"run_at\":\"tomorrow\"}", "RFC 3339"},
    {"{\"task\":\"t\",\"run_at\":5}", "must be a string"},
    {"{\"task\":\"t\",\"key\":\"\"}", "\"key\" must be"},
    {"{\"task\":\"t\",\"key\":\"a\\nb\"}", "\"key\" must be"},
    {"{\"task\":\"t\",\"key\":\"a\\u0000b\"}", "malformed JSON"},
    {"{\"task\":\"t\",\"claims\":{\"sub\":\"bob\"}}", "may not be set"},
    {"{\"task\":\"t\",\"subject\":\"bob\"}", "may not be set"},
    {"{\"task\":\"t\",\"role\":\"admin\"}", "may not be set"},
    {"{\"task\":\"t\",\"run_as\":\"system\"}", "may not be set"},
    {"{\"task\":\"t\",\"priority\":1}", "unknown field \"priority\""},
};

static void test_job_bodies(void **state)
{
    for (size_t i = 0; i < sizeof body_cases / sizeof body_cases[0]; i++) {
        const struct body_case *c = &body_cases[i];
        struct rw_job_request r;
        char err[256] = "";
        int rc = rw_intake_parse_job_body(c->body, strlen(c->body), &r, err, sizeof err);

        if (c->err == NULL) {
            if (rc != 0)
                fail_msg("case %zu (%s) refused: %s", i, c->body, err);
            assert_non_null(r.payload);
            assert_true(json_is_object(r.payload));
            rw_job_request_clear(&r);
        } else {
            if (rc != -1 || !strstr(err, c->err))
                fail_msg("case %zu (%s): rc %d, error \"%s\", want \"%s\"", i, c->body, rc,
                         err, c->err);
            assert_null(r.payload);
        }
    }
}

static void test_job_body_fields(void **state)
{
    const char *b = "{\"task\":\"add_todo\",\"payload\":{\"title\":\"x\"},"
                    "\"run_at\":\"2030-01-02T03:04:05Z\",\"key\":\"k1\"}";
    struct rw_job_request r;
    char err[256];
    char big[400];

    assert_int_equal(rw_intake_parse_job_body(b, strlen(b), &r, err, sizeof err), 0);
    assert_string_equal(r.task, "add_todo");
    assert_string_equal(r.run_at, "2030-01-02T03:04:05Z");
    assert_string_equal(r.key, "k1");
    assert_string_equal(json_string_value(json_object_get(r.payload, "title")), "x");
    rw_job_request_clear(&r);
    /* no payload: {} */
    assert_int_equal(rw_intake_parse_job_body("{\"task\":\"t\"}", 12, &r, err, sizeof err), 0);
    assert_int_equal(json_object_size(r.payload), 0);
    assert_string_equal(r.run_at, "");
    rw_job_request_clear(&r);
    /* a key of 256 bytes is one too many; a task of 129 too */
    snprintf(big, sizeof big, "{\"task\":\"t\",\"key\":\"%0256d\"}", 0);
    assert_int_equal(rw_intake_parse_job_body(big, strlen(big), &r, err, sizeof err), -1);
    snprintf(big, sizeof big, "{\"task\":\"%0129d\"}", 0);
    assert_int_equal(rw_intake_parse_job_body(big, strlen(big), &r, err, sizeof err), -1);
    snprintf(big, sizeof big, "{\"task\":\"%0128d\"}", 0);
    assert_int_equal(rw_intake_parse_job_body(big, strlen(big), &r, err, sizeof err), 0);
    rw_job_request_clear(&r);
}

static void test_rfc3339(void **state)
{
    const char *good[] = {"2030-01-02T03:04:05Z", "2030-01-02t03:04:05z",
                          "2030-01-02 03:04:05+00:00", "2030-01-02T03:04:05.1-07:30",
                          "2030-01-02T03:04:05.123456789Z"};
    const char *bad[] = {"", "2030-01-02", "2030-01-02T03:04:05", "2030-01-02T03:04Z",
                         "2030-1-02T03:04:05Z", "2030-01-02T03:04:05.Z",
                         "2030-01-02T03:04:05.1234567890Z", "2030-01-02T03:04:05+0100",
                         "2030-01-02T03:04:05Zjunk", "2030-01-02X03:04:05Z"};

    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        if (!rw_intake_rfc3339(good[i]))
            fail_msg("refused %s", good[i]);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (rw_intake_rfc3339(bad[i]))
            fail_msg("accepted %s", bad[i]);
}

/* ---- headers -------------------------------------------------------------- */

static void test_bearer(void **state)
{
    const char *tok;
    size_t n;

    assert_true(rw_intake_bearer("Bearer abc.def.ghi", &tok, &n));
    assert_int_equal(n, 11);
    assert_memory_equal(tok, "abc.def.ghi", 11);
    assert_true(rw_intake_bearer("bearer  x ", &tok, &n));
    assert_int_equal(n, 1);
    assert_false(rw_intake_bearer(NULL, &tok, &n));
    assert_false(rw_intake_bearer("", &tok, &n));
    assert_false(rw_intake_bearer("Bearer", &tok, &n));
    assert_false(rw_intake_bearer("Bearer ", &tok, &n));
    assert_false(rw_intake_bearer("Basic YWxh", &tok, &n));
    assert_false(rw_intake_bearer("Bearer a b", &tok, &n));
    assert_false(rw_intake_bearer("Bearerabc", &tok, &n));
}

static void test_content_type(void **state)
{
    assert_true(rw_intake_is_json("application/json"));
    assert_true(rw_intake_is_json("Application/JSON; charset=utf-8"));
    assert_true(rw_intake_is_json("application/json ;charset=utf-8"));
    assert_false(rw_intake_is_json(NULL));
    assert_false(rw_intake_is_json("text/plain"));
    assert_false(rw_intake_is_json("application/jsonx"));
    assert_false(rw_intake_is_json("application/json-patch+json"));
}

static void test_listen(void **state)
{
    struct sockaddr_storage ss;
    socklen_t len;
    char err[256];

    assert_int_equal(rw_intake_parse_listen("127.0.0.1:8080", &ss, &len, err, sizeof err), 0);
    assert_int_equal(ss.ss_family, AF_INET);
    assert_int_equal(ntohs(((struct sockaddr_in *)&ss)->sin_port), 8080);
    assert_int_equal(rw_intake_parse_listen(":9", &ss, &len, err, sizeof err), 0);
    assert_int_equal(((struct sockaddr_in *)&ss)->sin_addr.s_addr, htonl(INADDR_ANY));
    assert_int_equal(rw_intake_parse_listen("[::1]:443", &ss, &len, err, sizeof err), 0);
    assert_int_equal(ss.ss_family, AF_INET6);
    assert_int_equal(ntohs(((struct sockaddr_in6 *)&ss)->sin6_port), 443);
    const char *bad[] = {"", "8080", "localhost:80", "127.0.0.1:", "127.0.0.1:0",
                         "127.0.0.1:65536", "127.0.0.1:80x", "::1:80", "[::1]80",
                         "[nope]:80", "1.2.3:80"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        if (rw_intake_parse_listen(bad[i], &ss, &len, err, sizeof err) != -1 || !err[0])
            fail_msg("accepted listen address \"%s\"", bad[i]);
    }
}

static void test_user_job_key(void **state)
{
    char *a = rw_intake_user_job_key("a:b", "c");
    char *b = rw_intake_user_job_key("a", "b:c");

    assert_string_equal(a, "u3:a:b:c");
    assert_string_equal(b, "u1:a:b:c");
    assert_string_not_equal(a, b);   /* no user can reach another's key space */
    free(a);
    free(b);
}

/* ---- Standard Webhooks ----------------------------------------------------- */

/* The example of the Standard Webhooks specification. */
#define SPEC_SECRET "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
#define SPEC_ID "msg_p5jXN8AQM9LWM0D4loKWxJek"
#define SPEC_TS "1614265330"
#define SPEC_BODY "{\"test\": 2432232314}"
#define SPEC_SIG "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

static void test_webhook_key(void **state)
{
    unsigned char k[RW_WEBHOOK_KEY_MAX];

    assert_int_equal(rw_webhook_key(SPEC_SECRET, k, sizeof k), 24);
    assert_int_equal(rw_webhook_key("raw-secret", k, sizeof k), 10);
    assert_memory_equal(k, "raw-secret", 10);
    assert_int_equal(rw_webhook_key("", k, sizeof k), -1);
    assert_int_equal(rw_webhook_key(NULL, k, sizeof k), -1);
    assert_int_equal(rw_webhook_key("whsec_", k, sizeof k), -1);
    assert_int_equal(rw_webhook_key("whsec_not base64!", k, sizeof k), -1);
    assert_int_equal(rw_webhook_key("whsec_QQ", k, sizeof k), -1);      /* no padding */
    assert_int_equal(rw_webhook_key("whsec_QR==", k, sizeof k), -1);    /* stray bits */
    assert_int_equal(rw_webhook_key("whsec_QQ==", k, sizeof k), 1);
    assert_int_equal(rw_webhook_key("0123456789", k, 4), -1);           /* too long */
}

static void test_webhook_spec_vector(void **state)
{
    unsigned char k[RW_WEBHOOK_KEY_MAX];
    int n = rw_webhook_key(SPEC_SECRET, k, sizeof k);
    char sig[64];
    time_t now = 1614265330;

    assert_int_equal(rw_webhook_sign(k, (size_t)n, SPEC_ID, SPEC_TS, SPEC_BODY,
                                     strlen(SPEC_BODY), sig, sizeof sig), 0);
    assert_string_equal(sig, SPEC_SIG);
    assert_int_equal(rw_webhook_verify(k, (size_t)n, SPEC_ID, SPEC_TS, SPEC_SIG, SPEC_BODY,
                                       strlen(SPEC_BODY), now, 300), RW_WEBHOOK_OK);
    /* any matching entry passes; unknown versions and junk are skipped */
    assert_int_equal(rw_webhook_verify(k, (size_t)n, SPEC_ID, SPEC_TS,
                                       "v1,AAAA v1a,xyz " SPEC_SIG " v2,zz", SPEC_BODY,
                                       strlen(SPEC_BODY), now, 300), RW_WEBHOOK_OK);
}

static void test_webhook_refusals(void **state)
{
    const unsigned char *k = (const unsigned char *)"raw-secret";
    const char *sig = "v1,PFCtOQ1EoOzF8a+pKAQWQ+bpAiWPnsryX1oZVkjnznI=";  /* python hmac */
    time_t now = 1700000000;

#define V(id, ts, s, body, t) rw_webhook_verify(k, 10, id, ts, s, body, strlen(body), t, 300)
    assert_int_equal(V("id1", "1700000000", sig, "{}", now), RW_WEBHOOK_OK);
    assert_int_equal(V("id1", "1700000000", sig, "{}", now + 300), RW_WEBHOOK_OK);
    assert_int_equal(V("id1", "1700000000", sig, "{}", now - 300), RW_WEBHOOK_OK);
    assert_int_equal(V("id1", "1700000000", sig, "{}", now + 301), RW_WEBHOOK_STALE);
    assert_int_equal(V("id1", "1700000000", sig, "{}", now - 301), RW_WEBHOOK_STALE);
    assert_int_equal(V("id2", "1700000000", sig, "{}", now), RW_WEBHOOK_BAD_SIGNATURE);
    assert_int_equal(V("id1", "1700000000", sig, "{ }", now), RW_WEBHOOK_BAD_SIGNATURE);
    assert_int_equal(V("id1", "1700000000", "v2,PFCtOQ1EoOzF8a+pKAQWQ+bpAiWPnsryX1oZVkjnznI=",
                       "{}", now), RW_WEBHOOK_BAD_SIGNATURE);
    assert_int_equal(V("id1", "1700000000", "v1,PFCtOQ1EoOzF8a+pKAQWQ+bpAiWPnsryX1oZVkjnznI",
                       "{}", now), RW_WEBHOOK_BAD_SIGNATURE);      /* padding missing */
    assert_int_equal(V("id1", "1700000000", "v1,", "{}", now), RW_WEBHOOK_BAD_SIGNATURE);
    assert_int_equal(V("id1", "+1700000000", sig, "{}", now), RW_WEBHOOK_BAD_TIMESTAMP);
    assert_int_equal(V("id1", "1700000000.5", sig, "{}", now), RW_WEBHOOK_BAD_TIMESTAMP);
    assert_int_equal(V("id1", "", sig, "{}", now), RW_WEBHOOK_BAD_TIMESTAMP);
    assert_int_equal(V("id1", "99999999999999999999", sig, "{}", now), RW_WEBHOOK_BAD_TIMESTAMP);
    assert_int_equal(V("", "1700000000", sig, "{}", now), RW_WEBHOOK_MISSING_HEADERS);
    assert_int_equal(V("id1", "1700000000", "", "{}", now), RW_WEBHOOK_MISSING_HEADERS);
    assert_int_equal(rw_webhook_verify(k, 10, NULL, "1", sig, "{}", 2, now, 300),
                     RW_WEBHOOK_MISSING_HEADERS);
    assert_int_equal(rw_webhook_verify(k, 10, "id1", NULL, sig, "{}", 2, now, 300),
                     RW_WEBHOOK_MISSING_HEADERS);
#undef V
    assert_string_equal(rw_webhook_verdict_label(RW_WEBHOOK_STALE), "stale_timestamp");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_job_bodies),
        cmocka_unit_test(test_job_body_fields),
        cmocka_unit_test(test_rfc3339),
        cmocka_unit_test(test_bearer),
        cmocka_unit_test(test_content_type),
        cmocka_unit_test(test_listen),
        cmocka_unit_test(test_user_job_key),
        cmocka_unit_test(test_webhook_key),
        cmocka_unit_test(test_webhook_spec_vector),
        cmocka_unit_test(test_webhook_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
