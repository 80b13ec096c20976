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

/* ---- jobs list, show, retry, cancel, stats ------------------------------------ */

/* Claims are never printed: only whether a job has them, and its subject. */
#define JOB_JSON \
    "json_build_object('id', id, 'task', task, 'queue', queue, 'payload', payload," \
    " 'has_claims', claims is not null, 'subject', subject, 'run_as', run_as," \
    " 'priority', priority, 'run_at', run_at, 'attempts', attempts," \
    " 'max_attempts', max_attempts, 'state', state, 'last_error', last_error," \
    " 'errors', errors," \
    " 'job_key', job_key, 'locked_by', locked_by, 'locked_at', locked_at," \
    " 'created_at', created_at, 'updated_at', updated_at)"

PGresult *rw_queue_cli_list_jobs(PGconn *c, const char *state, const char *task,
                                 const char *limit)
{
    const char *params[3] = {state, task, limit ? limit : "100"};

    return exec(c,
        "select coalesce(json_agg(j order by (j->>'id')::bigint), '[]')::text from ("
        " select " JOB_JSON "::jsonb as j from rlsworker.jobs"
        " where ($1::text is null or state = $1) and ($2::text is null or task = $2)"
        " order by id limit $3::int) s", 3, params);
}

/* A finished run from rlsworker.job_runs (never claims: only the subject). */
#define RUN_JSON \
    "json_build_object('id', job_id, 'task', task, 'queue', queue, 'subject', subject," \
    " 'run_as', run_as, 'attempts', attempts, 'state', outcome, 'worker', worker_id," \
    " 'error', error, 'created_at', created_at, 'started_at', started_at," \
    " 'finished_at', finished_at, 'duration_ms'," \
    " round(extract(epoch from duration) * 1000, 3))"

PGresult *rw_queue_cli_list_history(PGconn *c, const char *outcome, const char *task,
                                    const char *limit)
{
    const char *params[3] = {outcome, task, limit ? limit : "100"};

    return exec(c,
        "select coalesce(json_agg(" RUN_JSON " order by finished_at desc, id desc), '[]')::text"
        " from rlsworker.job_runs_page($1::text, $2::text, null, null, null, null, $3::int) h",
        3, params);
}

PGresult *rw_queue_cli_show_job(PGconn *c, const char *id)
{
    const char *params[1] = {id};

    return exec(c, "select " JOB_JSON "::jsonb::text from rlsworker.jobs where id = $1::bigint",
                1, params);
}

PGresult *rw_queue_cli_retry_job(PGconn *c, const char *id)
{
    const char *params[1] = {id};

    return exec(c, "select rlsworker.retry_job($1::bigint)", 1, params);
}

PGresult *rw_queue_cli_cancel_job(PGconn *c, const char *id)
{
    const char *params[1] = {id};

    return exec(c, "select rlsworker.cancel_job($1::bigint)", 1, params);
}

PGresult *rw_queue_cli_cancel_jobs(PGconn *c, const struct rw_queue_job_filter *f)
{
    const char *params[5] = {f->task, f->queue, f->state, f->subject, f->key_prefix};

    return exec(c,
        "select cancelled, cancelling from rlsworker.cancel_jobs(task => $1, queue => $2,"
        " state => $3, subject => $4, key_prefix => $5)", 5, params);
}

PGresult *rw_queue_cli_retry_jobs(PGconn *c, const struct rw_queue_job_filter *f)
{
    const char *params[5] = {f->task, f->queue, f->state, f->subject, f->key_prefix};

    return exec(c,
        "select rlsworker.retry_jobs(task => $1, queue => $2, state => $3, subject => $4,"
        " key_prefix => $5), 0", 5, params);
}

PGresult *rw_queue_cli_job_stats(PGconn *c)
{
    return exec(c,
        "select coalesce(json_agg(s order by s.task, s.state), '[]')::text from ("
        " select task, state, count(*) as jobs,"
        " count(*) filter (where state = 'queued' and run_at <= now()) as ready,"
        " min(created_at) as oldest from rlsworker.jobs group by task, state) s", 0, NULL);
}
