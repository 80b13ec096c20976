/* Load-time check of a trusted enqueue path against its task (taskcheck.h). */
#include "jobs/task/taskcheck.h"

#include <stdio.h>
#include <string.h>

int rw_task_check_trusted(const struct rw_task *t, const char *run_as, bool has_subject,
                          const char *how, bool *claims_from_subject, char *err, size_t errlen)
{
    bool user = t->run_as != RW_RUN_AS_SYSTEM;

    if (claims_from_subject)
        *claims_from_subject = false;
    if (!user) {
        if (run_as && strcmp(run_as, "system") != 0) {
            snprintf(err, errlen, "task %s runs as system, but run_as is \"%s\"; drop run_as "
                     "or use run_as=system", t->name, run_as);
            return -1;
        }
        if (t->scope == RW_SCOPE_SUBJECT && !has_subject) {
            snprintf(err, errlen, "task %s has scope: subject, so each job needs a subject; "
                     "give one (%s)", t->name, how);
            return -1;
        }
        return 0;
    }
    if (run_as && strcmp(run_as, "system") == 0) {
        snprintf(err, errlen, "task %s is user-scoped and cannot run as system; drop run_as "
                 "or use run_as=user", t->name);
        return -1;
    }
    if (!has_subject) {
        snprintf(err, errlen, "task %s runs as %s%s, so each job needs the claims of a user; "
                 "give the user (%s; the job gets claims {\"sub\": USER})", t->name,
                 t->run_as == RW_RUN_AS_ROLE ? "role " : "user",
                 t->run_as == RW_RUN_AS_ROLE ? t->role : "", how);
        return -1;
    }
    if (claims_from_subject)
        *claims_from_subject = true;
    return 0;
}
