/* Crontab parser and next-fire computation: table-driven from
 * cases/cron_next.txt and cases/cron_lines.txt, plus option fields, whole
 * files, durations and RFC 3339 times. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "scheduler/cron/cron.h"

#define MAX_CASE_LINE 1024

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\n'))
        s[--n] = '\0';
    return s;
}

/* Splits at the first " | "; returns the rest or NULL. */
static char *split_bar(char *s)
{
    char *bar = strstr(s, " | ");
    if (!bar)
        return NULL;
    *bar = '\0';
    return bar + 3;
}

static FILE *open_cases(const char *name)
{
    FILE *f = fopen(name, "r");
    if (!f)
        fail_msg("could not open %s (run from tests/unit)", name);
    return f;
}

/* One next-time case; returns the number of mismatches (0 or 1). */
static int check_next(int lineno, char *spec, char *tz, char *from, char *want)
{
    struct rw_cron_sched s;
    char err[256], got[32];
    int64_t t;
    if (rw_cron_sched_parse(spec, &s, err, sizeof err) < 0) {
        print_error("cron_next.txt:%d: \"%s\" refused: %s\n", lineno, spec, err);
        return 1;
    }
    if (rw_cron_parse_time(from, &t) < 0) {
        print_error("cron_next.txt:%d: bad time %s\n", lineno, from);
        return 1;
    }
    char *save = NULL;
    for (char *w = strtok_r(want, " ", &save); w; w = strtok_r(NULL, " ", &save)) {
        if (rw_cron_next(&s, tz, t, &t) < 0) {
            print_error("cron_next.txt:%d: no fire time, want %s\n", lineno, w);
            return 1;
        }
        rw_cron_fmt_time(t, got, sizeof got);
        if (strcmp(got, w) != 0) {
            print_error("cron_next.txt:%d: \"%s\" %s: got %s, want %s\n", lineno, spec,
                        tz, got, w);
            return 1;
        }
    }
    return 0;
}

static void test_next_times(void **state)
{
    FILE *f = open_cases("cases/cron_next.txt");
    char buf[MAX_CASE_LINE];
    int lineno = 0, ncases = 0, bad = 0;
    while (fgets(buf, sizeof buf, f)) {
        lineno++;
        char *spec = trim(buf);
        if (*spec == '\0' || *spec == '#')
            continue;
        char *tz = split_bar(spec), *from = tz ? split_bar(tz) : NULL;
        char *want = from ? split_bar(from) : NULL;
        assert_non_null(want);
        bad += check_next(lineno, trim(spec), trim(tz), trim(from), trim(want));
        ncases++;
    }
    fclose(f);
    assert_int_equal(bad, 0);
    assert_true(ncases >= 60);
}

static int check_line(int lineno, const char *kind, const char *want_err, const char *line)
{
    struct rw_crontab *tab = NULL;
    struct rw_cron_diag d;
    int rc = rw_crontab_parse(line, strlen(line), &tab, &d);
    if (strcmp(kind, "ok") == 0 && rc == 0 && tab->n == 1) {
        rw_crontab_free(&tab);
        return 0;
    }
    if (strcmp(kind, "err") == 0 && rc < 0 && d.nerr == 1 && d.err[0].line == 1 &&
        strstr(d.err[0].msg, want_err))
        return 0;
    print_error("cron_lines.txt:%d: %s \"%s\": got %s%s\n", lineno, kind, line,
                rc == 0 ? "ok" : "error: ", rc == 0 ? "" : d.err[0].msg);
    rw_crontab_free(&tab);
    return 1;
}

static void test_lines(void **state)
{
    FILE *f = open_cases("cases/cron_lines.txt");
    char buf[MAX_CASE_LINE];
    int lineno = 0, nok = 0, nerr = 0, bad = 0;
    while (fgets(buf, sizeof buf, f)) {
        lineno++;
        buf[strcspn(buf, "\n")] = '\0';
        if (buf[0] == '\0' || buf[0] == '#')
            continue;
        char *rest = split_bar(buf);
        assert_non_null(rest);
        if (strcmp(buf, "ok") == 0) {
            bad += check_line(lineno, "ok", NULL, rest);
            nok++;
        } else {
            char *line = split_bar(rest);
            assert_non_null(line);
            bad += check_line(lineno, "err", rest, line);
            nerr++;
        }
    }
    fclose(f);
    assert_int_equal(bad, 0);
    assert_true(nok >= 15 && nerr >= 40);
}

