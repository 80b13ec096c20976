/* Crontab lines against the task registry (cron_tasks.h). */
#include "worker/cli/cron_tasks.h"

#include <stdio.h>

#include "jobs/task/taskcheck.h"
#include "jobs/task/taskfile.h"
#include "scheduler/cron/cron.h"

int rw_cron_check_tasks(struct rw_crontab *tab, const struct rw_registry *reg,
                        const char *path, char *err, size_t errlen)
{
    size_t pos = 0;
    int bad = 0;
    char why[400];

    if (errlen)
        err[0] = '\0';
    for (int i = 0; tab && i < tab->n; i++) {
        struct rw_cron_entry *e = &tab->entries[i];
        const struct rw_task *t = rw_registry_find(reg, e->task);
        if (!t)
            snprintf(why, sizeof why, "unknown task \"%s\": no task file of that name and no "
                     "built-in", e->task);
        else if (rw_task_check_trusted(t, e->run_as, e->subject != NULL, "subject=USER",
                                       &e->claims_from_subject, why, sizeof why) == 0)
            continue;
        bad++;
        if (pos < errlen) {
            int w = snprintf(err + pos, errlen - pos, "%s%s:%d: %s", bad > 1 ? "\n" : "",
                             path, e->line, why);
            pos += w > 0 ? (size_t)w : 0;
        }
    }
    return bad ? -1 : 0;
}
