/* /metrics at scrape time: per-pool connection figures from this process,
 * and per-queue figures read on the intake's admin connection (one grouped
 * query per scrape; the request waits for it without blocking the loop). */
#include <stdlib.h>

#include "worker/intake_int.h"
#include "worker/log.h"
#include "worker/metrics.h"
#include "worker/worker.h"

/* The 300 biggest (queue, state) groups: at most 100 queues are kept. */
static const char QUEUES_SQL[] =
    "select coalesce(queue, ''), state, count(*),"
    " coalesce(extract(epoch from now() - min(run_at)"
    "   filter (where state = 'queued' and run_at <= now())), 0)::float8"
    " from rlsworker.jobs group by 1, 2 order by 3 desc limit 300";

static void take_pools(struct rw_worker *w)
{
    for (int i = 0; i < w->npools; i++) {
        struct rw_pool_stats st;
        if (!w->pools[i])
            continue;
        rw_pool_stats(w->pools[i], &st);
        rw_metrics_pool(w->metrics, rw_pool_name(w->pools[i]), st.in_use, st.idle,
                        st.opening, st.waiting, st.max);
    }
}

static void answer(struct rw_req *r)
{
    take_pools(r->in->w);
    r->resp_text = true;
    rw_req_answer(r, 200, rw_metrics_render(r->in->w->metrics));
}

static void on_queues(rw_pg *pg, const struct rw_pg_result *res, void *arg)
{
    struct rw_req *r = arg;
    struct rw_metrics *m = r->in->w->metrics;
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
