/* The queue protocol: every call the worker makes to schema rlsworker
 * (deploy/sql/) from its event loop, one function per operation, each named
 * after the SQL function it calls, so this file reads side by side with the
 * migrations (Graphile Worker's src/sql/, River's riverdriver).
 *
 * Each operation is a thin async wrapper: it submits the statement text with
 * its parameters on the given connection (rw_pg_submit's rules: -1 never
 * calls back; otherwise cb runs exactly once, also on conn_lost) and, where
 * the statement returns rows, a parse function beside it turns the result
 * the callback receives into plain C values. Strings a parse function
 * returns are borrowed from the result and valid only inside the callback.
 *
 * Not here, on purpose: the executor's per-job pipeline on the job's own
 * connection (jobs/exec/executor.c: set_config of the claims and
 * statement_timeout, the task's statements, rlsworker_api.complete_job,
 * commit, discard all), because it runs inside the job's transaction, and
 * the bodies of task files and built-ins (jobs/builtin/builtin.c). The CLI's
 * blocking calls are in worker/pg/queue_cli.c. */
#ifndef RW_QUEUE_H
#define RW_QUEUE_H

#include <stdbool.h>

#include "worker/pg/pgconn.h"

#define RW_QUEUE_WUR __attribute__((warn_unused_result))

/* ---- claim_jobs (001_init.sql) ------------------------------------------ */

/* Claims up to n ready jobs for worker. */
int rw_queue_claim_jobs(rw_pg *pg, const char *worker, int n, rw_pg_done_cb cb,
                        void *arg) RW_QUEUE_WUR;

/* One claimed row; strings borrowed from the result (NULL: SQL NULL). */
struct rw_queue_claimed {
    long long id;
    const char *task;
    const char *payload;          /* JSON text */
    const char *claims;           /* JSON text or NULL */
    const char *subject;
    const char *run_as;
    int attempts;                 /* including this one */
    int max_attempts;             /* 0: not set on the job */
    const char *lock_token;
    long long claims_verified_at; /* unix seconds, 0 if none */
    long long chained_by;         /* 0 if none */
};

/* Rows of a successful claim_jobs result. */
int rw_queue_claimed_count(const struct rw_pg_result *r);
void rw_queue_claimed_row(const struct rw_pg_result *r, int row, struct rw_queue_claimed *out);

/* ---- register_worker, deregister_worker (001_init.sql) ------------------- */

/* After (re)connecting the control connection, one round trip:
 * register_worker(worker, host, pid, backend_pid: the server session's pid
 * as the handshake told it, 0 if unknown; 009),
 * and release_jobs of the jobs the database says worker holds that are not
 * in known_ids (a Postgres array literal such as "{1,2}"). */
int rw_queue_register_worker(rw_pg *pg, const char *worker, const char *host, int pid,
                             int backend_pid, const char *known_ids, rw_pg_done_cb cb,
                             void *arg) RW_QUEUE_WUR;
/* A successful registration's answer: false when register_worker saw that
 * the backend pid given is not the session running it (a pooler between). */
bool rw_queue_registered_own_session(const struct rw_pg_result *r);
int rw_queue_deregister_worker(rw_pg *pg, const char *worker, rw_pg_done_cb cb,
                               void *arg) RW_QUEUE_WUR;

/* ---- wants_notify, notify_barrier (020_notify_when_idle.sql) --------------- */

/* Whether transactions that queue a job must notify this worker: true
 * while it waits for work, false while its claims come back full. */
int rw_queue_set_wants_notify(rw_pg *pg, const char *worker, bool wants, rw_pg_done_cb cb,
                              void *arg) RW_QUEUE_WUR;
/* Answers (rw_queue_barrier_passed) whether every transaction that skipped
 * its notification has ended; never waits. */
int rw_queue_notify_barrier(rw_pg *pg, rw_pg_done_cb cb, void *arg) RW_QUEUE_WUR;
bool rw_queue_barrier_passed(const struct rw_pg_result *r);

/* ---- heartbeat (001_init.sql), sweep_dead_sessions (009) ------------------- */

int rw_queue_heartbeat(rw_pg *pg, const char *worker, rw_pg_done_cb cb, void *arg) RW_QUEUE_WUR;
/* A successful heartbeat's answer: false when worker was declared lost. */
bool rw_queue_heartbeat_alive(const struct rw_pg_result *r);
/* Returns jobs of workers whose control session ended to the queue; full:
 * also those of workers silent for lock_timeout_s (sweep_lost). */
int rw_queue_sweep_dead_sessions(rw_pg *pg, int lock_timeout_s, bool full, rw_pg_done_cb cb,
                                 void *arg) RW_QUEUE_WUR;
/* A successful sweep's answer: how many jobs went back. */
int rw_queue_swept_count(const struct rw_pg_result *r);

/* ---- prune_history (007_history.sql) -------------------------------------- */