static struct rw_crontab *parse_ok(const char *text)
{
    struct rw_crontab *tab;
    struct rw_cron_diag d;
    int rc = rw_crontab_parse(text, strlen(text), &tab, &d);
    if (rc < 0)
        fail_msg("unexpected error on line %d: %s", d.err[0].line, d.err[0].msg);
    return tab;
}

static void test_options_reach_the_entry(void **state)
{
    struct rw_crontab *tab = parse_ok(
        "*/5 * * * * * digest ?id=digest5&fill=1h30m&tz=Europe/Berlin&queue=mail&"
        "priority=-7&max=4&run_as=user&subject=alice {\"kind\": \"short\"}\n");
    const struct rw_cron_entry *e = &tab->entries[0];
    assert_string_equal(e->id, "digest5");
    assert_string_equal(e->task, "digest");
    assert_string_equal(e->tz, "Europe/Berlin");
    assert_int_equal(e->fill_s, 5400);
    assert_string_equal(e->queue, "mail");
    assert_int_equal(e->priority, -7);
    assert_int_equal(e->max_attempts, 4);
    assert_string_equal(e->run_as, "user");
    assert_string_equal(e->subject, "alice");
    assert_string_equal(e->payload, "{\"kind\":\"short\"}");
    uint64_t every5 = 0;
    for (int sec = 0; sec < 60; sec += 5)
        every5 |= UINT64_C(1) << sec;
    assert_int_equal(e->sched.sec, every5);
    rw_crontab_free(&tab);
    assert_null(tab);
}

static void test_defaults(void **state)
{
    struct rw_crontab *tab = parse_ok("0 3 * * * nightly\n");
    const struct rw_cron_entry *e = &tab->entries[0];
    assert_string_equal(e->id, "nightly");
    assert_string_equal(e->tz, "UTC");
    assert_int_equal(e->fill_s, 0);
    assert_null(e->queue);
    assert_null(e->run_as);
    assert_int_equal(e->max_attempts, 0);
    assert_string_equal(e->payload, "{}");
    assert_int_equal(e->sched.sec, 1);
    assert_int_equal(e->sched.hour, 1u << 3);
    rw_crontab_free(&tab);
}

static void test_file_comments_and_line_numbers(void **state)
{
    const char *text = "# nightly jobs\n\n   # indented comment\n0 3 * * * a\r\n"
                       "\t\n@hourly b ?id=b1\n";
    struct rw_crontab *tab = parse_ok(text);
    assert_int_equal(tab->n, 2);
    assert_int_equal(tab->entries[0].line, 4);
    assert_string_equal(tab->entries[0].task, "a");
    assert_int_equal(tab->entries[1].line, 6);
    assert_string_equal(tab->entries[1].id, "b1");
    rw_crontab_free(&tab);
}

static void test_every_bad_line_is_reported(void **state)
{
    const char *text = "0 3 * * * a\n61 * * * * b\n@hourly a\n* * * * * c ?max=0\n"
                       "@daily d ?id=a\n";
    struct rw_crontab *tab = (struct rw_crontab *)1;
    struct rw_cron_diag d;
    assert_int_equal(rw_crontab_parse(text, strlen(text), &tab, &d), -1);
    assert_null(tab);
    assert_int_equal(d.nerr, 4);
    assert_int_equal(d.err[0].line, 2);
    assert_int_equal(d.err[1].line, 4);
    /* duplicates come last, each naming the first use */
    assert_int_equal(d.err[2].line, 3);
    assert_non_null(strstr(d.err[2].msg, "duplicate id \"a\" (first used on line 1"));
    assert_int_equal(d.err[3].line, 5);
}

