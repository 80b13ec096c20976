/* The role-check report: statuses, the FAIL verdict (also for dropped
 * checks), text and JSON output, and one-line error messages. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "worker/checks/rolecheck.h"

static char *print_to_string(const struct rw_report *rep, bool json)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);

    assert_non_null(f);
    if (json)
        assert_int_equal(rw_report_print_json(rep, f), 0);
    else
        rw_report_print_text(rep, f);
    fclose(f);
    return buf;
}

static void test_fail_verdict(void **state)
{
    struct rw_report rep;

    rw_report_init(&rep);
    assert_false(rw_report_has_fail(&rep));
    rw_report_add(&rep, "a", RW_CHECK_PASS, "r", "fine");
    rw_report_add(&rep, "b", RW_CHECK_WARN, "r", "hmm %d", 1);
    rw_report_add(&rep, "c", RW_CHECK_INFO, NULL, "note");
    assert_false(rw_report_has_fail(&rep));
    rw_report_add(&rep, "d", RW_CHECK_FAIL, "r", "bad");
    assert_true(rw_report_has_fail(&rep));
    assert_int_equal(rw_report_count(&rep, RW_CHECK_WARN), 1);
    assert_int_equal(rep.n, 4);
    rw_report_free(&rep);
    assert_int_equal(rep.n, 0);
}

static void test_limit_keeps_fail(void **state)
{
    struct rw_report rep;

    rw_report_init(&rep);
    for (int i = 0; i < RW_REPORT_MAX_CHECKS; i++)
        rw_report_add(&rep, "x", RW_CHECK_PASS, NULL, "ok %d", i);
    rw_report_add(&rep, "late", RW_CHECK_FAIL, "r", "dropped but counted");
    assert_int_equal(rep.n, RW_REPORT_MAX_CHECKS);
    assert_int_equal(rep.dropped, 1);
    assert_true(rw_report_has_fail(&rep));
    rw_report_free(&rep);
}

static void test_long_message_is_cut(void **state)
{
    struct rw_report rep;
    char big[3 * RW_CHECK_MSG_MAX];

    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    rw_report_init(&rep);
    rw_report_add(&rep, "x", RW_CHECK_WARN, "r", "%s", big);
    assert_int_equal(strlen(rep.checks[0].message), RW_CHECK_MSG_MAX - 1);
    rw_report_free(&rep);
}

static void test_text_output(void **state)
{
    struct rw_report rep;

    rw_report_init(&rep);
    rw_report_add(&rep, "restricted.bypassrls", RW_CHECK_FAIL, "app_user", "has BYPASSRLS");
    rw_report_add(&rep, "admin.login", RW_CHECK_PASS, NULL, "logs in");
    char *out = print_to_string(&rep, false);
    assert_non_null(strstr(out, "FAIL  restricted.bypassrls"));
    assert_non_null(strstr(out, "role \"app_user\": has BYPASSRLS\n"));
    assert_non_null(strstr(out, "PASS  admin.login"));
    assert_null(strstr(out, "role \"\""));
    assert_non_null(strstr(out, "1 passed, 0 info, 0 warnings, 1 failed\n"));
    free(out);
    rw_report_free(&rep);
}

static void test_json_output(void **state)
{
    struct rw_report rep;
    json_error_t jerr;

    rw_report_init(&rep);
    rw_report_add(&rep, "canary", RW_CHECK_PASS, "app_user", "quote \" and newline\n");
    rw_report_add(&rep, "admin.login", RW_CHECK_WARN, NULL, "w");
    char *out = print_to_string(&rep, true);
    json_t *root = json_loads(out, 0, &jerr);
    assert_non_null(root);
    assert_true(json_is_true(json_object_get(root, "ok")));
    assert_int_equal(json_integer_value(json_object_get(json_object_get(root, "summary"),
                                                        "warn")), 1);
    json_t *checks = json_object_get(root, "checks");
    assert_int_equal(json_array_size(checks), 2);
    json_t *c0 = json_array_get(checks, 0);
    assert_string_equal(json_string_value(json_object_get(c0, "status")), "PASS");
    assert_string_equal(json_string_value(json_object_get(c0, "role")), "app_user");
    assert_string_equal(json_string_value(json_object_get(c0, "message")),
                        "quote \" and newline\n");
    assert_true(json_is_null(json_object_get(json_array_get(checks, 1), "role")));
    json_decref(root);
    free(out);
    rw_report_add(&rep, "x", RW_CHECK_FAIL, NULL, "f");
    out = print_to_string(&rep, true);
    assert_non_null(strstr(out, "\"ok\": false"));
    free(out);
    rw_report_free(&rep);
}

static void test_oneline(void **state)
{
    char buf[64];

    rw_rolecheck_oneline(buf, sizeof buf, "ERROR:  bad\nLINE 1: x\n");
    assert_string_equal(buf, "ERROR:  bad; LINE 1: x");
    rw_rolecheck_oneline(buf, sizeof buf, "a\tb");
    assert_string_equal(buf, "a b");
    rw_rolecheck_oneline(buf, sizeof buf, NULL);
    assert_string_equal(buf, "");
    rw_rolecheck_oneline(buf, 8, "0123456789");
    assert_true(strlen(buf) < 8);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fail_verdict),
        cmocka_unit_test(test_limit_keeps_fail),
        cmocka_unit_test(test_long_message_is_cut),
        cmocka_unit_test(test_text_output),
        cmocka_unit_test(test_json_output),
        cmocka_unit_test(test_oneline),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
