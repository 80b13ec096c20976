/* Reading a crontab file (the one piece of the cron module that does I/O). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scheduler/cron/cron.h"

/* Reads at most RW_CRON_MAX_FILE bytes; returns a malloc'd buffer or NULL. */
static char *read_all(const char *path, size_t *len, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: could not open crontab: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = malloc(RW_CRON_MAX_FILE + 1);
    size_t n = buf ? fread(buf, 1, RW_CRON_MAX_FILE + 1, f) : 0;
    bool bad = !buf || ferror(f);
    fclose(f);
    if (bad) {
        snprintf(err, errlen, "%s: could not read crontab", path);
        free(buf);
        return NULL;
    }
    if (n > RW_CRON_MAX_FILE) {
        snprintf(err, errlen, "%s: crontab is larger than %d bytes", path, RW_CRON_MAX_FILE);
        free(buf);
        return NULL;
    }
    *len = n;
    return buf;
}

int rw_crontab_load(const char *path, struct rw_crontab **out, char *err, size_t errlen)
{
    size_t len;
    *out = NULL;
    char *text = read_all(path, &len, err, errlen);
    if (!text)
        return -1;
    struct rw_cron_diag *d = malloc(sizeof *d);
    if (!d) {
        free(text);
        snprintf(err, errlen, "%s: out of memory", path);
        return -1;
    }
    int rc = rw_crontab_parse(text, len, out, d);
    free(text);
    if (rc < 0 && errlen > 0) {
        size_t pos = 0;
        err[0] = '\0';
        int shown = d->nerr < RW_CRON_MAX_ERRORS ? d->nerr : RW_CRON_MAX_ERRORS;
        for (int i = 0; i < shown && pos < errlen; i++) {
            int w = snprintf(err + pos, errlen - pos, "%s%s:%d: %s", i ? "\n" : "", path,
                             d->err[i].line, d->err[i].msg);
            pos += w > 0 ? (size_t)w : 0;
        }
        if (d->nerr > shown && pos < errlen)
            snprintf(err + pos, errlen - pos, "\n%s: %d more errors not shown", path,
                     d->nerr - shown);
    }
    free(d);
    return rc;
}
