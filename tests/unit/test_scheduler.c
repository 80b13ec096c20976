/* The scheduler on its own, against a fake queue: this file defines the
 * queue protocol (worker/pg/queue.h) and the connection (worker/pg/pgconn.h)
 * at link time, so the static libraries' queue.o and pgconn.o are never
 * linked in and no database is needed. The executor is the real one, with
 * built-in tasks: noop ends at once; purge_dead_jobs waits on the admin
 * connection (the fake's pending query), so a job can be held RUNNING.
 * Every call the scheduler makes is recorded; the test answers the ones
 * that take a callback by calling it, as libpq's answer would. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "jobs/builtin/builtin.h"
#include "scheduler/scheduler.h"
#include "worker/base/config.h"
#include "worker/base/metrics.h"
#include "worker/pg/queue.h"

/* ---- the fake connection ------------------------------------------------ */

struct rw_pg {
    struct rw_pg_callbacks cb;
    bool ready;
};

/* the last op the scheduler (or a built-in) sent that still owes its answer */
struct pending {
    rw_pg_done_cb cb;
    void *arg;
};

static struct fake {
    rw_pg *pg;
    rw_pg *out;           /* the outcomes connection (scheduler.c) */
    rw_pg *outcomes_pg;   /* where the last outcomes went */
    struct pending registration, deregistration, claim, outcomes, query;
    int claims, registrations, deregistrations, flushes;
    int claim_asked;
    char known_ids[256];
    char completed[256], failed[2048], released[256];
    /* rows the next claim answers with */
    struct rw_queue_claimed rows[16];
    int nrows;
} fk;

rw_pg *rw_pg_new(struct ev_loop *loop, const char *conninfo, const struct rw_pg_callbacks *cb,
                 int connect_timeout_s)
{
    rw_pg *pg = calloc(1, sizeof *pg);

    pg->cb = *cb;
    if (!fk.pg)
        fk.pg = pg;       /* the control connection; the listener's (notify.c) never connects */
    else if (!fk.out)
        fk.out = pg;      /* created next: the outcomes connection */
    return pg;
}

void rw_pg_set_app_name(rw_pg *pg, const char *name) {}
void rw_pg_set_reply_timeout(rw_pg *pg, int seconds) {}
void rw_pg_set_quiet_notices(rw_pg *pg) {}
void rw_pg_connect(rw_pg *pg) {}
bool rw_pg_ready(const rw_pg *pg) { return pg->ready; }
int rw_pg_inflight(const rw_pg *pg) { return 0; }
PGconn *rw_pg_conn(rw_pg *pg) { return NULL; }
int rw_pg_cancel(rw_pg *pg, char *err, size_t errlen) { return 0; }
void rw_pg_disconnect(rw_pg *pg) { pg->ready = false; }
void rw_pg_abort(rw_pg *pg, const char *why) { pg->ready = false; }
PGconn *rw_pg_connect_blocking(const char *conninfo, const char *what, char *err,
                               size_t errlen) { return NULL; }

void rw_pg_free(rw_pg **pg)
{
    free(*pg);
    *pg = NULL;
}

int rw_pg_submit(rw_pg *pg, const struct rw_pg_stmt *stmts, int n, rw_pg_done_cb cb, void *arg)
{
    fail_msg("unexpected rw_pg_submit of \"%s\"", stmts[0].sql);
    return -1;
}

/* only built-ins' scoped queries come here */
int rw_pg_query(rw_pg *pg, const char *sql, int nparams, const char *const *params,
                rw_pg_done_cb cb, void *arg)
{
    assert_null(fk.query.cb);
    fk.query = (struct pending){cb, arg};
    return 0;
}

/* ---- the fake queue ---------------------------------------------------- */

int rw_queue_claim_jobs(rw_pg *pg, const char *worker, int n, rw_pg_done_cb cb, void *arg)
{
    assert_null(fk.claim.cb);
    fk.claims++;
    fk.claim_asked = n;
    fk.claim = (struct pending){cb, arg};
    return 0;
}

int rw_queue_claimed_count(const struct rw_pg_result *r) { return fk.nrows; }

void rw_queue_claimed_row(const struct rw_pg_result *r, int row, struct rw_queue_claimed *out)
{
    *out = fk.rows[row];
}

int rw_queue_register_worker(rw_pg *pg, const char *worker, const char *host, int pid,
                             int backend_pid, const char *known_ids, rw_pg_done_cb cb, void *arg)
{
    fk.registrations++;
    snprintf(fk.known_ids, sizeof fk.known_ids, "%s", known_ids);
    fk.registration = (struct pending){cb, arg};
    return 0;
}

