#include "worker/base/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>

static enum rw_log_level min_level = RW_LOG_INFO;

void rw_log_set_level(enum rw_log_level level) { min_level = level; }

bool rw_log_enabled(enum rw_log_level level) { return level >= min_level; }

bool rw_log_parse_level(const char *name, enum rw_log_level *out)
{
    static const char *const names[] = {"debug", "info", "warning", "error"};
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(name, names[i]) == 0) {
            *out = (enum rw_log_level)i;
            return true;
        }
    }
    return false;
}

void rw_log(enum rw_log_level level, const char *fmt, ...)
{
    static const char *const tags[] = {"DEBUG", "LOG", "WARNING", "ERROR"};
    char stamp[32];
    struct timeval tv;
    struct tm tm;
    char line[2048];
    va_list ap;

    if (!rw_log_enabled(level))
        return;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    /* one write per line so concurrent processes do not interleave */
    fprintf(stderr, "%s.%03dZ %s %s\n", stamp, (int)(tv.tv_usec / 1000),
            tags[level], line);
}
