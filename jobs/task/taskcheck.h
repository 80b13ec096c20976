/* Can a job of a task run the way a trusted enqueue path asks? Cron lines and
 * webhook sources are configured by the operator; they are checked when they
 * load, so a job that could never run is refused then, not on every tick. */
#ifndef RW_TASKCHECK_H
#define RW_TASKCHECK_H

#include <stdbool.h>
#include <stddef.h>

#include "jobs/task/taskfile.h"

/* The path asks for run_as `run_as` (NULL: the task's own) and gives the job
 * a subject when has_subject. A user-scoped task (run_as user or a restricted
 * role) then gets claims {"sub": <subject>} from the path, so it needs a
 * subject; a system task with `scope: subject` needs one too. Returns 0, or -1
 * with err saying what is wrong and what to write instead. *claims_from_subject
 * (may be NULL) is set to whether the job must carry claims made from its
 * subject. `how` says in err how this path gives a subject ("subject=USER"). */
int rw_task_check_trusted(const struct rw_task *t, const char *run_as, bool has_subject,
                          const char *how, bool *claims_from_subject, char *err, size_t errlen)
    __attribute__((warn_unused_result));

#endif
