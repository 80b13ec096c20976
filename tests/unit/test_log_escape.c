/* Log lines cannot be forged (issue 9, hole 6): rw_log_escape makes every
 * control character visible, and rw_conninfo_check reports a malformed
 * connection string without echoing any part of it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "worker/pg/conninfo.h"
#include "worker/pg/errtext.h"
#include "worker/base/log.h"

static void test_escapes_controls(void **state)
{
    static const struct { const char *in, *want; } cases[] = {
        {"plain text", "plain text"},
        {"", ""},
        {"a\nb", "a\\nb"},
        {"line\n2024-01-01T00:00:00.000Z LOG forged", "line\\n2024-01-01T00:00:00.000Z LOG forged"},
        {"cr\rlf\n", "cr\\rlf\\n"},
        {"tab\there", "tab\\there"},
        {"nul-less \x01\x1b[31m\x1f", "nul-less \\x01\\x1b[31m\\x1f"},
        {"del\x7f", "del\\x7f"},
        {"back\\slash", "back\\slash"},               /* kept: it cannot break a line */
        {"caf\xc3\xa9 \xe2\x82\xac", "caf\xc3\xa9 \xe2\x82\xac"},  /* UTF-8 kept */
        {"c1 \xc2\x85 nel", "c1 \\u0085 nel"},
        {"ls \xe2\x80\xa8 ps \xe2\x80\xa9", "ls \\u2028 ps \\u2029"},
        {"trunc \xc2", "trunc \xc2"},                 /* a lone lead byte is copied */
    };
    char out[128];

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t n = rw_log_escape(out, sizeof out, cases[i].in);
        if (strcmp(out, cases[i].want) != 0 || n != strlen(cases[i].want))
            fail_msg("case %zu: got \"%s\" (%zu), want \"%s\"", i, out, n, cases[i].want);
    }
}

static void test_never_splits_an_escape(void **state)
{
    char out[6];

    /* "abcd" fits; the two bytes of "\\n" and the NUL would not */
    assert_int_equal(rw_log_escape(out, sizeof out, "abcd\nxyz"), 4);
    assert_string_equal(out, "abcd");
    assert_int_equal(rw_log_escape(out, 5, "a\x01z"), 1);
    assert_string_equal(out, "a");
    assert_int_equal(rw_log_escape(out, 1, "abc"), 0);
    assert_string_equal(out, "");
    for (size_t n = 1; n < sizeof out; n++) {
        rw_log_escape(out, n, "\n\n\n\n");
        assert_true(strlen(out) % 2 == 0 && strlen(out) < n);
    }
}

static void test_no_output_byte_is_a_control(void **state)
{
    char in[256], out[2048];

    for (int i = 1; i < 256; i++)
        in[i - 1] = (char)i;
    in[255] = '\0';
    rw_log_escape(out, sizeof out, in);
    for (const unsigned char *p = (const unsigned char *)out; *p; p++)
        assert_true(*p >= 0x20 && *p != 0x7f);
}

static void test_malformed_conninfo_is_not_echoed(void **state)
{
    static const char *const bad[] = {
        "postgres//user:S3cretPw@host/db",
        "postgresql://user:S3cretPw%zz@host/db",
        "postgresql://user:S3cretPw%4@host/db",
        "postgresql://user:S3cretPw@[::1/db",
        "host=h password='S3cretPw",
        "postgresql://user:S3cretPw@host/db?S3cretPw=1",
    };
    char err[512];

    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(rw_conninfo_check(bad[i], "DATABASE_URL", err, sizeof err), -1);
        if (strstr(err, "S3cret") || strstr(err, "user") || !strstr(err, "DATABASE_URL is malformed"))
            fail_msg("case %zu: %s", i, err);
    }
    assert_int_equal(rw_conninfo_check(bad[1], "DATABASE_URL", err, sizeof err), -1);
    assert_non_null(strstr(err, "%25"));
    assert_int_equal(rw_conninfo_check(bad[0], "DATABASE_URL", err, sizeof err), -1);
    assert_non_null(strstr(err, "postgresql://"));
    assert_int_equal(rw_conninfo_check("postgresql://u:p%25w@localhost/db", "X", err, sizeof err), 0);
    assert_int_equal(rw_conninfo_check("host=localhost dbname=x", "X", err, sizeof err), 0);
    assert_int_equal(rw_conninfo_check("", "X", err, sizeof err), -1);
}

static void test_job_error_text(void **state)
{
    static const struct { const char *primary, *sqlstate, *want; } cases[] = {
        {"division by zero", "22012", "division by zero (SQLSTATE 22012)"},
        {"invalid input syntax for type integer: \"secret\nLOG forged\"", "22P02",
         "invalid input syntax for type integer: \"...\" (SQLSTATE 22P02)"},
        {"invalid input syntax for type integer: \"{\"sub\":\"alice\",\"email\":\"a@x\"}\"",
         "22P02", "invalid input syntax for type integer: \"...\" (SQLSTATE 22P02)"},
        {"invalid input syntax for type json: \"", "22P02",
         "invalid input syntax for type json: \"...\" (SQLSTATE 22P02)"},
        {"malformed array literal: \"\"", NULL, "malformed array literal: \"...\""},
        {"relation \"todos\" does not exist", "42P01",
         "relation \"todos\" does not exist (SQLSTATE 42P01)"},
        {"raised\nby the task", "P0001", "raised\\nby the task (SQLSTATE P0001)"},
        {NULL, NULL, "unknown error"},
    };
    char out[4200], big[3000];

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        rw_errtext_pg(out, sizeof out, cases[i].primary, cases[i].sqlstate);
        if (strcmp(out, cases[i].want) != 0)
            fail_msg("case %zu: got \"%s\", want \"%s\"", i, out, cases[i].want);
    }
    memset(big, 'v', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    rw_errtext_pg(out, sizeof out, big, "P0001");
    assert_int_equal(strlen(out), RW_ERRTEXT_MAX + strlen(" (SQLSTATE P0001)"));
    memset(big, '\n', sizeof big - 1);
    rw_errtext_pg(out, sizeof out, big, "P0001");
    assert_null(strchr(out, '\n'));
    assert_true(strlen(out) < sizeof out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_escapes_controls),
        cmocka_unit_test(test_never_splits_an_escape),
        cmocka_unit_test(test_no_output_byte_is_a_control),
        cmocka_unit_test(test_malformed_conninfo_is_not_echoed),
        cmocka_unit_test(test_job_error_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
