/* The executor on its own: no scheduler, no database. A fake owner takes
 * the jobs back through on_end (as the scheduler does), and the admin
 * connection is absent; built-in tasks show each outcome the executor can
 * decide without a connection. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "jobs/builtin/builtin.h"
#include "jobs/exec/executor.h"
#include "worker/base/config.h"
#include "worker/base/metrics.h"

struct fixture {
    struct ev_loop *loop;
    struct rw_config cfg;
    struct rw_metrics *metrics;
    struct rw_registry *reg;
    struct rw_executor *ex;
    char dir[64];
    /* what on_end saw */
    int ends;
    enum rw_job_outcome outcome;
    bool committed;
    char error[512];
    long long delay_ms;
};

static void on_end(struct rw_job *job, const struct rw_job_end *end, void *arg)
{
    struct fixture *f = arg;

    f->ends++;
    f->outcome = end->outcome;
    f->committed = end->committed;
    snprintf(f->error, sizeof f->error, "%s", end->error ? end->error : "");
    f->delay_ms = end->delay_ms;
    assert_int_equal(job->state, RW_JOB_ENDED);
    rw_job_free(&job);   /* the owner frees, as the scheduler does */
}

static rw_pg *no_admin(void *arg)
{
    return NULL;
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    struct rw_exec_callbacks cb = {on_end, no_admin, f};
    char err[512];

    assert_non_null(f);
    snprintf(f->dir, sizeof f->dir, "/tmp/rw_test_exec_XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    assert_int_equal(rw_config_init(&f->cfg), 0);
    f->cfg.max_attempts = 3;
    f->loop = ev_loop_new(EVFLAG_AUTO);
    f->metrics = rw_metrics_new();
    assert_int_equal(rw_builtin_registry_load(f->dir, &f->reg, err, sizeof err), 0);
    struct rw_exec_pools pools = {NULL, NULL, 0, NULL};

    f->ex = rw_exec_new(f->loop, &f->cfg, &pools, f->metrics, &cb);
    assert_non_null(f->ex);
    rw_exec_set_tasks(f->ex, f->reg);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    rw_exec_free(&f->ex);
    rw_registry_free(&f->reg);
    rw_metrics_free(&f->metrics);
    rw_config_free(&f->cfg);
    ev_loop_destroy(f->loop);
    rmdir(f->dir);
    free(f);
    return 0;
}

static struct rw_job *new_job(struct fixture *f, const char *task, int attempts)
{
    struct rw_job *job = calloc(1, sizeof *job);

    assert_non_null(job);
    job->ex = f->ex;
    job->id = 42;
    job->task = strdup(task);
    job->payload = json_object();
    job->attempts = attempts;
    rw_job_claimed(job, NULL);
    return job;
}

static void test_noop_completes_and_must_be_reported(void **state)
{
    struct fixture *f = *state;

    rw_job_dispatch(new_job(f, "noop", 1));
    assert_int_equal(f->ends, 1);
    assert_int_equal(f->outcome, RW_JOB_COMPLETED);
    assert_false(f->committed);   /* a built-in's completion is still to send */
}

static void test_unknown_task_fails_with_retry(void **state)
{
    struct fixture *f = *state;

    rw_job_dispatch(new_job(f, "no_such_task", 1));
    assert_int_equal(f->ends, 1);
    assert_int_equal(f->outcome, RW_JOB_FAILED);
    assert_non_null(strstr(f->error, "unknown task \"no_such_task\""));
    assert_true(f->delay_ms > 0);
}

static void test_last_attempt_is_dead(void **state)
{
    struct fixture *f = *state;

    rw_job_dispatch(new_job(f, "no_such_task", 3));
    assert_int_equal(f->outcome, RW_JOB_DEAD);
    assert_int_equal(f->delay_ms, 0);
}

static void test_no_attempts_left_is_dead(void **state)
{
    struct fixture *f = *state;

    rw_job_dispatch(new_job(f, "noop", 4));
    assert_int_equal(f->outcome, RW_JOB_DEAD);
    assert_non_null(strstr(f->error, "no attempts left"));
}

static void test_subject_builtin_without_subject_is_dead(void **state)
{
    struct fixture *f = *state;

    rw_job_dispatch(new_job(f, "purge_dead_jobs", 1));
    assert_int_equal(f->outcome, RW_JOB_DEAD);
    assert_non_null(strstr(f->error, "has no subject"));
}

static void test_scoped_query_without_admin_connection_fails(void **state)
{
    struct fixture *f = *state;
    struct rw_job *job = new_job(f, "purge_dead_jobs", 1);

    job->subject = strdup("user-1");
    rw_job_dispatch(job);
    assert_int_equal(f->ends, 1);
    assert_int_equal(f->outcome, RW_JOB_FAILED);
    assert_non_null(strstr(f->error, "could not send the purge query"));
}

static void test_release_before_dispatch(void **state)
{
    struct fixture *f = *state;

    rw_job_release_if_waiting(new_job(f, "noop", 1));
    assert_int_equal(f->ends, 1);
    assert_int_equal(f->outcome, RW_JOB_RELEASED);
}

/* The owner's lists follow the state: a claimed job is READY; a job that
 * ends leaves every list before on_end sees it. */
static void test_lists_follow_the_state(void **state)
{
    struct fixture *f = *state;
    struct rw_job_lists lists = {0};
    struct rw_job *a = new_job(f, "noop", 1), *b = new_job(f, "noop", 1);

    rw_job_claimed(a, &lists);
    rw_job_claimed(b, &lists);
    assert_int_equal(rw_job_count(&lists, RW_JOB_READY), 2);
    assert_ptr_equal(lists.by_state[RW_JOB_READY].head, a);   /* oldest first */
    rw_job_dispatch(a);                                      /* READY -> RUNNING -> ENDED */
    assert_int_equal(f->ends, 1);
    assert_int_equal(rw_job_count_live(&lists), 1);
    assert_ptr_equal(lists.by_state[RW_JOB_READY].head, b);
    rw_job_release_if_waiting(b);                            /* READY -> ENDED */
    assert_int_equal(f->outcome, RW_JOB_RELEASED);
    assert_int_equal(rw_job_count_live(&lists), 0);
    assert_null(lists.by_state[RW_JOB_READY].head);
    assert_null(lists.by_state[RW_JOB_READY].tail);
}

/* A cancel of a job not started yet is remembered (its outcome would say
 * cancelled) but is no transition: it stays READY. */
static void test_cancel_before_dispatch_keeps_it_ready(void **state)
{
    struct fixture *f = *state;
    struct rw_job_lists lists = {0};
    struct rw_job *job = new_job(f, "noop", 1);

    rw_job_claimed(job, &lists);
    rw_job_cancel(job, "cancelled by operator");
    assert_int_equal(job->state, RW_JOB_READY);
    assert_true(job->cancel_requested);
    assert_int_equal(f->ends, 0);
    rw_job_release_if_waiting(job);
    assert_int_equal(f->outcome, RW_JOB_RELEASED);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_noop_completes_and_must_be_reported, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_task_fails_with_retry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_last_attempt_is_dead, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_attempts_left_is_dead, setup, teardown),
        cmocka_unit_test_setup_teardown(test_subject_builtin_without_subject_is_dead, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_scoped_query_without_admin_connection_fails,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_release_before_dispatch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lists_follow_the_state, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_before_dispatch_keeps_it_ready, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
