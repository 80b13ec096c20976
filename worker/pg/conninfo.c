#include "worker/pg/conninfo.h"

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

void rw_conninfo_redact(char *dst, size_t n, const char *msg)
{
    size_t o = 0;
    bool quoted = false;

    if (n == 0)
        return;
    for (const char *p = msg; *p && o + 6 < n; p++) {
        if (*p == '"' && !quoted && (p[1] == '=' || p[1] == ']') && p[2] == '"') {
            /* libpq's syntax tokens: missing "=", matching "]" */
            memcpy(dst + o, p, 3);
            o += 3;
            p += 2;
        } else if (*p == '"') {
            quoted = !quoted;
            if (quoted) {
                memcpy(dst + o, "\"...\"", 5);
                o += 5;
            }
        } else if (!quoted && *p != '\n') {
            dst[o++] = *p;
        }
    }
    while (o > 0 && dst[o - 1] == ' ')
        o--;
    dst[o] = '\0';
}

static const char *hint(const char *libpq_msg)
{
    if (strstr(libpq_msg, "percent-encoded"))
        return "a %-escape must be % and two hex digits; write a literal % (e.g. in a "
               "password) as %25";
    if (strstr(libpq_msg, "missing \"=\""))
        return "give a URI starting with postgresql:// (or postgres://) or key=value pairs";
    return "see \"Connection Strings\" in the PostgreSQL manual";
}

int rw_conninfo_check(const char *conninfo, const char *what, char *err, size_t errlen)
{
    char *perr = NULL, reason[256];
    PQconninfoOption *opts;

    if (!conninfo || !*conninfo) {
        snprintf(err, errlen, "%s is empty: set it to a postgresql:// connection string", what);
        return -1;
    }
    opts = PQconninfoParse(conninfo, &perr);
    if (opts) {
        PQconninfoFree(opts);
        return 0;
    }
    rw_conninfo_redact(reason, sizeof reason, perr ? perr : "out of memory");
    snprintf(err, errlen, "%s is malformed: %s (the value is not shown: it may hold a "
             "password); fix: %s", what, reason, perr ? hint(perr) : "retry");
    PQfreemem(perr);
    return -1;
}
