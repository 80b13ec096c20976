/* Schedule expressions: five or six fields, or an @macro. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "scheduler/cron/cron.h"

#define FIELD_TOKEN_MAX 256

enum field_kind { F_SEC, F_MIN, F_HOUR, F_DOM, F_MON, F_DOW };

struct field_def {
    const char *name;
    int lo, hi;
    const char *const *names;    /* names[i] is value lo_names + i */
    int names_base;
};

static const char *const mon_names[] = {"jan", "feb", "mar", "apr", "may", "jun",
                                        "jul", "aug", "sep", "oct", "nov", "dec", NULL};
static const char *const dow_names[] = {"sun", "mon", "tue", "wed", "thu", "fri",
                                        "sat", NULL};

static const struct field_def field_defs[] = {
    [F_SEC] = {"second", 0, 59, NULL, 0},
    [F_MIN] = {"minute", 0, 59, NULL, 0},
    [F_HOUR] = {"hour", 0, 23, NULL, 0},
    [F_DOM] = {"day-of-month", 1, 31, NULL, 0},
    [F_MON] = {"month", 1, 12, mon_names, 1},
    [F_DOW] = {"day-of-week", 0, 7, dow_names, 0},
};

static const struct { const char *name; const char *expr; } macros[] = {
    {"@yearly", "0 0 1 1 *"},  {"@annually", "0 0 1 1 *"},
    {"@monthly", "0 0 1 * *"}, {"@weekly", "0 0 * * 0"},
    {"@daily", "0 0 * * *"},   {"@midnight", "0 0 * * *"},
    {"@hourly", "0 * * * *"},
};

/* Reads a number or a name at *p; advances *p. Returns 0 or -1. */
static int parse_value(const struct field_def *fd, const char **p, int *out,
                       char *err, size_t errlen)
{
    const char *s = *p;
    if (isdigit((unsigned char)*s)) {
        long v = 0;
        int ndig = 0;
        while (isdigit((unsigned char)*s)) {
            if (++ndig > 4) {
                snprintf(err, errlen, "%s value is too long", fd->name);
                return -1;
            }
            v = v * 10 + (*s++ - '0');
        }
        if (v < fd->lo || v > fd->hi) {
            snprintf(err, errlen, "%s %ld is out of range %d-%d", fd->name, v,
                     fd->lo, fd->hi);
            return -1;
        }
        *out = (int)v;
        *p = s;
        return 0;
    }
    if (fd->names && isalpha((unsigned char)*s)) {
        size_t n = 0;
        while (isalpha((unsigned char)s[n]))
            n++;
        for (int i = 0; fd->names[i]; i++) {
            if (n == 3 && strncasecmp(s, fd->names[i], 3) == 0) {
                *out = fd->names_base + i;
                *p = s + n;
                return 0;
            }
        }
        snprintf(err, errlen, "unknown %s name \"%.*s\"", fd->name, (int)(n > 20 ? 20 : n), s);
        return -1;
    }
    snprintf(err, errlen, "expected a %s value, found \"%.20s\"", fd->name,
             *s ? s : "(end)");
    return -1;
}

static int parse_step(const struct field_def *fd, const char **p, int *step,
                      char *err, size_t errlen)
{
    const char *s = *p;
    long v = 0;
    int ndig = 0;
    if (!isdigit((unsigned char)*s)) {
        snprintf(err, errlen, "%s step must be a number", fd->name);
        return -1;
    }
    while (isdigit((unsigned char)*s)) {
        if (++ndig > 4) {
            snprintf(err, errlen, "%s step is too long", fd->name);
            return -1;
        }
        v = v * 10 + (*s++ - '0');
    }
    if (v == 0) {
        snprintf(err, errlen, "%s step must not be zero", fd->name);
        return -1;
    }
    if (v > fd->hi) {
        snprintf(err, errlen, "%s step %ld is larger than %d", fd->name, v, fd->hi);
        return -1;
    }
    *step = (int)v;
    *p = s;
    return 0;
}

/* One list item: '*' | v | v-w, then an optional /step. */
static int parse_item(enum field_kind k, const char **p, uint64_t *bits,
                      char *err, size_t errlen)
{
    const struct field_def *fd = &field_defs[k];
    int lo, hi, step = 1;
    bool single = false;                     /* a lone value: "5", "5/15" */
    if (**p == '*') {
        lo = fd->lo;
        hi = fd->hi;                         /* day-of-week 0-7: 7 folds into 0 */
        (*p)++;
    } else {
        if (parse_value(fd, p, &lo, err, errlen) < 0)
            return -1;
        hi = lo;
        single = **p != '-';
        if (**p == '-') {
            bool name = isalpha((unsigned char)(*p)[1]);
            (*p)++;
            if (parse_value(fd, p, &hi, err, errlen) < 0)
                return -1;
            if (k == F_DOW && name && hi == 0 && lo > 0)
                hi = 7;                      /* fri-sun means 5-7 */
            if (hi < lo) {
                snprintf(err, errlen, "%s range %d-%d is reversed", fd->name, lo, hi);
                return -1;
            }
        }
    }
    if (**p == '/') {
        (*p)++;
        if (parse_step(fd, p, &step, err, errlen) < 0)
            return -1;
        if (single)
            hi = fd->hi;                     /* "5/15" means 5-max/15; "5-5/15" is 5 */
    }
    for (int v = lo; v <= hi; v += step)
        *bits |= UINT64_C(1) << (k == F_DOW && v == 7 ? 0 : v);
    return 0;
}

