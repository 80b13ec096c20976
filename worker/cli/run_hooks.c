/* Wiring of optional subsystems into `rlsworker run`: the fail-closed role
 * checks, cron (--crontab) and the HTTP intake (--listen). */
#include "worker/cli/run_hooks.h"

#include <stdio.h>

#include "scheduler/cron/cron.h"
#include "scheduler/cron/cron_runner.h"
#include "worker/base/log.h"
#include "worker/net/netguard.h"
#include "worker/http/intake.h"
#include "worker/checks/rolecheck.h"
#include "worker/cli/worker.h"

int rw_run_hooks_prepare(struct rw_worker *w, char *err, size_t errlen)
{
    if (w->cfg.http_allow) {
        struct rw_netguard *g = NULL;
        char why[400];
        if (rw_netguard_new(w->cfg.http_allow, &g, why, sizeof why) < 0) {
            snprintf(err, errlen, "%s", why);
            return -1;
        }
        rw_netguard_free(&g);
    }
    if (w->cfg.crontab &&
        rw_crontab_load(w->cfg.crontab, &w->crontab_pending, err, errlen) < 0)
        return -1;
    return 0;
}

int rw_run_hooks_check_roles(struct rw_worker *w, char *err, size_t errlen)
{
    return rw_rolecheck_startup(&w->cfg, err, errlen);
}

int rw_run_hooks_start(struct rw_worker *w, char *err, size_t errlen)
{
    if (w->crontab_pending) {
        /* started by the scheduler once the control connection is ready */
        w->cron = rw_cron_runner_new(w->loop, rw_sched_admin(w->sched), w->crontab_pending,
                                     NULL);
        w->crontab_pending = NULL;
        if (!w->cron) {
            snprintf(err, errlen, "out of memory starting cron");
            return -1;
        }
    }
    if (w->cfg.listen) {
        struct rw_intake_env env = {w->loop, &w->cfg, w->metrics, &w->tasks};
        if (!(w->intake = rw_intake_start(&env, err, errlen)))
            return -1;
    }
    return 0;
}

void rw_run_hooks_reload(struct rw_worker *w)
{
    if (w->cron && w->cfg.crontab)
        (void)!rw_cron_runner_reload(w->cron, w->cfg.crontab);
}

void rw_run_hooks_registered(struct rw_worker *w)
{
    if (w->cron)
        rw_cron_runner_start(w->cron);
}

void rw_run_hooks_quiesce(struct rw_worker *w)
{
    if (w->cron)
        rw_cron_runner_stop(w->cron);
    if (w->intake)
        rw_intake_stop(w->intake);     /* no new enqueues while running jobs drain */
}

void rw_run_hooks_stop(struct rw_worker *w)
{
    rw_intake_free(&w->intake);
    rw_cron_runner_free(&w->cron);
    rw_crontab_free(&w->crontab_pending);
}
