/* Wiring of optional subsystems into `rlsworker run`. */
#include "scheduler/run_hooks.h"

#include "worker/rolecheck.h"
#include "worker/worker.h"

int rw_run_hooks_prepare(struct rw_worker *w, char *err, size_t errlen) { return 0; }
int rw_run_hooks_check_roles(struct rw_worker *w, char *err, size_t errlen)
{
    return rw_rolecheck_startup(&w->cfg, err, errlen);
}
int rw_run_hooks_start(struct rw_worker *w, char *err, size_t errlen) { return 0; }
void rw_run_hooks_reload(struct rw_worker *w) {}
void rw_run_hooks_stop(struct rw_worker *w) {}
