/* Logging in PostgreSQL's message style: lower case, no trailing period.
 * Lines go to stderr as "<UTC time> <LEVEL> <message>". Secrets, tokens and
 * full claims must never be passed here; job ids, task names and `sub` may. */
#ifndef RW_LOG_H
#define RW_LOG_H

#include <stdbool.h>

enum rw_log_level { RW_LOG_DEBUG = 0, RW_LOG_INFO, RW_LOG_WARNING, RW_LOG_ERROR };

/* Set once at start-up, before the loop runs (the one piece of process-wide
 * state besides the loop and the signal flag). */
void rw_log_set_level(enum rw_log_level level);
bool rw_log_parse_level(const char *name, enum rw_log_level *out);
bool rw_log_enabled(enum rw_log_level level);

void rw_log(enum rw_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

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
