/* Internal to jobs/exec: the executor's state, shared by executor.c and the
 * built-ins' host (builtin_api.c). */
#ifndef RW_EXEC_INT_H
#define RW_EXEC_INT_H

#include "jobs/builtin/builtin.h"
#include "jobs/exec/executor.h"

struct rw_executor {
    struct ev_loop *loop;
    const struct rw_config *cfg;
    struct rw_exec_pools pools;
    struct rw_metrics *metrics;
    const struct rw_registry *tasks;
    struct rw_exec_callbacks cb;
    struct rw_http_client *http;  /* built-ins' outgoing HTTP; owned, created on first use */
};

/* builtin_api.c: the host built-ins call back into. */
extern const struct rw_builtin_host rw_exec_builtin_host;
/* executor.c: a built-in job ended (from the host's done). */
void rw_exec_builtin_done(struct rw_job *job, const char *error, bool final);

#endif
