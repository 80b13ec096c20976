/* The table of built-in C tasks. Registered tasks are listed by
 * rw_builtin_count()/rw_builtin_at() and handed to the registry by
 * rw_builtin_registry_load(); a task file may not reuse their names. */
#include "jobs/builtin/builtin.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "worker/base/log.h"

/* noop: succeeds at once. Useful to check that a worker picks jobs up. */
static void noop_start(struct rw_builtin_job *bj)
{
    rw_builtin_done(bj, NULL);
}

/* purge_dead_jobs: deletes the subject's dead jobs from the queue, e.g.
 * after the user deleted their account. Scoped: it cannot touch other
 * subjects' jobs, because its only query is bound to the subject. */
static void purge_done(struct rw_builtin_job *bj, const struct rw_pg_result *r, void *arg)
{
    char err[600];

    if (!r->ok) {
        snprintf(err, sizeof err, "could not purge dead jobs: %s", r->error);
        rw_builtin_done(bj, err);
        return;
    }
    rw_info("purge_dead_jobs: removed %s dead jobs of subject %s",
            PQgetvalue(r->results[0], 0, 0), rw_builtin_subject(bj));
    rw_builtin_done(bj, NULL);
}

static void purge_dead_start(struct rw_builtin_job *bj)
{
    if (rw_builtin_query_scoped(bj,
            "with d as (delete from rlsworker.jobs where subject = $1"
            " and state in ('dead', 'cancelled')"
            " returning 1) select count(*) from d", 0, NULL, purge_done, NULL) < 0)
        rw_builtin_done(bj, "could not send the purge query (no subject, or not connected)");
}

static const struct rw_builtin builtins[] = {
    { "noop", noop_start, RW_SCOPE_GLOBAL, NULL },
    { "purge_dead_jobs", purge_dead_start, RW_SCOPE_SUBJECT, NULL },
    /* http: delivers one request; it touches no rows, so global */
    { "http", rw_http_task_start, RW_SCOPE_GLOBAL, rw_http_task_abort },
};

/* ---- what a running built-in may call (through its host) -------------- */

long long rw_builtin_job_id(const struct rw_builtin_job *bj)
{
    return bj->id;
}

const char *rw_builtin_subject(const struct rw_builtin_job *bj)
{
    return bj->subject;
}

const json_t *rw_builtin_payload(const struct rw_builtin_job *bj)
{
    return bj->payload;
}

struct ev_loop *rw_builtin_loop(const struct rw_builtin_job *bj)
{
    return bj->loop;
}

const struct rw_config *rw_builtin_config(const struct rw_builtin_job *bj)
{
    return bj->cfg;
}

int rw_builtin_timeout_s(const struct rw_builtin_job *bj)
{
    return bj->timeout_s;
}

struct rw_http_client *rw_builtin_http(struct rw_builtin_job *bj)
{
    return bj->host->http(bj);
}

void rw_builtin_done(struct rw_builtin_job *bj, const char *error)
{
    bj->host->done(bj, error, false);
}

void rw_builtin_fail_final(struct rw_builtin_job *bj, const char *error)
{
    bj->host->done(bj, error, true);
}

void rw_builtin_set_data(struct rw_builtin_job *bj, void *data)
{
    bj->data = data;
}

void *rw_builtin_data(const struct rw_builtin_job *bj)
{
    return bj->data;
}

int rw_builtin_query_scoped(struct rw_builtin_job *bj, const char *sql, int nparams,
                            const char *const *params, rw_builtin_query_cb cb, void *arg)
{
    const char *all[16];

    if (!bj->subject || !rw_sql_uses_param1(sql) || nparams < 0 || nparams > 15) {
        rw_job_log(RW_LOG_WARNING, bj, "scoped query refused: %s",
                !bj->subject ? "the job has no subject"
                : !rw_sql_uses_param1(sql) ? "the statement does not use $1 (the subject)"
                : "too many parameters");
        return -1;
    }
    all[0] = bj->subject;
    for (int i = 0; i < nparams; i++)
        all[i + 1] = params[i];
    return bj->host->query(bj, sql, nparams + 1, all, cb, arg);
}

bool rw_sql_uses_param1(const char *sql)
{
    for (const char *p = strstr(sql, "$1"); p; p = strstr(p + 1, "$1")) {
        bool word_before = p > sql && (isalnum((unsigned char)p[-1]) || p[-1] == '_');
        if (!word_before && !isdigit((unsigned char)p[2]))
            return true;
    }
    return false;
}

int rw_builtin_count(void)
{
    return (int)(sizeof builtins / sizeof builtins[0]);
}

const struct rw_builtin *rw_builtin_at(int i)
{
    return i >= 0 && i < rw_builtin_count() ? &builtins[i] : NULL;
}

int rw_builtin_registry_load(const char *dir, struct rw_registry **out, char *err,
                             size_t errlen)
{
    struct rw_registry_builtin table[sizeof builtins / sizeof builtins[0]];

    for (int i = 0; i < rw_builtin_count(); i++)
        table[i] = (struct rw_registry_builtin){builtins[i].name, builtins[i].scope,
                                                &builtins[i]};
    return rw_registry_load(dir, table, rw_builtin_count(), out, err, errlen);
}
