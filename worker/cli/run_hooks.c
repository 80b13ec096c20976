/* Wiring of optional subsystems into `rlsworker run`: the fail-closed role
 * checks, cron (--crontab) and the HTTP intake (--listen). */
#include "worker/cli/run_hooks.h"

#include <stdio.h>
#include <string.h>

#include "scheduler/cron/cron.h"
#include "scheduler/cron/cron_runner.h"
#include "worker/base/log.h"
#include "worker/base/metrics.h"
#include "worker/net/netguard.h"
#include "worker/http/intake.h"
#include "worker/checks/rolecheck.h"
#include "worker/cli/cron_tasks.h"
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

bool rw_worker_run_as_ok(struct rw_worker *w, const char *role, char *err, size_t errlen)
{
    size_t n = 0;

    if (strcmp(role, "user") == 0 || strcmp(role, "system") == 0)
        return true;
    for (int i = 0; i < w->nroles; i++)
        if (w->roles[i].name && strcmp(w->roles[i].name, role) == 0)
            return true;
    n = (size_t)snprintf(err, errlen, "run_as %s is not a configured restricted role "
                         "(configured:", role);
    for (int i = 0; i < w->nroles && n < errlen; i++)
        n += (size_t)snprintf(err + n, errlen - n, " %s", w->roles[i].name);
    if (n < errlen)
        snprintf(err + n, errlen - n, "); map it to its URL with --role %s=URL (config: "
                 "role.%s = URL), or use run_as user", role, role);
    return false;
}

static bool role_ok(void *arg, const char *role, char *why, size_t n)
{
    return rw_worker_run_as_ok(arg, role, why, n);
}

static int check_crontab(struct rw_worker *w, struct rw_crontab *tab,
                         const struct rw_registry *reg, char *err, size_t errlen)
{
    char why[600];

    if (tab && rw_cron_check_tasks(tab, reg, w->cfg.crontab, err, errlen) < 0)
        return -1;

    for (int i = 0; tab && i < tab->n; i++) {
        const struct rw_cron_entry *e = &tab->entries[i];
        if (e->run_as && !rw_worker_run_as_ok(w, e->run_as, why, sizeof why)) {
            snprintf(err, errlen, "%s:%d: %s", w->cfg.crontab, e->line, why);
            return -1;
        }
    }
    return 0;
}

int rw_run_hooks_check_run_as(struct rw_worker *w, const struct rw_registry *reg,
                              char *err, size_t errlen)
{
    if (rw_registry_check_roles(reg, role_ok, w, err, errlen) < 0)
        return -1;
    return check_crontab(w, w->crontab_pending, reg, err, errlen);
}

/* For the console: the crontab in use (the runner's, or the one parsed at
 * start before cron runs). */
static const struct rw_crontab *current_crontab(void *arg)
{
    struct rw_worker *w = arg;

    return w->cron ? rw_cron_runner_tab(w->cron) : w->crontab_pending;
}

/* For /metrics: each pool's connections, named by its role. */
static void pool_stats(struct rw_metrics *m, void *arg)
{
    struct rw_worker *w = arg;
    struct rw_pool_stats st;

    if (w->admin_pool) {
        rw_pool_stats(w->admin_pool, &st);
        rw_metrics_pool(m, rw_pool_name(w->admin_pool), st.in_use, st.idle, st.opening,
                        st.waiting, st.max);
    }
    for (int i = 0; i < w->nroles; i++) {
        rw_pool_stats(w->roles[i].pool, &st);
        rw_metrics_pool(m, rw_pool_name(w->roles[i].pool), st.in_use, st.idle, st.opening,
                        st.waiting, st.max);
    }
}

static const char *notifications(void *arg)
{
    const struct rw_worker *w = arg;

    return rw_sched_notifications(w->sched);
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
        struct rw_intake_env env = {w->loop, &w->cfg, w->metrics, &w->tasks,
                                    w->id, current_crontab, pool_stats, notifications, w};
        if (!(w->intake = rw_intake_start(&env, err, errlen)))
            return -1;
    }
    return 0;
}

void rw_run_hooks_reload(struct rw_worker *w)
{
    char err[4096];
    struct rw_crontab *tab = NULL;

    if (!w->cron || !w->cfg.crontab)
        return;
    if (rw_crontab_load(w->cfg.crontab, &tab, err, sizeof err) < 0 ||
        check_crontab(w, tab, w->tasks, err, sizeof err) < 0) {
        rw_error("could not reload crontab, keeping the old one: %s", err);
        rw_crontab_free(&tab);
        return;
    }
    rw_cron_runner_replace(w->cron, tab);
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
