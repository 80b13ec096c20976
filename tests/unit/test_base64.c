/* The one base64 decoder (worker/base/base64.c), both alphabets. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "worker/base/base64.h"

struct b64_case {
    enum rw_b64_alphabet a;
    const char *in;
    const char *out;   /* NULL: refused */
};

static const struct b64_case cases[] = {
    {RW_B64_STD, "YWJj", "abc"},
    {RW_B64_STD, "YWI=", "ab"},
    {RW_B64_STD, "YQ==", "a"},
    {RW_B64_STD, "+/+/", "\xfb\xff\xbf"},
    {RW_B64_STD, "", NULL},          /* empty secret */
    {RW_B64_STD, "YQ=", NULL},       /* not whole quads */
    {RW_B64_STD, "YWJ", NULL},       /* padding missing */
    {RW_B64_STD, "Y===", NULL},      /* three pads */
    {RW_B64_STD, "YR==", NULL},      /* non-canonical trailing bits */
    {RW_B64_STD, "YW=j", NULL},      /* pad inside */
    {RW_B64_STD, "YQ==YWJj", NULL},  /* pad before the end */
    {RW_B64_STD, "-_-_", NULL},      /* url alphabet */
    {RW_B64_URL, "-_-_", "\xfb\xff\xbf"},
    {RW_B64_URL, "YQ", "a"},
    {RW_B64_URL, "", ""},
    {RW_B64_URL, "YQ==", NULL},      /* no padding in base64url */
    {RW_B64_URL, "+/+/", NULL},
    {RW_B64_URL, "Y", NULL},
};

static void test_cases(void **state)
{
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        unsigned char out[16];
        size_t n = 0;
        bool ok = rw_b64_decode(cases[i].a, cases[i].in, strlen(cases[i].in), out,
                                sizeof out, &n);
        if (!cases[i].out) {
            assert_false(ok);
            continue;
        }
        assert_true(ok);
        assert_int_equal(n, strlen(cases[i].out));
        assert_memory_equal(out, cases[i].out, n);
    }
}

static void test_overflow(void **state)
{
    unsigned char out[2];
    size_t n;

    assert_false(rw_b64_decode(RW_B64_STD, "YWJj", 4, out, sizeof out, &n));
    assert_true(rw_b64_decode(RW_B64_STD, "YWI=", 4, out, sizeof out, &n));
    assert_false(rw_b64url_decode("YWJj", 4, out, sizeof out, &n));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cases),
        cmocka_unit_test(test_overflow),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
