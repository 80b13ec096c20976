/* Connection strings are secrets (they hold passwords): this checks one
 * before libpq sees it, so that a malformed one is reported without echoing
 * it. libpq's own parse errors quote the offending text, which may be the
 * password ("invalid percent-encoded token: \"p%zz\""). */
#ifndef RW_CONNINFO_H
#define RW_CONNINFO_H

#include <stddef.h>

/* Parses `conninfo` (a postgresql:// URI or key=value pairs) without
 * connecting. Returns 0 when libpq can parse it, or -1 with err filled:
 * "<what> is malformed: <reason>; fix: ..." where the reason is libpq's with
 * every quoted part removed. `what` names the variable (e.g. "DATABASE_URL"). */
int rw_conninfo_check(const char *conninfo, const char *what, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Copies libpq message `msg` into dst with each "..." span replaced by "…"
 * (three dots) and trailing newlines dropped. */
void rw_conninfo_redact(char *dst, size_t n, const char *msg);

#endif