static void test_limits(void **state)
{
    struct rw_crontab *tab;
    struct rw_cron_diag d;
    size_t n = RW_CRON_MAX_LINE + 10;
    char *big = malloc(n + 1);
    assert_non_null(big);
    memset(big, ' ', n);
    memcpy(big, "* * * * * t {\"a\":\"", 18);
    big[n - 2] = '"';
    big[n - 1] = '}';
    big[n] = '\0';
    assert_int_equal(rw_crontab_parse(big, n, &tab, &d), -1);
    assert_non_null(strstr(d.err[0].msg, "longer than"));
    free(big);
    const char nul[] = "* * * * * t\0x\n";
    assert_int_equal(rw_crontab_parse(nul, sizeof nul - 1, &tab, &d), -1);
    assert_non_null(strstr(d.err[0].msg, "NUL"));
}

static void test_durations(void **state)
{
    int64_t v;
    static const struct { const char *in; int64_t want; } good[] = {
        {"30s", 30}, {"10m", 600}, {"1h", 3600}, {"2d", 172800}, {"1h30m", 5400},
        {"1d2h3m4s", 93784},
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        assert_int_equal(rw_cron_duration_parse(good[i].in, &v), 0);
        assert_int_equal(v, good[i].want);
    }
    static const char *const bad[] = {"", "1", "h", "1w", "30m1h", "1h1h", "-5m", "0s",
                                      "1.5h", "9999999999s"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(rw_cron_duration_parse(bad[i], &v), -1);
}

static void test_times(void **state)
{
    int64_t t;
    char buf[32];
    assert_int_equal(rw_cron_parse_time("2024-03-10T07:00:00Z", &t), 0);
    assert_int_equal(t, 1710054000);
    assert_int_equal(rw_cron_parse_time("2024-03-10T08:00:00.250+01:00", &t), 0);
    assert_int_equal(t, 1710054000);
    assert_int_equal(rw_cron_parse_time("1969-12-31T23:59:59Z", &t), 0);
    assert_int_equal(t, -1);
    rw_cron_fmt_time(-1, buf, sizeof buf);
    assert_string_equal(buf, "1969-12-31T23:59:59Z");
    rw_cron_fmt_time(951782400, buf, sizeof buf);
    assert_string_equal(buf, "2000-02-29T00:00:00Z");
    static const char *const bad[] = {"2024-02-30T00:00:00Z", "2023-02-29T00:00:00Z",
                                      "2024-03-10T07:00:00", "2024-03-10 07:00Z",
                                      "2024-13-01T00:00:00Z", "2024-03-10T24:00:00Z", ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(rw_cron_parse_time(bad[i], &t), -1);
}

static void test_tz_env_is_restored(void **state)
{
    struct rw_cron_sched s;
    char err[128];
    int64_t t;
    assert_int_equal(rw_cron_sched_parse("0 9 * * *", &s, err, sizeof err), 0);
    setenv("TZ", "Asia/Tokyo", 1);
    assert_int_equal(rw_cron_next(&s, "Europe/Berlin", 0, &t), 0);
    assert_string_equal(getenv("TZ"), "Asia/Tokyo");
    unsetenv("TZ");
    assert_int_equal(rw_cron_next(&s, "Europe/Berlin", 0, &t), 0);
    assert_null(getenv("TZ"));
    assert_int_equal(t, 8 * 3600);         /* 09:00 CET on 1 Jan 1970 */
}

static void test_tz_names(void **state)
{
    assert_true(rw_cron_tz_valid("UTC"));
    assert_true(rw_cron_tz_valid("America/New_York"));
    assert_false(rw_cron_tz_valid("Mars/Olympus"));
    assert_false(rw_cron_tz_valid("/etc/passwd"));
    assert_false(rw_cron_tz_valid("../zoneinfo/UTC"));
    assert_false(rw_cron_tz_valid(""));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_next_times),
        cmocka_unit_test(test_lines),
        cmocka_unit_test(test_options_reach_the_entry),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_file_comments_and_line_numbers),
        cmocka_unit_test(test_every_bad_line_is_reported),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_durations),
        cmocka_unit_test(test_times),
        cmocka_unit_test(test_tz_env_is_restored),
        cmocka_unit_test(test_tz_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
