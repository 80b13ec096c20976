/* The queue protocol, one function per operation of deploy/sql/
 * (queue.h). Statement texts are the worker's half of the contract with
 * the migrations: change them together. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "worker/pg/queue.h"

static const char *value_or_null(const PGresult *res, int row, int col)
{
    return PQgetisnull(res, row, col) ? NULL : PQgetvalue(res, row, col);
}

/* ---- claim_jobs ----------------------------------------------------------- */

int rw_queue_claim_jobs(rw_pg *pg, const char *worker, int n, rw_pg_done_cb cb, void *arg)
{
    char count[16];
    const char *params[2] = {worker, count};

    /* The claim commits without waiting for its WAL flush (the last column,
     * evaluated for each claimed row before the statement's implicit commit):
     * a claim matters only through what follows it, and every durable commit
     * after it (the job's own transaction, complete_jobs, fail_jobs) flushes
     * the WAL past it. A claim lost in a database crash leaves the job queued,
     * which at-least-once allows; it saves a WAL flush before each job starts. */
    snprintf(count, sizeof count, "%d", n);
    return rw_pg_query(pg,
                       "select id, task, payload::text, claims::text, subject, run_as,"
                       " attempts, coalesce(max_attempts, 0), lock_token::text,"
                       " coalesce(extract(epoch from claims_verified_at)::bigint, 0),"
                       " coalesce(chained_by, 0),"
                       " set_config('synchronous_commit', 'off', true)"
                       " from rlsworker.claim_jobs($1, $2::int)",
                       2, params, cb, arg);
}

int rw_queue_claimed_count(const struct rw_pg_result *r)
{
    return r->ok && r->nresults > 0 && r->results[0] ? PQntuples(r->results[0]) : 0;
}

void rw_queue_claimed_row(const struct rw_pg_result *r, int row, struct rw_queue_claimed *out)
{
    const PGresult *res = r->results[0];

    *out = (struct rw_queue_claimed){
        .id = atoll(PQgetvalue(res, row, 0)),
        .task = PQgetvalue(res, row, 1),
        .payload = PQgetvalue(res, row, 2),
        .claims = value_or_null(res, row, 3),
        .subject = value_or_null(res, row, 4),
        .run_as = value_or_null(res, row, 5),
        .attempts = atoi(PQgetvalue(res, row, 6)),
        .max_attempts = atoi(PQgetvalue(res, row, 7)),
        .lock_token = PQgetvalue(res, row, 8),
        .claims_verified_at = atoll(PQgetvalue(res, row, 9)),
        .chained_by = atoll(PQgetvalue(res, row, 10)),
    };
}

/* ---- register_worker, deregister_worker ------------------------------------ */

int rw_queue_register_worker(rw_pg *pg, const char *worker, const char *host, int pid,
                             int backend_pid, const char *known_ids, rw_pg_done_cb cb, void *arg)
{
    char pidtext[16], bpid[16];
    const char *reg[4] = {worker, host, pidtext, bpid};
    const char *rel[2] = {worker, known_ids};
    struct rw_pg_stmt st[2];

    snprintf(pidtext, sizeof pidtext, "%d", pid);
    snprintf(bpid, sizeof bpid, "%d", backend_pid);
    st[0] = RW_PG_STMT("select rlsworker.register_worker($1, $2, $3::int, $4::int)", 4, reg);
    st[1] = RW_PG_STMT(
        "select rlsworker.release_jobs($1, array(select id from rlsworker.jobs"
        " where locked_by = $1 and state = 'running' and id <> all($2::bigint[])))", 2, rel);
    return rw_pg_submit(pg, st, 2, cb, arg);
}

bool rw_queue_registered_own_session(const struct rw_pg_result *r)
{
    return !r->results[0] || PQgetvalue(r->results[0], 0, 0)[0] == 't';
}

int rw_queue_deregister_worker(rw_pg *pg, const char *worker, rw_pg_done_cb cb, void *arg)
{
    const char *params[1] = {worker};

    return rw_pg_query(pg, "select rlsworker.deregister_worker($1)", 1, params, cb, arg);
}

/* ---- wants_notify, notify_barrier ------------------------------------------ */

int rw_queue_set_wants_notify(rw_pg *pg, const char *worker, bool wants, rw_pg_done_cb cb,
                              void *arg)
{
    const char *params[2] = {worker, wants ? "true" : "false"};

    return rw_pg_query(pg, "select rlsworker.set_wants_notify($1, $2::boolean)", 2, params,
                       cb, arg);
}

int rw_queue_notify_barrier(rw_pg *pg, rw_pg_done_cb cb, void *arg)
{
    return rw_pg_query(pg, "select rlsworker.notify_barrier()", 0, NULL, cb, arg);
}

bool rw_queue_barrier_passed(const struct rw_pg_result *r)
{
    return r->ok && r->nresults > 0 && r->results[0] && PQntuples(r->results[0]) == 1 &&
           PQgetvalue(r->results[0], 0, 0)[0] == 't';
}

