/* What `scope: subject` proves for a system task (run on the admin
 * connection, so row-level security does not apply). See docs/security.md
 * "What scope: subject proves".
 *
 * A statement passes when it is an INSERT ... VALUES (without SELECT or
 * ON CONFLICT ... DO UPDATE) that uses :subject, or when every WHERE clause at
 * its own top level, in every branch of a UNION/INTERSECT/EXCEPT, and in
 * every INSERT/UPDATE/DELETE nested in it (e.g. in a WITH), has a conjunct
 * `column = :subject` or `:subject = column` (a possibly qualified column,
 * an optional `::type` on :subject) joined with AND, with no OR at that
 * level. Each such block needs at least one WHERE. */
#ifndef RW_SCOPECHECK_H
#define RW_SCOPECHECK_H

#include <stddef.h>

#include "jobs/task/taskfile.h"

/* Returns 0 when `st` passes, or -1 with `why` saying what is missing and
 * `*line` the line of the offending part (st->line when unknown). */
int rw_scope_check_stmt(const struct rw_sql_stmt *st, int *line, char *why, size_t whylen)
    __attribute__((warn_unused_result));

#endif
