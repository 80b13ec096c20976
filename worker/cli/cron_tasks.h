/* A crontab checked against the tasks it names: every line's task exists and
 * can run the way the line asks (run_as, subject, scope). Used at start, on
 * SIGHUP and by `rlsworker cron check --tasks DIR`. */
#ifndef RW_CRON_TASKS_H
#define RW_CRON_TASKS_H

#include <stddef.h>

struct rw_crontab;
struct rw_registry;

/* Checks every line of tab (read from `path`, for the messages) and marks
 * the lines whose jobs get claims from their subject. On a bad line returns
 * -1 with err listing "PATH:LINE: what is wrong", one per line. */
int rw_cron_check_tasks(struct rw_crontab *tab, const struct rw_registry *reg,
                        const char *path, char *err, size_t errlen)
    __attribute__((warn_unused_result));

#endif
