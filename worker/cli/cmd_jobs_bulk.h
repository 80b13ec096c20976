/* Bulk cancel and retry by filter for `rlsworker jobs` (cmd_jobs.c). */
#ifndef RW_CMD_JOBS_BULK_H
#define RW_CMD_JOBS_BULK_H

#include <libpq-fe.h>
#include <stdbool.h>

/* NULL: any. key_prefix matches the start of job_key. */
struct rw_jobs_filter {
    const char *task, *queue, *state, *subject, *key_prefix;
};

bool rw_jobs_filter_given(const struct rw_jobs_filter *f);
/* Runs rlsworker.cancel_jobs (cancel) or retry_jobs and prints the counts.
 * Returns an exit code. */
int rw_jobs_bulk(PGconn *c, bool cancel, const struct rw_jobs_filter *f, bool json);

#endif
