/* Built-in C tasks (noop, http delivery). The executor calls start(); the
 * task reports once through done(). System built-ins that touch the
 * database get the scoped query API of worker/executor.h, which always binds
 * the job's subject. */
#ifndef RW_BUILTIN_H
#define RW_BUILTIN_H

#include <stdbool.h>

#include "jobs/taskfile.h"
#include "worker/pgconn.h"

struct rw_task;
struct rw_builtin_job;   /* executor-owned; opaque to tasks */

struct rw_builtin {
    const char *name;
    /* Starts the job; must eventually call rw_builtin_done() exactly once,
     * possibly before returning. */
    void (*start)(struct rw_builtin_job *bj);
    /* RW_SCOPE_SUBJECT: the job must carry a subject, and the task's
     * database access goes through rw_builtin_query_scoped only. */
    enum rw_scope scope;
};

/* The job's subject (borrowed; NULL for a global built-in). */
const char *rw_builtin_subject(const struct rw_builtin_job *bj);

typedef void (*rw_builtin_query_cb)(struct rw_builtin_job *bj, const struct rw_pg_result *r,
                                    void *arg);
/* The scoped query API for built-in system tasks: runs `sql` on the admin
 * connection with $1 always bound to the job's subject and params as
 * $2, $3, ... A statement that does not use $1, or a job without a subject,
 * is refused (-1, callback never called). */
int rw_builtin_query_scoped(struct rw_builtin_job *bj, const char *sql, int nparams,
                            const char *const *params, rw_builtin_query_cb cb, void *arg)
    __attribute__((warn_unused_result));
/* True when sql references $1 as a parameter (not $10, not inside a word). */
bool rw_sql_uses_param1(const char *sql);

/* Number of built-ins and access by index (registry uses these). */
int rw_builtin_count(void);
const struct rw_builtin *rw_builtin_at(int i);

/* Reports the end of a built-in job: `error` NULL on success, else a
 * message for last_error (borrowed; copied by the executor). Implemented by
 * the executor; a task calls it exactly once per start(). */
void rw_builtin_done(struct rw_builtin_job *bj, const char *error);

#endif
