/* Logging in PostgreSQL's message style: lower case, no trailing period.
 * Lines go to stderr as "<UTC time> <LEVEL> <message>". Secrets, tokens and
 * full claims must never be passed here; job ids, task names and `sub` may. */
#ifndef RW_LOG_H
#define RW_LOG_H

#include <stdbool.h>
#include <stddef.h>

enum rw_log_level { RW_LOG_DEBUG = 0, RW_LOG_INFO, RW_LOG_WARNING, RW_LOG_ERROR };

/* Set once at start-up, before the loop runs (the one piece of process-wide
 * state besides the loop and the signal flag). */
void rw_log_set_level(enum rw_log_level level);
bool rw_log_parse_level(const char *name, enum rw_log_level *out);
bool rw_log_enabled(enum rw_log_level level);

/* Every line is passed through rw_log_escape: a value with a newline (a
 * PostgreSQL message echoing a payload, a token's `sub`) cannot forge a line. */
void rw_log(enum rw_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Copies src into dst (n bytes, always NUL-terminated, truncated to fit)
 * with control characters made visible: \n \r \t as those two characters,
 * every other C0 byte and DEL as \xNN, and the C1 controls and U+2028/U+2029
 * (line breaks to some log viewers) as \uNNNN. Backslashes and other bytes,
 * UTF-8 included, are copied as they are. Never splits an escape. Returns
 * the length written. */
size_t rw_log_escape(char *dst, size_t n, const char *src);

#define rw_debug(...) \
    do { if (rw_log_enabled(RW_LOG_DEBUG)) rw_log(RW_LOG_DEBUG, __VA_ARGS__); } while (0)
#define rw_info(...) rw_log(RW_LOG_INFO, __VA_ARGS__)
#define rw_warn(...) rw_log(RW_LOG_WARNING, __VA_ARGS__)
#define rw_error(...) rw_log(RW_LOG_ERROR, __VA_ARGS__)

/* Job-scoped lines carry the job id, task and attempt. */
#define rw_job_log(level, job, fmt, ...)                                       \
    do { if (rw_log_enabled(level))                                            \
        rw_log(level, "job=%lld task=%s attempt=%d: " fmt,                    \
               (long long)(job)->id, (job)->task, (job)->attempts,             \
               ##__VA_ARGS__); } while (0)

#endif
