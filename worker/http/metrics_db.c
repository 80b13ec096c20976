/* /metrics at scrape time: per-pool connection figures from this process,
 * and per-queue figures read on the intake's admin connection (one grouped
 * query per scrape; the request waits for it without blocking the loop). */
#include <stdlib.h>

#include "worker/http/intake_int.h"
#include "worker/base/log.h"
#include "worker/base/metrics.h"

/* The 300 biggest (queue, state) groups: at most 100 queues are kept. */
static const char QUEUES_SQL[] =
    "select coalesce(queue, ''), state, count(*),"
    " coalesce(extract(epoch from now() - min(run_at)"
    "   filter (where state = 'queued' and run_at <= now())), 0)::float8"
    " from rlsworker.jobs group by 1, 2 order by 3 desc limit 300";

static void take_pools(const struct rw_intake_env *env)
{
    if (env->pool_stats)
        env->pool_stats(env->metrics, env->arg);
}

static void answer(struct rw_req *r)
{
    take_pools(&r->in->env);
    r->resp_text = true;
    rw_req_answer(r, 200, rw_metrics_render(r->in->env.metrics));
}

static void on_queues(rw_pg *pg, const struct rw_pg_result *res, void *arg)
{
    struct rw_req *r = arg;
    struct rw_metrics *m = r->in->env.metrics;
    PGresult *q = res->ok ? res->results[0] : NULL;

    r->db_wait = false;
    if (q) {
        rw_metrics_queues_reset(m);
        rw_metrics_queue(m, "", "queued", 0, 0);
        for (int i = 0; i < PQntuples(q); i++)
            rw_metrics_queue(m, PQgetvalue(q, i, 0), PQgetvalue(q, i, 1),
                             atoll(PQgetvalue(q, i, 2)), atof(PQgetvalue(q, i, 3)));
    } else if (!res->conn_lost) {
        rw_warn("metrics: could not read the queues: %s", res->error ? res->error : "unknown");
    }
    answer(r);
}

void rw_metrics_scrape(struct rw_req *r)
{
    if (rw_intake_db_ready(r->in) &&
        rw_pg_query(r->in->pg, QUEUES_SQL, 0, NULL, on_queues, r) == 0) {
        r->db_wait = true;
        rw_req_suspend(r);
        return;
    }
    answer(r);   /* the database is away: the figures as last read */
}
