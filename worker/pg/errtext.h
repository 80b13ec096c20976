/* What of a PostgreSQL error may be kept in last_error (and so in `jobs
 * show` and the log): the primary message and the SQLSTATE, never DETAIL,
 * CONTEXT or HINT (they echo row values), bounded, one line. */
#ifndef RW_ERRTEXT_H
#define RW_ERRTEXT_H

#include <stddef.h>

/* Most bytes of a primary message kept (before escaping). */
#define RW_ERRTEXT_MAX 1024

/* Writes "<primary> (SQLSTATE <code>)" into dst (n bytes). The primary
 * message is cut to RW_ERRTEXT_MAX bytes; a value PostgreSQL quotes after a
 * colon (`invalid input syntax for type integer: "<the value>"`: a payload
 * value, a claim, the whole claims object) is replaced by "..."; control
 * characters are escaped as in rw_log_escape. `primary` and `sqlstate` may
 * be NULL. */
void rw_errtext_pg(char *dst, size_t n, const char *primary, const char *sqlstate);

#endif
