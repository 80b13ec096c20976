/* Next fire time: a calendar search on wall-clock ("local") seconds, split
 * into spans of constant UTC offset so DST transitions follow the policy in
 * docs/cron.md:
 *  - fixed-hour jobs (hour field not starting with '*'): a wall time skipped
 *    by spring-forward fires once, at the transition instant; a wall time
 *    repeated by fall-back fires once, on its first occurrence;
 *  - interval-like jobs (hour field starting with '*'): fire at every instant
 *    whose wall time matches, so skipped times do not exist and repeated ones
 *    fire on both passes (an "every 15 minutes" job keeps its rhythm). */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "scheduler/cron/cron.h"

#define SEARCH_YEARS 50                 /* horizon of the calendar search */
#define PROBE_STEP (86400)              /* offset probe step when looking for a DST change */
#define MAX_SHIFT (4 * 3600)            /* largest offset change we look back for */

static int64_t floor_div(int64_t a, int64_t b)
{
    return a / b - (a % b != 0 && ((a < 0) != (b < 0)));
}

/* Howard Hinnant's days_from_civil / civil_from_days. */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = floor_div(y, 400);
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
    z += 719468;
    int64_t era = floor_div(z, 146097);
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

static int days_in_month(int64_t y, int m)
{
    static const int d[13] = {0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : d[m];
}

/* Smallest v in [from, max] whose bit is set, or -1. */
static int next_bit(uint64_t set, int from, int max)
{
    for (int v = from; v <= max; v++)
        if (set & (UINT64_C(1) << v))
            return v;
    return -1;
}

/* Vixie cron: when either day field starts with '*', both must match;
 * when both are restricted, either may. */
static bool day_ok(const struct rw_cron_sched *s, int64_t y, int m, int d)
{
    int64_t days = days_from_civil(y, m, d);
    int wd = (int)((days % 7 + 11) % 7);          /* 1970-01-01 was a Thursday */
    bool dom = s->dom & (UINT32_C(1) << d);
    bool dow = s->dow & (1u << wd);
    return (s->dom_star || s->dow_star) ? (dom && dow) : (dom || dow);
}

/* First wall-clock second >= start that matches, or -1 past the horizon. */
static int64_t cal_next(const struct rw_cron_sched *s, int64_t start)
{
    int64_t days = floor_div(start, 86400), y;
    int sod = (int)(start - days * 86400), m, d;
    civil_from_days(days, &y, &m, &d);
    int h = sod / 3600, mi = sod / 60 % 60, se = sod % 60;
    int64_t ylimit = y + SEARCH_YEARS;
    while (y <= ylimit) {
        int nm = next_bit(s->mon, m, 12);
        if (nm < 0) { y++; m = 1; d = 1; h = mi = se = 0; continue; }
        if (nm != m) { m = nm; d = 1; h = mi = se = 0; }
        if (d > days_in_month(y, m)) { m++; d = 1; h = mi = se = 0; continue; }
        if (!day_ok(s, y, m, d)) { d++; h = mi = se = 0; continue; }
        int nh = next_bit(s->hour, h, 23);
        if (nh < 0) { d++; h = mi = se = 0; continue; }
        if (nh != h) { h = nh; mi = se = 0; }
        int nmi = next_bit(s->min, mi, 59);
        if (nmi < 0) { h++; mi = se = 0; continue; }
        if (nmi != mi) { mi = nmi; se = 0; }
        int nse = next_bit(s->sec, se, 59);
        if (nse < 0) { mi++; se = 0; continue; }
        return days_from_civil(y, m, d) * 86400 + h * 3600 + mi * 60 + nse;
    }
    return -1;
}

/* --- zone offsets through the C library (TZ set for the call) --- */

struct tz_guard {
    char *saved;
    bool had;
};

static void tz_enter(const char *tz, struct tz_guard *g)
{
    const char *old = getenv("TZ");
    char val[RW_CRON_TZ_MAX + 2];
    g->had = old != NULL;
    g->saved = old ? strdup(old) : NULL;
    snprintf(val, sizeof val, ":%s", tz);
    setenv("TZ", val, 1);
    tzset();
}

static void tz_leave(struct tz_guard *g)
{
    if (g->had && g->saved)
        setenv("TZ", g->saved, 1);
    else
        unsetenv("TZ");
    free(g->saved);
    tzset();
}

static int tz_offset(int64_t t)
{
    time_t tt = (time_t)t;
    struct tm tm;
    if (!localtime_r(&tt, &tm))
        return 0;
    return (int)tm.tm_gmtoff;
}

/* Is there an instant in (lo, hi] whose offset differs from off? Then *at is
 * the first such instant and *off2 its offset. */
static bool find_change(int64_t lo, int64_t hi, int off, int64_t *at, int *off2)
{
    while (lo < hi) {
        int64_t probe = hi - lo > PROBE_STEP ? lo + PROBE_STEP : hi;
        if (tz_offset(probe) == off) {
            lo = probe;
            continue;
        }
        int64_t a = lo, b = probe;                /* off(a) == off, off(b) != off */
        while (b - a > 1) {
            int64_t mid = a + (b - a) / 2;
            if (tz_offset(mid) == off)
                a = mid;
            else
                b = mid;
        }
        *at = b;
        *off2 = tz_offset(b);
        return true;
    }
    return false;
}

/* When t lies in the second pass of a fall-back, wall times below the
 * returned value already happened once; else INT64_MIN. */
static int64_t repeat_limit_at(int64_t t, int off)
{
    int64_t at;
    int off_before = tz_offset(t - MAX_SHIFT), off_after;
    if (off_before <= off || !find_change(t - MAX_SHIFT, t, off_before, &at, &off_after))
        return INT64_MIN;
    return at + off_before;
}

static int next_zoned(const struct rw_cron_sched *s, int64_t after, int64_t *next)
{
    int64_t seg = after + 1;
    int off = tz_offset(seg);
    int64_t repeat_until = repeat_limit_at(seg, off);
    for (int guard = 0; guard < 100000; guard++) {
        int64_t wall = cal_next(s, seg + off), at;
        int off2;
        if (wall < 0)
            return -1;
        int64_t u = wall - off;
        if (!find_change(seg, u, off, &at, &off2)) {
            if (!s->hour_star && wall < repeat_until) {
                seg = u + 1;                      /* ran on the first pass */
                continue;
            }
            *next = u;
            return 0;
        }
        if (off2 > off) {                         /* wall [at+off, at+off2) is skipped */
            if (!s->hour_star && wall < at + off2) {
                *next = at;
                return 0;
            }
            repeat_until = INT64_MIN;
        } else {
            repeat_until = at + off;              /* wall [at+off2, at+off) repeats */
        }
        seg = at;
        off = off2;
    }
    return -1;
}

int rw_cron_next(const struct rw_cron_sched *s, const char *tz, int64_t after,
                 int64_t *next)
{
    if (!tz || strcmp(tz, "UTC") == 0) {
        int64_t t = cal_next(s, after + 1);
        if (t < 0)
            return -1;
        *next = t;
        return 0;
    }
    struct tz_guard g;
    tz_enter(tz, &g);
    int rc = next_zoned(s, after, next);
    tz_leave(&g);
    return rc;
}

void rw_cron_fmt_time(int64_t t, char *buf, size_t len)
{
    int64_t days = floor_div(t, 86400), y;
    int sod = (int)(t - days * 86400), m, d;
    civil_from_days(days, &y, &m, &d);
    snprintf(buf, len, "%04lld-%02d-%02dT%02d:%02d:%02dZ", (long long)y, m, d,
             sod / 3600, sod / 60 % 60, sod % 60);
}

static int take_num(const char **p, int ndig, int *out)
{
    int v = 0;
    for (int i = 0; i < ndig; i++) {
        if (!isdigit((unsigned char)(*p)[i]))
            return -1;
        v = v * 10 + ((*p)[i] - '0');
    }
    *p += ndig;
    *out = v;
    return 0;
}

static int take_sep(const char **p, const char *allowed)
{
    if (!**p || !strchr(allowed, **p))
        return -1;
    (*p)++;
    return 0;
}

int rw_cron_parse_time(const char *s, int64_t *out)
{
    int y, mo, d, h, mi, se, oh = 0, om = 0, sign = 0;
    const char *p = s;
    if (take_num(&p, 4, &y) || take_sep(&p, "-") || take_num(&p, 2, &mo) ||
        take_sep(&p, "-") || take_num(&p, 2, &d) || take_sep(&p, "Tt ") ||
        take_num(&p, 2, &h) || take_sep(&p, ":") || take_num(&p, 2, &mi) ||
        take_sep(&p, ":") || take_num(&p, 2, &se))
        return -1;
    if (*p == '.') {
        p++;
        if (!isdigit((unsigned char)*p))
            return -1;
        while (isdigit((unsigned char)*p))
            p++;
    }
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        sign = *p++ == '+' ? 1 : -1;
        if (take_num(&p, 2, &oh) || take_sep(&p, ":") || take_num(&p, 2, &om) ||
            oh > 23 || om > 59)
            return -1;
    } else {
        return -1;
    }
    if (*p || mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h > 23 ||
        mi > 59 || se > 60)
        return -1;
    if (se == 60)
        se = 59;                                   /* leap second: close enough */
    *out = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se
           - sign * (oh * 3600 + om * 60);
    return 0;
}
