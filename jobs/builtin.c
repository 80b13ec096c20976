/* The table of built-in C tasks. Registered tasks are listed by
 * rw_builtin_count()/rw_builtin_at(); a task file may not reuse their names. */
#include "jobs/builtin.h"

#include <stddef.h>

/* noop: succeeds at once. Useful to check that a worker picks jobs up. */
static void noop_start(struct rw_builtin_job *bj)
{
    rw_builtin_done(bj, NULL);
}

static const struct rw_builtin builtins[] = {
    { "noop", noop_start },
};

int rw_builtin_count(void)
{
    return (int)(sizeof builtins / sizeof builtins[0]);
}

const struct rw_builtin *rw_builtin_at(int i)
{
    return i >= 0 && i < rw_builtin_count() ? &builtins[i] : NULL;
}