/* Deletes at most batch runs older than keep_s seconds from job_history. */
int rw_queue_prune_history(rw_pg *pg, int keep_s, int batch, rw_pg_done_cb cb,
                           void *arg) RW_QUEUE_WUR;
/* A successful prune's answer: how many runs went. */
long long rw_queue_pruned_count(const struct rw_pg_result *r);

/* ---- cancel_requested of this worker's jobs (001_init.sql) ----------------- */

/* Which of ids (a Postgres array literal) worker holds running with
 * cancel_requested set: operator cancels found without a notification. */
int rw_queue_cancels_requested(rw_pg *pg, const char *worker, const char *ids,
                               rw_pg_done_cb cb, void *arg) RW_QUEUE_WUR;
int rw_queue_cancels_requested_count(const struct rw_pg_result *r);
long long rw_queue_cancels_requested_id(const struct rw_pg_result *r, int i);

/* ---- complete_jobs, fail_jobs, release_jobs (001_init.sql) ---------------- */

/* A batch of outcomes of worker's jobs, sent in one round trip; a NULL list
 * is left out (at least one must be given). */
struct rw_queue_outcomes {
    const char *worker;
    const char *completed_ids;   /* Postgres array literal, "{1,2}", or NULL */
    const char *failed_rows;     /* JSON array of {id, err, delay, dead}, or NULL */
    const char *released_ids;    /* Postgres array literal, or NULL */
};

/* complete_jobs, then fail_jobs, then release_jobs. */
int rw_queue_record_outcomes(rw_pg *pg, const struct rw_queue_outcomes *o, rw_pg_done_cb cb,
                             void *arg) RW_QUEUE_WUR;
/* How many jobs each of its statements recorded, as counts[0] complete,
 * [1] fail, [2] release; -1 for a list that was not sent. Fewer than sent:
 * the others were no longer held by the worker (lock recovery). */
void rw_queue_outcomes_recorded(const struct rw_pg_result *r, const struct rw_queue_outcomes *o,
                                int counts[3]);

/* ---- cron_last_ticks, cron_fire (002_cron.sql) ----------------------------- */

int rw_queue_cron_last_ticks(rw_pg *pg, rw_pg_done_cb cb, void *arg) RW_QUEUE_WUR;
/* A successful cron_last_ticks answer: the last tick (unix seconds) fired
 * for cron entry id, or -1 if none. */
long long rw_queue_cron_last_tick(const struct rw_pg_result *r, const char *id);

/* One tick of a cron entry; strings borrowed for the call (NULL: not set). */
struct rw_queue_cron_tick {
    const char *id;
    const char *tick;             /* timestamptz text */
    const char *task;
    const char *payload;          /* JSON object text */
    bool backfilled;
    const char *queue;
    int priority;
    int max_attempts;             /* 0: not set */
    const char *run_as;
    const char *subject;
    const char *claims;           /* JSON object text, or NULL */
};

int rw_queue_cron_fire(rw_pg *pg, const struct rw_queue_cron_tick *t, rw_pg_done_cb cb,
                       void *arg) RW_QUEUE_WUR;
/* A successful cron_fire answer: the queued job's id as text, or NULL when
 * another worker fired this tick already. */
const char *rw_queue_cron_fire_job(const struct rw_pg_result *r);

/* ---- the intake: readiness, add_job, add_webhook_job (001, 004) ------------ */

/* One round trip: the schema version (rlsworker.migrations) and the number
 * of jobs per state, for readiness and /metrics. */
int rw_queue_readiness(rw_pg *pg, rw_pg_done_cb cb, void *arg) RW_QUEUE_WUR;
/* A successful readiness answer: the schema version; states and counts. */
int rw_queue_readiness_version(const struct rw_pg_result *r);
int rw_queue_readiness_states(const struct rw_pg_result *r);
void rw_queue_readiness_state(const struct rw_pg_result *r, int i, const char **state,
                              long long *count);

/* add_job of a user-scoped job from POST /v1/jobs: run_at and job_key may be
 * NULL; claims is the verified claims' JSON text. */
int rw_queue_add_user_job(rw_pg *pg, const char *task, const char *payload, const char *run_at,
                          const char *job_key, const char *claims, rw_pg_done_cb cb,
                          void *arg) RW_QUEUE_WUR;
/* A successful add_job (or add_webhook_job) answer: the job's id. */
long long rw_queue_added_job(const struct rw_pg_result *r);
/* add_webhook_job(source, delivery id, task, body, subject, claims), subject
 * and claims (JSON text) NULL for a system task (008); the answer's id is
 * rw_queue_added_job's, and whether it was a replay of a known delivery. */
int rw_queue_add_webhook_job(rw_pg *pg, const char *source, const char *delivery,
                             const char *task, const char *body, const char *subject,
                             const char *claims, rw_pg_done_cb cb, void *arg) RW_QUEUE_WUR;
bool rw_queue_added_webhook_replay(const struct rw_pg_result *r);

#endif
