/* The wiring of `rlsworker run` (worker/cli/cmd_run.c, run_hooks.c): what
 * the running worker holds. Private to worker/cli: every part below gets
 * only what it uses through its own constructor. */
#ifndef RW_WORKER_H
#define RW_WORKER_H

#include <ev.h>
#include <stdbool.h>

#include "jobs/exec/executor.h"
#include "jobs/task/taskfile.h"
#include "scheduler/scheduler.h"
#include "worker/base/config.h"
#include "worker/pg/pool.h"

struct rw_cron_runner;
struct rw_crontab;
struct rw_metrics;
struct rw_intake;

struct rw_worker {
    struct ev_loop *loop;
    struct rw_config cfg;
    struct rw_registry *tasks;    /* current registry (owned) */
    struct rw_registry **retired; /* older registries still used by jobs */
    int nretired;
    char id[96];
    char host[64];
    bool once;
    bool plan_each_job;           /* a function makes reused plans unsafe (cmd_run.c) */

    /* System jobs run on admin_pool alone. User-scoped jobs resolve their
     * role only in roles[], the configured restricted roles, which never
     * holds the admin connection: roles[0] is DATABASE_AUTHENTICATED_URL's
     * login role, then each --role NAME=URL (jobs/exec/executor.h). */
    struct rw_pool *admin_pool;
    struct rw_exec_role *roles;
    int nroles;
    char *user_role;              /* role DATABASE_AUTHENTICATED_URL logs in as */

    struct rw_executor *ex;
    struct rw_sched *sched;
    ev_signal sig_term, sig_int, sig_hup;

    struct rw_cron_runner *cron;
    struct rw_crontab *crontab_pending; /* parsed at start, until cron starts */
    struct rw_intake *intake;
    struct rw_metrics *metrics;   /* owned; never NULL while running */
};

/* Whether `role` is user, system or a configured restricted role; else
 * writes why not (for task files and the crontab). worker/cli/run_hooks.c */
bool rw_worker_run_as_ok(struct rw_worker *w, const char *role, char *err, size_t errlen);

#endif
