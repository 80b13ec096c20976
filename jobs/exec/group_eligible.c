/* Which user jobs may share a group-commit transaction (docs/guarantees.md,
 * "Group commit"): SQL tasks whose every statement starts with a DML keyword
 * and names nothing whose effect outlives a savepoint's release. */
#include <string.h>
#include <strings.h>

#include "jobs/exec/exec_int.h"
#include "jobs/exec/group.h"
#include "jobs/task/taskfile.h"
#include "worker/base/config.h"

static const char *skip_space_and_comments(const char *s)
{
    for (;;) {
        while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')
            s++;
        if (s[0] == '-' && s[1] == '-') {
            while (*s && *s != '\n')
                s++;
        } else if (s[0] == '/' && s[1] == '*') {
            const char *e = strstr(s + 2, "*/");
            s = e ? e + 2 : s + strlen(s);
        } else
            return s;
    }
}

/* Statements that start with a DML keyword and name none of the functions
 * whose effect outlives a savepoint's release in ways `reset all; close all;
 * discard temp` does not undo (advisory locks) or that change settings
 * beyond the job (set_config is reset, but is cheap to keep out). A false
 * "no" only means the task runs in a transaction of its own. */
static bool stmt_groupable(const char *sql)
{
    static const char *const lead[] = {"select", "insert", "update", "delete", "with",
                                       "values", "table", NULL};
    static const char *const banned[] = {"advisory", "set_config", "dblink", NULL};
    const char *s = skip_space_and_comments(sql);
    size_t w = 0;
    bool ok = false;

    while ((s[w] >= 'a' && s[w] <= 'z') || (s[w] >= 'A' && s[w] <= 'Z'))
        w++;
    for (int i = 0; lead[i]; i++)
        if (strlen(lead[i]) == w && strncasecmp(s, lead[i], w) == 0)
            ok = true;
    if (!ok)
        return false;
    for (int i = 0; banned[i]; i++)
        if (strcasestr(sql, banned[i]))
            return false;
    return true;
}

bool rw_group_eligible(const struct rw_job *job)
{
    const struct rw_task *t = job->t;

    if (rw_config_group_max(job->ex->cfg) < 2 || !t || t->builtin ||
        t->run_as == RW_RUN_AS_SYSTEM || t->no_group || t->nstmts == 0)
        return false;
    for (int i = 0; i < t->nstmts; i++)
        if (!stmt_groupable(t->stmts[i].sql))
            return false;
    return true;
}