/* ---- heartbeat, sweep_dead_sessions ---------------------------------------- */

int rw_queue_heartbeat(rw_pg *pg, const char *worker, rw_pg_done_cb cb, void *arg)
{
    const char *params[1] = {worker};

    return rw_pg_query(pg, "select rlsworker.heartbeat($1)", 1, params, cb, arg);
}

bool rw_queue_heartbeat_alive(const struct rw_pg_result *r)
{
    return PQgetvalue(r->results[0], 0, 0)[0] == 't';
}

int rw_queue_sweep_dead_sessions(rw_pg *pg, int lock_timeout_s, bool full, rw_pg_done_cb cb,
                                 void *arg)
{
    char tmo[16];
    const char *params[2] = {tmo, full ? "true" : "false"};

    snprintf(tmo, sizeof tmo, "%d", lock_timeout_s);
    return rw_pg_query(pg, "select rlsworker.sweep_dead_sessions($1::int, $2::boolean)", 2,
                       params, cb, arg);
}

int rw_queue_swept_count(const struct rw_pg_result *r)
{
    return atoi(PQgetvalue(r->results[0], 0, 0));
}

/* ---- prune_history ------------------------------------------------------------ */

int rw_queue_prune_history(rw_pg *pg, int keep_s, int batch, rw_pg_done_cb cb, void *arg)
{
    char keep[16], n[16];
    const char *params[2] = {keep, n};

    snprintf(keep, sizeof keep, "%d", keep_s);
    snprintf(n, sizeof n, "%d", batch);
    return rw_pg_query(pg, "select rlsworker.prune_history($1::int, $2::int)", 2, params,
                       cb, arg);
}

long long rw_queue_pruned_count(const struct rw_pg_result *r)
{
    return atoll(PQgetvalue(r->results[0], 0, 0));
}

/* ---- cancel_requested ----------------------------------------------------------- */

int rw_queue_cancels_requested(rw_pg *pg, const char *worker, const char *ids,
                               rw_pg_done_cb cb, void *arg)
{
    const char *params[2] = {ids, worker};

    return rw_pg_query(pg,
                       "select id from rlsworker.jobs where id = any($1::bigint[])"
                       " and locked_by = $2 and state = 'running' and cancel_requested",
                       2, params, cb, arg);
}

int rw_queue_cancels_requested_count(const struct rw_pg_result *r)
{
    return PQntuples(r->results[0]);
}

long long rw_queue_cancels_requested_id(const struct rw_pg_result *r, int i)
{
    return atoll(PQgetvalue(r->results[0], i, 0));
}

/* ---- complete_jobs, fail_jobs, release_jobs ---------------------------------- */

static struct rw_pg_stmt complete_jobs(const char *const params[2])
{
    return RW_PG_STMT("select rlsworker.complete_jobs($1, $2::bigint[])", 2, params);
}

static struct rw_pg_stmt fail_jobs(const char *const params[2])
{
    return RW_PG_STMT(
        "select rlsworker.fail_jobs($1, array_agg(id), array_agg(err), array_agg(delay), "
        "array_agg(dead)) from jsonb_to_recordset($2::jsonb) "
        "as t(id bigint, err text, delay bigint, dead boolean)", 2, params);
}

static struct rw_pg_stmt release_jobs(const char *const params[2])
{
    return RW_PG_STMT("select rlsworker.release_jobs($1, $2::bigint[])", 2, params);
}

/* The three lists in the order their statements are sent, the order
 * rw_queue_outcomes_recorded reads the answers in. */
static void outcome_lists(const struct rw_queue_outcomes *o, const char *lists[3])
{
    lists[0] = o->completed_ids;
    lists[1] = o->failed_rows;
    lists[2] = o->released_ids;
}

int rw_queue_record_outcomes(rw_pg *pg, const struct rw_queue_outcomes *o, rw_pg_done_cb cb,
                             void *arg)
{
    static struct rw_pg_stmt (*const build[3])(const char *const[2]) = {
        complete_jobs, fail_jobs, release_jobs};
    const char *lists[3], *params[3][2];
    struct rw_pg_stmt st[3];
    int n = 0;

    outcome_lists(o, lists);
    for (int i = 0; i < 3; i++) {
        if (!lists[i])
            continue;
        params[i][0] = o->worker;
        params[i][1] = lists[i];
        st[n++] = build[i](params[i]);
    }
    if (n == 0)
        return -1;
    return rw_pg_submit(pg, st, n, cb, arg);
}

void rw_queue_outcomes_recorded(const struct rw_pg_result *r, const struct rw_queue_outcomes *o,
                                int counts[3])
{
    const char *sent[3];

    outcome_lists(o, sent);
    for (int i = 0, k = 0; i < 3; i++) {
        const PGresult *res;

        counts[i] = -1;
        if (!sent[i])
            continue;
        res = k < r->nresults ? r->results[k] : NULL;
        k++;
        if (res && PQntuples(res) == 1 && !PQgetisnull(res, 0, 0))
            counts[i] = atoi(PQgetvalue(res, 0, 0));
    }
}

