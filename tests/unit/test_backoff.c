/* Retry delays: exponential, capped, with equal jitter. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "jobs/exec/backoff.h"

static void test_grows_and_caps(void **state)
{
    static const struct { int attempt; long long base, max; uint32_t rnd; long long want; } cases[] = {
        {1, 1000, 3600000, 0, 500},            /* half fixed, no jitter */
        {1, 1000, 3600000, 500, 1000},         /* full jitter range top */
        {1, 1000, 3600000, 501, 500},          /* random wraps modulo (half+1) */
        {2, 1000, 3600000, 0, 1000},
        {3, 1000, 3600000, 0, 2000},
        {10, 1000, 3600000, 0, 256000},
        {12, 1000, 3600000, 0, 1024000},
        {14, 1000, 3600000, 0, 1800000},       /* capped at max: 3,600,000 / 2 */
        {1000, 1000, 3600000, 0, 1800000},     /* no overflow on huge attempts */
        {1, 0, 10, 0, 1},                      /* base < 1 behaves as 1 ms */
        {5, 100, 0, 0, 1},                     /* max < 1 behaves as 1 ms */
        {0, 400, 10000, 0, 200},               /* attempt 0 treated like 1 */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        long long got = rw_backoff_ms(cases[i].attempt, cases[i].base, cases[i].max, cases[i].rnd);
        if (got != cases[i].want)
            fail_msg("case %zu: attempt %d base %lld max %lld rnd %u: got %lld, want %lld", i,
                     cases[i].attempt, cases[i].base, cases[i].max, cases[i].rnd, got,
                     cases[i].want);
    }
}

static void test_bounds_hold_for_any_random(void **state)
{
    for (int attempt = 1; attempt <= 30; attempt++) {
        long long lo = -1, hi = -1;
        for (uint32_t r = 0; r < 5000; r += 7) {
            long long d = rw_backoff_ms(attempt, 250, 60000, r * 2654435761u);
            assert_true(d >= 1 && d <= 60000);
            if (lo < 0 || d < lo)
                lo = d;
            if (d > hi)
                hi = d;
        }
        long long full = 250LL << (attempt - 1 > 20 ? 20 : attempt - 1);
        if (full > 60000)
            full = 60000;
        assert_true(lo >= full - full / 2);
        assert_true(hi <= full);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grows_and_caps),
        cmocka_unit_test(test_bounds_hold_for_any_random),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