static int parse_field(enum field_kind k, const char *tok, uint64_t *bits,
                       char *err, size_t errlen)
{
    const char *p = tok;
    *bits = 0;
    if (strlen(tok) > FIELD_TOKEN_MAX) {
        snprintf(err, errlen, "%s field is too long", field_defs[k].name);
        return -1;
    }
    for (;;) {
        if (parse_item(k, &p, bits, err, errlen) < 0)
            return -1;
        if (*p == '\0')
            return 0;
        if (*p != ',') {
            snprintf(err, errlen, "unexpected \"%c\" in %s field \"%.40s\"", *p,
                     field_defs[k].name, tok);
            return -1;
        }
        p++;
    }
}

static int days_max(int month)
{
    static const int d[13] = {0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return d[month];
}

/* A schedule whose days never exist (e.g. 30 February) never fires. */
static int check_days_exist(const struct rw_cron_sched *s, char *err, size_t errlen)
{
    if (s->dom_star || !s->dow_star)
        return 0;
    for (int m = 1; m <= 12; m++) {
        if (!(s->mon & (1u << m)))
            continue;
        for (int d = 1; d <= days_max(m); d++)
            if (s->dom & (UINT32_C(1) << d))
                return 0;
    }
    snprintf(err, errlen, "the day-of-month never occurs in the chosen months");
    return -1;
}

static int split_fields(const char *spec, char tok[6][FIELD_TOKEN_MAX + 2], int *n,
                        char *err, size_t errlen)
{
    const char *p = spec;
    *n = 0;
    while (*p) {
        while (*p == ' ' || *p == '\t')
            p++;
        if (!*p)
            break;
        size_t len = strcspn(p, " \t");
        if (*n == 6) {
            snprintf(err, errlen, "too many schedule fields (expected 5 or 6)");
            return -1;
        }
        if (len > FIELD_TOKEN_MAX) {
            snprintf(err, errlen, "schedule field is too long");
            return -1;
        }
        memcpy(tok[*n], p, len);
        tok[(*n)++][len] = '\0';
        p += len;
    }
    if (*n != 5 && *n != 6) {
        snprintf(err, errlen, "expected 5 or 6 schedule fields, found %d", *n);
        return -1;
    }
    return 0;
}

int rw_cron_sched_parse(const char *spec, struct rw_cron_sched *s, char *err,
                        size_t errlen)
{
    char tok[6][FIELD_TOKEN_MAX + 2];
    int n;
    uint64_t bits[6] = {1, 0, 0, 0, 0, 0};   /* five fields: second 0 */

    memset(s, 0, sizeof *s);
    if (spec[0] == '@') {
        for (size_t i = 0; i < sizeof macros / sizeof macros[0]; i++)
            if (strcasecmp(spec, macros[i].name) == 0)
                return rw_cron_sched_parse(macros[i].expr, s, err, errlen);
        snprintf(err, errlen, "unknown macro \"%.40s\" (use @hourly, @daily, "
                 "@weekly, @monthly, @yearly or @annually)", spec);
        return -1;
    }
    if (split_fields(spec, tok, &n, err, errlen) < 0)
        return -1;
    int off = n == 6 ? 0 : 1;                 /* field kind of tok[0] */
    for (int i = 0; i < n; i++)
        if (parse_field((enum field_kind)(i + off), tok[i], &bits[i + off], err, errlen) < 0)
            return -1;
    s->sec = bits[F_SEC];
    s->min = bits[F_MIN];
    s->hour = (uint32_t)bits[F_HOUR];
    s->dom = (uint32_t)bits[F_DOM];
    s->mon = (uint16_t)bits[F_MON];
    s->dow = (uint8_t)bits[F_DOW];
    s->hour_star = tok[F_HOUR - off][0] == '*';
    s->dom_star = tok[F_DOM - off][0] == '*';
    s->dow_star = tok[F_DOW - off][0] == '*';
    return check_days_exist(s, err, errlen);
}

int rw_cron_duration_parse(const char *s, int64_t *out)
{
    int64_t total = 0;
    int last_rank = 5;     /* units must come in order d, h, m, s, each once */
    if (!*s)
        return -1;
    while (*s) {
        int64_t v = 0;
        int ndig = 0;
        while (isdigit((unsigned char)*s)) {
            if (++ndig > 9)
                return -1;
            v = v * 10 + (*s++ - '0');
        }
        if (ndig == 0)
            return -1;
        const char *units = "smhd";
        const char *u = *s ? strchr(units, *s) : NULL;
        if (!u)
            return -1;
        int rank = (int)(u - units);
        static const int64_t mult[] = {1, 60, 3600, 86400};
        if (rank >= last_rank)
            return -1;
        last_rank = rank;
        total += v * mult[rank];
        s++;
    }
    if (total <= 0 || total > INT64_C(100) * 365 * 86400)
        return -1;
    *out = total;
    return 0;
}