bool rw_queue_registered_own_session(const struct rw_pg_result *r) { return true; }

int rw_queue_deregister_worker(rw_pg *pg, const char *worker, rw_pg_done_cb cb, void *arg)
{
    fk.deregistrations++;
    fk.deregistration = (struct pending){cb, arg};
    return 0;
}

int rw_queue_heartbeat(rw_pg *pg, const char *worker, rw_pg_done_cb cb, void *arg) { return -1; }
/* not sent: the worker keeps claiming as it would without them (020) */
int rw_queue_set_wants_notify(rw_pg *pg, const char *worker, bool wants, rw_pg_done_cb cb,
                              void *arg) { return -1; }
int rw_queue_notify_barrier(rw_pg *pg, rw_pg_done_cb cb, void *arg) { return -1; }
bool rw_queue_barrier_passed(const struct rw_pg_result *r) { return false; }
bool rw_queue_heartbeat_alive(const struct rw_pg_result *r) { return true; }
int rw_queue_sweep_dead_sessions(rw_pg *pg, int lock_timeout_s, bool full, rw_pg_done_cb cb,
                                 void *arg) { return -1; }
int rw_queue_swept_count(const struct rw_pg_result *r) { return 0; }
int rw_queue_prune_history(rw_pg *pg, int keep_s, int batch, rw_pg_done_cb cb,
                           void *arg) { return -1; }
long long rw_queue_pruned_count(const struct rw_pg_result *r) { return 0; }
int rw_queue_cancels_requested(rw_pg *pg, const char *worker, const char *ids,
                               rw_pg_done_cb cb, void *arg) { return -1; }
int rw_queue_cancels_requested_count(const struct rw_pg_result *r) { return 0; }
long long rw_queue_cancels_requested_id(const struct rw_pg_result *r, int i) { return 0; }

int rw_queue_record_outcomes(rw_pg *pg, const struct rw_queue_outcomes *o, rw_pg_done_cb cb,
                             void *arg)
{
    assert_null(fk.outcomes.cb);
    fk.flushes++;
    fk.outcomes_pg = pg;
    snprintf(fk.completed, sizeof fk.completed, "%s", o->completed_ids ? o->completed_ids : "");
    snprintf(fk.failed, sizeof fk.failed, "%s", o->failed_rows ? o->failed_rows : "");
    snprintf(fk.released, sizeof fk.released, "%s", o->released_ids ? o->released_ids : "");
    fk.outcomes = (struct pending){cb, arg};
    return 0;
}

/* as if no batch came back short: nothing to warn of */
void rw_queue_outcomes_recorded(const struct rw_pg_result *r, const struct rw_queue_outcomes *o,
                                int counts[3])
{
    counts[0] = counts[1] = counts[2] = -1;
}

static void answer_as(struct pending *p, bool ok, bool conn_lost, const char *error)
{
    struct pending q = *p;
    struct rw_pg_result r = {ok, conn_lost, error, NULL, 0, NULL};

    assert_non_null(q.cb);
    *p = (struct pending){NULL, NULL};
    q.cb(fk.pg, &r, q.arg);
}

/* Answers a pending op (ok, or failed with error). */
static void answer(struct pending *p, bool ok, const char *error)
{
    answer_as(p, ok, false, error);
}

/* The connection is lost: every op still owed is answered with conn_lost,
 * as pgconn does, so what the scheduler allocated for them is freed. */
static void lose_connection(void)
{
    struct pending *owed[] = {&fk.query, &fk.outcomes, &fk.claim, &fk.registration,
                              &fk.deregistration};

    fk.pg->ready = false;
    fk.pg->cb.on_lost(fk.pg, "test ends", fk.pg->cb.arg);
    for (size_t i = 0; i < sizeof owed / sizeof owed[0]; i++)
        if (owed[i]->cb)
            answer_as(owed[i], false, true, "connection lost");
}

/* ---- the fixture -------------------------------------------------------- */

struct fixture {
    struct ev_loop *loop;
    struct rw_config cfg;
    struct rw_metrics *metrics;
    struct rw_registry *reg;
    struct rw_executor *ex;
    struct rw_sched *s;
    char dir[64];
    int registered, stopping;
};