/* ---- cron_last_ticks, cron_fire ---------------------------------------------- */

int rw_queue_cron_last_ticks(rw_pg *pg, rw_pg_done_cb cb, void *arg)
{
    return rw_pg_query(pg, "select id, last_tick from rlsworker.cron_last_ticks()",
                       0, NULL, cb, arg);
}

long long rw_queue_cron_last_tick(const struct rw_pg_result *r, const char *id)
{
    const PGresult *res = r->results[0];

    for (int i = 0; i < PQntuples(res); i++)
        if (strcmp(PQgetvalue(res, i, 0), id) == 0)
            return strtoll(PQgetvalue(res, i, 1), NULL, 10);
    return -1;
}

int rw_queue_cron_fire(rw_pg *pg, const struct rw_queue_cron_tick *t, rw_pg_done_cb cb,
                       void *arg)
{
    char prio[16], max[16];
    const char *params[11] = {t->id, t->tick, t->task, t->payload,
                              t->backfilled ? "true" : "false", t->queue, prio,
                              t->max_attempts > 0 ? max : NULL, t->run_as, t->subject,
                              t->claims};

    snprintf(prio, sizeof prio, "%d", t->priority);
    snprintf(max, sizeof max, "%d", t->max_attempts);
    return rw_pg_query(pg, "select rlsworker.cron_fire($1, $2::timestamptz, $3, $4::jsonb, "
                       "$5::boolean, $6, $7::int, $8::int, $9, $10, $11::jsonb)",
                       11, params, cb, arg);
}

const char *rw_queue_cron_fire_job(const struct rw_pg_result *r)
{
    if (r->nresults < 1 || !r->results[0] || PQgetisnull(r->results[0], 0, 0))
        return NULL;
    return PQgetvalue(r->results[0], 0, 0);
}

/* ---- the intake: readiness, add_job, add_webhook_job ---------------------------- */

static const char CHECK_SQL[] =
    "select coalesce(max(version), 0) from rlsworker.migrations";
static const char DEPTH_SQL[] =
    "select s.state, count(j.id) from unnest(array['queued', 'running', 'dead', 'cancelled']) s(state) "
    "left join rlsworker.jobs j on j.state = s.state group by s.state";
static const char ADD_USER_JOB_SQL[] =
    "select rlsworker.add_job(task => $1, payload => $2::jsonb, run_at => $3::timestamptz, "
    "job_key => $4, claims => $5::jsonb, run_as => 'user')";
static const char ADD_WEBHOOK_JOB_SQL[] =
    "select job_id, replay from rlsworker.add_webhook_job($1, $2, $3, $4::jsonb, $5, $6::jsonb)";

int rw_queue_readiness(rw_pg *pg, rw_pg_done_cb cb, void *arg)
{
    struct rw_pg_stmt st[2] = {RW_PG_STMT(CHECK_SQL, 0, NULL), RW_PG_STMT(DEPTH_SQL, 0, NULL)};

    return rw_pg_submit(pg, st, 2, cb, arg);
}

int rw_queue_readiness_version(const struct rw_pg_result *r)
{
    return atoi(PQgetvalue(r->results[0], 0, 0));
}

int rw_queue_readiness_states(const struct rw_pg_result *r)
{
    return r->nresults > 1 && r->results[1] ? PQntuples(r->results[1]) : 0;
}

void rw_queue_readiness_state(const struct rw_pg_result *r, int i, const char **state,
                              long long *count)
{
    *state = PQgetvalue(r->results[1], i, 0);
    *count = atoll(PQgetvalue(r->results[1], i, 1));
}

int rw_queue_add_user_job(rw_pg *pg, const char *task, const char *payload, const char *run_at,
                          const char *job_key, const char *claims, rw_pg_done_cb cb, void *arg)
{
    const char *params[5] = {task, payload, run_at, job_key, claims};

    return rw_pg_query(pg, ADD_USER_JOB_SQL, 5, params, cb, arg);
}

long long rw_queue_added_job(const struct rw_pg_result *r)
{
    return atoll(PQgetvalue(r->results[0], 0, 0));
}

int rw_queue_add_webhook_job(rw_pg *pg, const char *source, const char *delivery,
                             const char *task, const char *body, const char *subject,
                             const char *claims, rw_pg_done_cb cb, void *arg)
{
    const char *params[6] = {source, delivery, task, body, subject, claims};

    return rw_pg_query(pg, ADD_WEBHOOK_JOB_SQL, 6, params, cb, arg);
}

bool rw_queue_added_webhook_replay(const struct rw_pg_result *r)
{
    return strcmp(PQgetvalue(r->results[0], 0, 1), "t") == 0;
}
