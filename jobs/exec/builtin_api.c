/* What built-in C tasks may call: their job's subject and payload, the
 * loop, config and shared HTTP client, and the scoped query API (kept apart
 * from the executor so the task table links on its own). */
#include <stdlib.h>

#include "jobs/builtin/builtin.h"
#include "worker/net/http_client.h"
#include "worker/base/log.h"
#include "worker/worker.h"

const char *rw_builtin_subject(const struct rw_builtin_job *bj)
{
    return bj->job->subject;
}

const json_t *rw_builtin_payload(const struct rw_builtin_job *bj)
{
    return bj->job->payload;
}

struct ev_loop *rw_builtin_loop(const struct rw_builtin_job *bj)
{
    return bj->job->w->loop;
}

const struct rw_config *rw_builtin_config(const struct rw_builtin_job *bj)
{
    return &bj->job->w->cfg;
}

int rw_builtin_timeout_s(const struct rw_builtin_job *bj)
{
    const struct rw_job *job = bj->job;

    return job->t && job->t->timeout_s > 0 ? job->t->timeout_s : job->w->cfg.task_timeout_s;
}

struct rw_http_client *rw_builtin_http(struct rw_builtin_job *bj)
{
    struct rw_worker *w = bj->job->w;

    if (!w->http && !(w->http = rw_http_client_new(w->loop)))
        rw_job_log(RW_LOG_WARNING, bj->job, "could not create the HTTP client");
    return w->http;
}

/* Here rather than in the executor so that the task table links without
 * it (tests provide their own rw_builtin_done). */
void rw_builtin_fail_final(struct rw_builtin_job *bj, const char *error)
{
    bj->final = true;
    rw_builtin_done(bj, error);
}

void rw_builtin_set_data(struct rw_builtin_job *bj, void *data)
{
    bj->data = data;
}

void *rw_builtin_data(const struct rw_builtin_job *bj)
{
    return bj->data;
}

struct scoped_q {
    struct rw_builtin_job *bj;
    rw_builtin_query_cb cb;
    void *arg;
};

static void scoped_done(rw_pg *pg, const struct rw_pg_result *r, void *arg)
{
    struct scoped_q q = *(struct scoped_q *)arg;

    free(arg);
    q.cb(q.bj, r, q.arg);
}

int rw_builtin_query_scoped(struct rw_builtin_job *bj, const char *sql, int nparams,
                            const char *const *params, rw_builtin_query_cb cb, void *arg)
{
    struct rw_job *job = bj->job;
    const char *all[16];
    struct scoped_q *q;

    if (!job->subject || !rw_sql_uses_param1(sql) || nparams < 0 || nparams > 15 ||
        !job->w->ctl_ready) {
        rw_job_log(RW_LOG_WARNING, job, "scoped query refused: %s",
                   !job->subject ? "the job has no subject"
                   : !rw_sql_uses_param1(sql) ? "the statement does not use $1 (the subject)"
                   : "not connected");
        return -1;
    }
    all[0] = job->subject;
    for (int i = 0; i < nparams; i++)
        all[i + 1] = params[i];
    if (!(q = malloc(sizeof *q)))
        return -1;
    *q = (struct scoped_q){bj, cb, arg};
    if (rw_pg_query(job->w->ctl, sql, nparams + 1, all, scoped_done, q) < 0) {
        free(q);
        return -1;
    }
    return 0;
}