static void on_registered(void *arg) { ((struct fixture *)arg)->registered++; }
static void on_stopping(void *arg) { ((struct fixture *)arg)->stopping++; }

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    char err[512];

    memset(&fk, 0, sizeof fk);
    assert_non_null(f);
    snprintf(f->dir, sizeof f->dir, "/tmp/rw_test_sched_XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    assert_int_equal(rw_config_init(&f->cfg), 0);
    f->cfg.concurrency = 1;
    f->cfg.prefetch = 2;
    f->cfg.max_attempts = 3;
    f->loop = ev_loop_new(EVFLAG_AUTO);
    f->metrics = rw_metrics_new();
    assert_int_equal(rw_builtin_registry_load(f->dir, &f->reg, err, sizeof err), 0);
    struct rw_sched_callbacks scb = {on_registered, on_stopping, NULL, f};
    f->s = rw_sched_new(f->loop, &f->cfg, "w1", "host", false, &scb);
    struct rw_exec_callbacks ecb = rw_sched_exec_callbacks(f->s);
    struct rw_exec_pools pools = {NULL, NULL, 0, NULL};
    f->ex = rw_exec_new(f->loop, &f->cfg, &pools, f->metrics, &ecb);
    rw_exec_set_tasks(f->ex, f->reg);
    assert_int_equal(rw_sched_start(f->s, f->ex), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    lose_connection();
    rw_sched_free(&f->s);
    rw_exec_free(&f->ex);
    rw_registry_free(&f->reg);
    rw_metrics_free(&f->metrics);
    rw_config_free(&f->cfg);
    ev_loop_destroy(f->loop);
    rmdir(f->dir);
    free(f);
    return 0;
}

static void add_row(long long id, const char *task, const char *subject)
{
    fk.rows[fk.nrows++] = (struct rw_queue_claimed){
        .id = id, .task = task, .payload = "{}", .subject = subject, .attempts = 1,
        .lock_token = "00000000-0000-0000-0000-000000000000"};
}

/* Connects and registers; the scheduler claims at once. */
static void connect_and_register(struct fixture *f)
{
    fk.pg->ready = true;
    fk.pg->cb.on_ready(fk.pg, fk.pg->cb.arg);
    assert_int_equal(fk.registrations, 1);
    answer(&fk.registration, true, NULL);
    assert_int_equal(f->registered, 1);
    assert_int_equal(fk.claims, 1);
}

/* One loop turn: the ev_prepare watcher sends the batched outcomes. */
static void turn(struct fixture *f)
{
    ev_run(f->loop, EVRUN_NOWAIT);
}

static void test_claims_at_most_concurrency_plus_prefetch(void **state)
{
    struct fixture *f = *state;

    connect_and_register(f);
    assert_int_equal(fk.claim_asked, 3);   /* concurrency 1 + prefetch 2 */
    assert_string_equal(fk.known_ids, "{}");
}

static void test_completions_and_failures_go_out_in_one_batch(void **state)
{
    struct fixture *f = *state;

    connect_and_register(f);
    add_row(1, "noop", NULL);
    add_row(2, "no_such_task", NULL);
    add_row(3, "noop", NULL);
    answer(&fk.claim, true, NULL);
    /* built-ins end at once: each frees its slot for the next */
    assert_int_equal(rw_sched_inflight(f->s), 0);
    assert_int_equal(rw_sched_stats(f->s)->completed, 2);
    assert_int_equal(rw_sched_stats(f->s)->failed, 1);
    turn(f);
    assert_int_equal(fk.flushes, 1);
    assert_string_equal(fk.completed, "{1,3}");
    assert_non_null(strstr(fk.failed, "\"id\":2"));
    assert_non_null(strstr(fk.failed, "unknown task"));
    assert_string_equal(fk.released, "");
}

/* concurrency 1: the first job holds the slot (RUNNING), the others stay
 * READY; their ids are known to a re-registration; stopping releases the
 * READY ones at once and waits for the running one. */
static void test_prefetched_jobs_wait_and_are_released_on_stop(void **state)
{
    struct fixture *f = *state;

    connect_and_register(f);
    add_row(1, "purge_dead_jobs", "u1");
    add_row(2, "purge_dead_jobs", "u2");
    add_row(3, "purge_dead_jobs", "u3");
    answer(&fk.claim, true, NULL);
    assert_int_equal(rw_sched_inflight(f->s), 3);
    assert_int_equal(rw_sched_running(f->s), 1);
    assert_non_null(fk.query.cb);          /* job 1 runs its query */

    rw_sched_stop(f->s, false);
    assert_int_equal(f->stopping, 1);
    assert_int_equal(rw_sched_inflight(f->s), 1);
    assert_int_equal(rw_sched_stats(f->s)->released, 2);
    turn(f);
    assert_string_equal(fk.released, "{2,3}");
    assert_string_equal(fk.completed, "");
    answer(&fk.outcomes, true, NULL);

    answer(&fk.query, false, "boom");      /* job 1 ends: failed, retried later */
    assert_int_equal(rw_sched_inflight(f->s), 0);
    assert_int_equal(fk.deregistrations, 1);   /* everything ended: deregister */
    assert_non_null(strstr(fk.failed, "could not purge dead jobs: boom"));
    answer(&fk.deregistration, true, NULL);
}

/* After a reconnect the scheduler tells the database which jobs it still
 * holds, from its lists by state (READY and RUNNING alike). */
static void test_reregistration_names_every_live_job(void **state)
{
    struct fixture *f = *state;

    connect_and_register(f);
    add_row(7, "purge_dead_jobs", "u1");
    add_row(8, "purge_dead_jobs", "u2");
    answer(&fk.claim, true, NULL);
    fk.pg->ready = false;
    fk.pg->cb.on_lost(fk.pg, "test", fk.pg->cb.arg);
    fk.claim = (struct pending){NULL, NULL};
    fk.pg->ready = true;
    fk.pg->cb.on_ready(fk.pg, fk.pg->cb.arg);
    assert_int_equal(fk.registrations, 2);
    /* the running job 7 is walked before the ready job 8 */
    assert_string_equal(fk.known_ids, "{7,8}");
    answer(&fk.query, false, "boom");
}

/* An immediate stop (a second signal) deregisters at once; the running
 * job, abandoned, ends as released, not failed. */
static void test_immediate_stop_releases_the_running_job(void **state)
{
    struct fixture *f = *state;

    connect_and_register(f);
    add_row(5, "purge_dead_jobs", "u1");
    answer(&fk.claim, true, NULL);
    assert_int_equal(rw_sched_running(f->s), 1);
    rw_sched_stop(f->s, true);
    assert_int_equal(fk.deregistrations, 1);
    answer(&fk.query, false, "connection lost");
    assert_int_equal(rw_sched_stats(f->s)->released, 1);
    assert_int_equal(rw_sched_inflight(f->s), 0);
}

static void out_connects(void)
{
    fk.out->ready = true;
    fk.out->cb.on_ready(fk.out, fk.out->cb.arg);
}

/* With the outcomes connection up, outcomes go there (the server records
 * them while the control connection claims); the deregistration at the end
 * waits until they are answered, so it cannot overtake them. */
static void test_outcomes_go_on_their_own_connection_before_deregistration(void **state)
{
    struct fixture *f = *state;

    connect_and_register(f);
    out_connects();
    add_row(1, "noop", NULL);
    answer(&fk.claim, true, NULL);
    turn(f);
    assert_int_equal(fk.flushes, 1);
    assert_ptr_equal(fk.outcomes_pg, fk.out);
    assert_string_equal(fk.completed, "{1}");

    rw_sched_stop(f->s, false);
    assert_int_equal(rw_sched_inflight(f->s), 0);
    assert_int_equal(fk.deregistrations, 0);    /* waits for the outcomes */
    answer(&fk.outcomes, true, NULL);
    assert_int_equal(fk.deregistrations, 1);
    answer(&fk.deregistration, true, NULL);
}

/* The outcomes connection is lost with a batch in flight: the batch goes
 * again, on the control connection, until the outcomes connection is back. */
static void test_outcomes_lost_with_their_connection_go_again_on_the_control_one(void **state)
{
    struct fixture *f = *state;

    connect_and_register(f);
    out_connects();
    add_row(1, "noop", NULL);
    add_row(2, "noop", NULL);
    answer(&fk.claim, true, NULL);
    turn(f);
    assert_ptr_equal(fk.outcomes_pg, fk.out);
    fk.out->ready = false;
    fk.out->cb.on_lost(fk.out, "test", fk.out->cb.arg);
    answer_as(&fk.outcomes, false, true, "connection lost");
    turn(f);
    assert_int_equal(fk.flushes, 2);
    assert_ptr_equal(fk.outcomes_pg, fk.pg);
    assert_string_equal(fk.completed, "{1,2}");
    answer(&fk.outcomes, true, NULL);
    assert_int_equal(rw_sched_stats(f->s)->completed, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_claims_at_most_concurrency_plus_prefetch, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_completions_and_failures_go_out_in_one_batch,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_prefetched_jobs_wait_and_are_released_on_stop,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_reregistration_names_every_live_job, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_immediate_stop_releases_the_running_job, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_outcomes_go_on_their_own_connection_before_deregistration, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_outcomes_lost_with_their_connection_go_again_on_the_control_one, setup,
            teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
