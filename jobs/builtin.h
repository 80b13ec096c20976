/* Built-in C tasks (noop, http delivery). The executor calls start(); the
 * task reports once through done(). System built-ins that touch the
 * database get the scoped query API of worker/executor.h, which always binds
 * the job's subject. */
#ifndef RW_BUILTIN_H
#define RW_BUILTIN_H

#include <stdbool.h>

struct rw_task;
struct rw_builtin_job;   /* executor-owned; opaque to tasks */

struct rw_builtin {
    const char *name;
    /* Starts the job; must eventually call rw_builtin_done() exactly once,
     * possibly before returning. */
    void (*start)(struct rw_builtin_job *bj);
};

/* Number of built-ins and access by index (registry uses these). */
int rw_builtin_count(void);
const struct rw_builtin *rw_builtin_at(int i);

/* Reports the end of a built-in job: `error` NULL on success, else a
 * message for last_error (borrowed; copied by the executor). Implemented by
 * the executor; a task calls it exactly once per start(). */
void rw_builtin_done(struct rw_builtin_job *bj, const char *error);

#endif
