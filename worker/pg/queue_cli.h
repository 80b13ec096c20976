/* The queue protocol's blocking half, for the CLI's subcommands (never
 * inside the loop): one function per operation of deploy/sql/, named after
 * what it calls, beside the async ones of worker/pg/queue.h. Each returns
 * PQexecParams's result (new; the caller PQclear's it and checks its
 * status), NULL only when out of memory. */
#ifndef RW_QUEUE_CLI_H
#define RW_QUEUE_CLI_H

#include <libpq-fe.h>

/* add_job (001_init.sql) with every argument as text; NULL: the default. */
struct rw_queue_new_job {
    const char *task, *payload, *run_at, *queue, *job_key, *priority, *max_attempts;
    const char *claims, *subject, *run_as, *job_key_mode;
};
PGresult *rw_queue_cli_add_job(PGconn *c, const struct rw_queue_new_job *j);

/* Jobs as one JSON text per row (claims never shown, only has_claims). */
/* list: a JSON array of up to limit jobs, filtered by state and task (NULL: any). */
PGresult *rw_queue_cli_list_jobs(PGconn *c, const char *state, const char *task,
                                 const char *limit);
/* job_history (007): a JSON array of up to limit finished runs, newest
 * first, filtered by outcome and task (NULL: any). */
PGresult *rw_queue_cli_list_history(PGconn *c, const char *outcome, const char *task,
                                    const char *limit);
/* show: one JSON object, or no row. */
PGresult *rw_queue_cli_show_job(PGconn *c, const char *id);
/* retry_job, cancel_job (001_init.sql): one text, what happened. */
PGresult *rw_queue_cli_retry_job(PGconn *c, const char *id);
PGresult *rw_queue_cli_cancel_job(PGconn *c, const char *id);
/* Bulk cancel_jobs, retry_jobs (008_intake_paths.sql); NULL: any, at least
 * one given. key_prefix matches the start of job_key. */
struct rw_queue_job_filter {
    const char *task, *queue, *state, *subject, *key_prefix;
};
/* One row: queued jobs cancelled, running ones asked to stop. */
PGresult *rw_queue_cli_cancel_jobs(PGconn *c, const struct rw_queue_job_filter *f);
/* One row: jobs put back, and 0 (the shape of cancel_jobs's answer). */
PGresult *rw_queue_cli_retry_jobs(PGconn *c, const struct rw_queue_job_filter *f);
/* stats: a JSON array of {task, state, jobs, ready, oldest}. */
PGresult *rw_queue_cli_job_stats(PGconn *c);

#endif
