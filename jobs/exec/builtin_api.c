/* The host built-in C tasks call back into (struct rw_builtin_host): the end
 * of their job, the shared HTTP client, and queries on the admin connection.
 * What a built-in may read is filled into its rw_builtin_job by the
 * executor (run_builtin); the subject-binding checks of the scoped query
 * API live with the built-ins (jobs/builtin/builtin.c). */
#include <stdlib.h>

#include "jobs/exec/exec_int.h"
#include "worker/base/log.h"
#include "worker/net/http_client.h"

static void host_done(struct rw_builtin_job *bj, const char *error, bool final)
{
    struct rw_job *job = bj->host_job;

    job->bj = NULL;
    free(bj);
    rw_exec_builtin_done(job, error, final);
}

static struct rw_http_client *host_http(struct rw_builtin_job *bj)
{
    struct rw_job *job = bj->host_job;
    struct rw_executor *ex = job->ex;

    if (!ex->http && !(ex->http = rw_http_client_new(ex->loop)))
        rw_job_log(RW_LOG_WARNING, job, "could not create the HTTP client");
    return ex->http;
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

static int host_query(struct rw_builtin_job *bj, const char *sql, int nparams,
                      const char *const *params, rw_builtin_query_cb cb, void *arg)
{
    struct rw_job *job = bj->host_job;
    rw_pg *admin = job->ex->cb.admin_conn(job->ex->cb.arg);
    struct scoped_q *q;

    if (!admin) {
        rw_job_log(RW_LOG_WARNING, job, "scoped query refused: not connected");
        return -1;
    }
    if (!(q = malloc(sizeof *q)))
        return -1;
    *q = (struct scoped_q){bj, cb, arg};
    if (rw_pg_query(admin, sql, nparams, params, scoped_done, q) < 0) {
        free(q);
        return -1;
    }
    return 0;
}

const struct rw_builtin_host rw_exec_builtin_host = {host_done, host_http, host_query};
