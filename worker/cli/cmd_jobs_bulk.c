/* rlsworker jobs cancel|retry by filter: rlsworker.cancel_jobs / retry_jobs
 * (migration 008), printing how many jobs each touched. */
#include "worker/cli/cmd_jobs_bulk.h"

#include <stdio.h>
#include <stdlib.h>

#include "worker/cli/cli.h"
#include "worker/cli/commands.h"
#include "worker/pg/queue_cli.h"

#define CMD "jobs"

bool rw_jobs_filter_given(const struct rw_jobs_filter *f)
{
    return f->task || f->queue || f->state || f->subject || f->key_prefix;
}

int rw_jobs_bulk(PGconn *c, bool cancel, const struct rw_jobs_filter *f, bool json)
{
    const struct rw_queue_job_filter q = {f->task, f->queue, f->state, f->subject,
                                          f->key_prefix};
    PGresult *r = cancel ? rw_queue_cli_cancel_jobs(c, &q) : rw_queue_cli_retry_jobs(c, &q);
    long long n, m;

    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        const char *msg = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
        rw_cli_error(CMD, "%s failed: %s", cancel ? "cancel" : "retry",
                     msg ? msg : PQerrorMessage(c));
        PQclear(r);
        return RW_EXIT_FAIL;
    }
    n = atoll(PQgetvalue(r, 0, 0));
    m = atoll(PQgetvalue(r, 0, 1));
    PQclear(r);
    if (json && cancel)
        printf("{\"cancelled\": %lld, \"cancelling\": %lld}\n", n, m);
    else if (json)
        printf("{\"retried\": %lld}\n", n);
    else if (cancel)
        printf("cancelled %lld queued job%s; asked %lld running job%s to stop\n", n,
               n == 1 ? "" : "s", m, m == 1 ? "" : "s");
    else
        printf("put %lld job%s back in the queue\n", n, n == 1 ? "" : "s");
    return RW_EXIT_OK;
}
