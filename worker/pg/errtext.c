#include "worker/pg/errtext.h"

#include <stdio.h>
#include <string.h>

#include "worker/base/log.h"

/* PostgreSQL's input errors end with `: "<value>"`: keep the text up to the
 * opening quote and drop the value, whatever quotes it holds itself. */
static void elide_value(char *msg, size_t size)
{
    char *open = strstr(msg, ": \"");
    char tail[RW_ERRTEXT_MAX + 8];
    const char *close;

    if (!open)
        return;
    close = strrchr(open + 3, '"');
    snprintf(tail, sizeof tail, "%s", close ? close + 1 : "");
    snprintf(open + 2, size - (size_t)(open + 2 - msg), "\"...\"%s", tail);
}

void rw_errtext_pg(char *dst, size_t n, const char *primary, const char *sqlstate)
{
    char msg[RW_ERRTEXT_MAX + 8], safe[RW_ERRTEXT_MAX * 4 + 8];

    if (n == 0)
        return;
    snprintf(msg, RW_ERRTEXT_MAX + 1, "%s", primary && *primary ? primary : "unknown error");
    elide_value(msg, sizeof msg);
    rw_log_escape(safe, sizeof safe, msg);
    if (sqlstate && *sqlstate)
        snprintf(dst, n, "%s (SQLSTATE %.5s)", safe, sqlstate);
    else
        snprintf(dst, n, "%s", safe);
}
