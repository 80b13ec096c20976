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

/* The escape for byte(s) at s, or NULL when s[0] is copied as it is;
 * *used is how many input bytes the escape stands for. */
static const char *escape_of(const unsigned char *s, char buf[8], size_t *used)
{
    *used = 1;
    switch (s[0]) {
    case '\n': return "\\n";
    case '\r': return "\\r";
    case '\t': return "\\t";
    }
    if (s[0] < 0x20 || s[0] == 0x7f) {
        snprintf(buf, 8, "\\x%02x", s[0]);
        return buf;
    }
    if (s[0] == 0xc2 && s[1] >= 0x80 && s[1] <= 0x9f) {
        *used = 2;
        snprintf(buf, 8, "\\u%04x", s[1]);
        return buf;
    }
    if (s[0] == 0xe2 && s[1] == 0x80 && (s[2] == 0xa8 || s[2] == 0xa9)) {
        *used = 3;
        snprintf(buf, 8, "\\u%04x", 0x2000 + (s[2] - 0x80));
        return buf;
    }
    return NULL;
}

size_t rw_log_escape(char *dst, size_t n, const char *src)
{
    const unsigned char *s = (const unsigned char *)src;
    size_t o = 0, used, len;
    char buf[8];

    if (n == 0)
        return 0;
    while (*s) {
        const char *e = escape_of(s, buf, &used);
        len = e ? strlen(e) : 1;
        if (o + len >= n)
            break;
        if (e)
            memcpy(dst + o, e, len);
        else
            dst[o] = (char)*s;
        o += len;
        s += used;
    }
    dst[o] = '\0';
    return o;
}

void rw_log(enum rw_log_level level, const char *fmt, ...)
{
    static const char *const tags[] = {"DEBUG", "LOG", "WARNING", "ERROR"};
    char stamp[32];
    struct timeval tv;
    struct tm tm;
    char line[2048], safe[4096];
    va_list ap;

    if (!rw_log_enabled(level))
        return;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    rw_log_escape(safe, sizeof safe, line);
    /* one write per line so concurrent processes do not interleave */
    fprintf(stderr, "%s.%03dZ %s %s\n", stamp, (int)(tv.tv_usec / 1000),
            tags[level], safe);
}
