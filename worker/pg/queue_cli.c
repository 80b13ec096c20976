/* The queue protocol's blocking half, for the CLI (queue_cli.h). */
#include "worker/pg/queue_cli.h"

static PGresult *exec(PGconn *c, const char *sql, int n, const char *const *params)
{
    return PQexecParams(c, sql, n, NULL, params, NULL, NULL, 0);
}

/* ---- add_job ---------------------------------------------------------------- */

PGresult *rw_queue_cli_add_job(PGconn *c, const struct rw_queue_new_job *j)
{
    const char *params[11] = {j->task, j->payload, j->run_at, j->queue, j->job_key,
                              j->priority, j->max_attempts, j->claims, j->subject,
                              j->run_as, j->job_key_mode};

    return exec(c,
        "select rlsworker.add_job(task => $1, payload => $2::jsonb, run_at => $3::timestamptz,"
        " queue => $4, job_key => $5, priority => $6::int, max_attempts => $7::int,"
        " claims => $8::jsonb, subject => $9, run_as => $10, job_key_mode => $11)",
        11, params);
}
