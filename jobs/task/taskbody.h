/* Internal to jobs/: the body of a SQL task file — statements split at `;`,
 * `:name` parameters rewritten to $n, and statements that would break the
 * one-transaction-per-job rule or leak state into a pooled connection
 * refused. rw_task_parse (taskfile.c) calls it after the header. */
#ifndef RW_TASKBODY_H
#define RW_TASKBODY_H

#include "jobs/task/taskfile.h"

#include <stddef.h>

#define RW_TASK_MAX_STMTS 1000    /* statements per task file */
#define RW_TASK_MAX_PARAMS 256    /* distinct :names per statement */
#define RW_TASK_MAX_PARAM_NAME 63 /* like a PostgreSQL identifier */

/* Parses `body`, whose first line is line `first_line` of the file `path`.
 * On success *stmts is a new array of *nstmts (>= 1) statements, owned by
 * the caller (free with rw_task_free_stmts). Errors read "PATH:LINE: what". */
int rw_task_parse_body(const char *path, const char *body, int first_line,
                       struct rw_sql_stmt **stmts, int *nstmts,
                       char *err, size_t errlen) __attribute__((warn_unused_result));
void rw_task_free_stmts(struct rw_sql_stmt *stmts, int nstmts);

/* Why the statement whose significant tokens are `toks` (everything but
 * spaces and comments, in order) may not run in a task, or NULL when it may.
 * The reason is a static string: "what is refused; what to do instead".
 * (taskrefuse.c) */
struct rw_sql_token;
const char *rw_task_refusal(const struct rw_sql_token *toks, int ntoks);

#endif
