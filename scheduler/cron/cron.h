/* Crontab parsing and next-fire computation.
 *
 * A crontab is text, one job per line:
 *   <schedule> <task> [?options] [JSON payload]
 * with '#' comments and blank lines. See docs/cron.md for the syntax and the
 * clock-jump and DST policy.
 *
 * Everything here is pure computation except two things the C library forces
 * on us: a tz= option is checked against the zoneinfo directory (TZDIR or
 * /usr/share/zoneinfo), and next-time computation in a named zone uses the
 * C library's zone code (it sets TZ for the length of the call and restores
 * it; the process is single-threaded). Times are int64 seconds since the
 * Unix epoch (UTC). */
#ifndef RW_CRON_H
#define RW_CRON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RW_CRON_MAX_FILE (1024 * 1024)   /* bytes in one crontab */
#define RW_CRON_MAX_LINE 8192            /* bytes in one line */
#define RW_CRON_MAX_ENTRIES 10000
#define RW_CRON_MAX_ERRORS 50            /* errors kept per parse */
#define RW_CRON_NAME_MAX 128             /* task and id length */
#define RW_CRON_TZ_MAX 64

/* A parsed schedule: bit sets of allowed values per field. */
struct rw_cron_sched {
    uint64_t sec;          /* bits 0..59 (only bit 0 for five-field lines) */
    uint64_t min;          /* bits 0..59 */
    uint32_t hour;         /* bits 0..23 */
    uint32_t dom;          /* bits 1..31 */
    uint16_t mon;          /* bits 1..12 */
    uint8_t dow;           /* bits 0..6, Sunday = 0 */
    bool dom_star;         /* field starts with '*' (Vixie's rule) */
    bool dow_star;
    bool hour_star;        /* interval-like job: see the DST policy */
};

/* One crontab line. All strings are owned by the entry (freed with the tab). */
struct rw_cron_entry {
    int line;                        /* 1-based line number in the file */
    char id[RW_CRON_NAME_MAX + 1];   /* stable identity; defaults to task */
    char task[RW_CRON_NAME_MAX + 1];
    char tz[RW_CRON_TZ_MAX + 1];     /* IANA zone; "UTC" by default */
    struct rw_cron_sched sched;
    int64_t fill_s;                  /* backfill window in seconds; 0 = none */
    char *queue;                     /* NULL = no named queue */
    int priority;                    /* default 0 */
    int max_attempts;                /* 0 = not set (task's or worker default) */
    char *run_as;                    /* NULL = the task's run_as */
    char *subject;                   /* NULL = none */
    bool claims_from_subject;        /* set by the task check: the job gets
                                        claims {"sub": subject} (user tasks) */
    char *payload;                   /* compact JSON object text, never NULL */
};

struct rw_crontab {
    int n;
    struct rw_cron_entry *entries;   /* owned, n of them, in file order */
};

struct rw_cron_error {
    int line;                        /* 0 = not tied to a line */
    char msg[240];
};

/* Errors of one parse, in line order; nerr may exceed RW_CRON_MAX_ERRORS,
 * only the first ones are kept. */
struct rw_cron_diag {
    int nerr;
    struct rw_cron_error err[RW_CRON_MAX_ERRORS];
};

/* Parses len bytes of crontab text (need not be NUL-terminated). On success
 * returns 0 and *out is a new crontab the caller owns (rw_crontab_free). On
 * any bad line returns -1, *out is NULL and diag lists every bad line. */
int rw_crontab_parse(const char *text, size_t len, struct rw_crontab **out,
                     struct rw_cron_diag *diag) __attribute__((warn_unused_result));

/* Reads and parses a file. On failure returns -1 and writes
 * "FILE:LINE: what is wrong" lines (one per error, '\n'-separated) to err. */
int rw_crontab_load(const char *path, struct rw_crontab **out, char *err,
                    size_t errlen) __attribute__((warn_unused_result));

void rw_crontab_free(struct rw_crontab **tab);

/* Parses one schedule ("*\/5 * * * *", six fields, or an @macro) into s.
 * Returns 0, or -1 with a message in err. */
int rw_cron_sched_parse(const char *spec, struct rw_cron_sched *s, char *err,
                        size_t errlen) __attribute__((warn_unused_result));

/* Parses "30s", "10m", "1h30m", "2d" into seconds (> 0). Returns 0 or -1. */
int rw_cron_duration_parse(const char *s, int64_t *out) __attribute__((warn_unused_result));

/* Is tz a zone name we can use ("UTC" or a file under the zoneinfo dir)? */
bool rw_cron_tz_valid(const char *tz);

/* The first fire time strictly after `after` in zone tz (NULL or "UTC" for
 * UTC), following the DST policy of docs/cron.md. Returns 0, or -1 when the
 * schedule never fires within the search horizon. */
int rw_cron_next(const struct rw_cron_sched *s, const char *tz, int64_t after,
                 int64_t *next) __attribute__((warn_unused_result));

/* Formats t as RFC 3339 UTC ("2024-03-10T07:00:00Z") into buf (>= 21 bytes). */
void rw_cron_fmt_time(int64_t t, char *buf, size_t len);
/* Parses RFC 3339 ("2024-03-10T07:00:00Z", "...+01:00", fractional seconds
 * are dropped). Returns 0 or -1. */
int rw_cron_parse_time(const char *s, int64_t *out) __attribute__((warn_unused_result));

#endif
