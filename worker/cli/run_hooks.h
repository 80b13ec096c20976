/* Optional subsystems of `rlsworker run` (cron, HTTP intake, role checks),
 * each started and stopped in a stated order by worker/cli/cmd_run.c. */
#ifndef RW_RUN_HOOKS_H
#define RW_RUN_HOOKS_H

#include <stddef.h>

struct rw_worker;
struct rw_registry;

/* Before any connection: parse the crontab etc. Returns 0 or -1 (err). */
int rw_run_hooks_prepare(struct rw_worker *w, char *err, size_t errlen);
/* Fail-closed checks of every restricted role. Returns 0 or -1 (err). */
int rw_run_hooks_check_roles(struct rw_worker *w, char *err, size_t errlen);
/* After the pools exist: every run_as of the task files in `reg` and of
 * the crontab names user, system or a configured restricted role; else
 * -1 and err "FILE:LINE: ...". */
int rw_run_hooks_check_run_as(struct rw_worker *w, const struct rw_registry *reg,
                              char *err, size_t errlen);
/* After the scheduler started: cron runner, HTTP intake. */
int rw_run_hooks_start(struct rw_worker *w, char *err, size_t errlen);
/* SIGHUP: reload the crontab (the old one stays on error). */
void rw_run_hooks_reload(struct rw_worker *w);
/* The scheduler registered on the control connection: start cron. */
void rw_run_hooks_registered(struct rw_worker *w);
/* Shutdown began: stop producing new jobs (cron ticks, intake). */
void rw_run_hooks_quiesce(struct rw_worker *w);
/* After the loop ended: free what start made. */
void rw_run_hooks_stop(struct rw_worker *w);

#endif
