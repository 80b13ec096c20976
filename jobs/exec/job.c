/* The job's life: one transition function and the lists by state
 * (job.h has the diagram). */
#include <stdlib.h>

#include "jobs/exec/job.h"
#include "worker/base/log.h"

/* legal[from][to] */
static const bool legal[RW_JOB_NSTATES][RW_JOB_NSTATES] = {
    [RW_JOB_READY] = {[RW_JOB_WAITING] = true, [RW_JOB_RUNNING] = true, [RW_JOB_ENDED] = true},
    [RW_JOB_WAITING] = {[RW_JOB_RUNNING] = true, [RW_JOB_ENDED] = true},
    [RW_JOB_RUNNING] = {[RW_JOB_STOPPING] = true, [RW_JOB_ENDED] = true},
    [RW_JOB_STOPPING] = {[RW_JOB_ENDED] = true},
};

static void unlink_job(struct rw_job *job)
{
    struct rw_job_list *l;

    if (!job->lists || job->state == RW_JOB_ENDED)
        return;
    l = &job->lists->by_state[job->state];
    if (job->prev)
        job->prev->next = job->next;
    else
        l->head = job->next;
    if (job->next)
        job->next->prev = job->prev;
    else
        l->tail = job->prev;
    job->next = job->prev = NULL;
    l->n--;
}

static void link_job(struct rw_job *job)
{
    struct rw_job_list *l;

    if (!job->lists || job->state == RW_JOB_ENDED)
        return;
    l = &job->lists->by_state[job->state];
    job->prev = l->tail;
    job->next = NULL;
    if (l->tail)
        l->tail->next = job;
    else
        l->head = job;
    l->tail = job;
    l->n++;
}

void rw_job_claimed(struct rw_job *job, struct rw_job_lists *lists)
{
    job->lists = lists;
    job->state = RW_JOB_READY;
    link_job(job);
}

void rw_job_set_state(struct rw_job *job, enum rw_job_state to)
{
    if (!legal[job->state][to]) {
        /* a bug: the lists and counts would no longer be true */
        rw_error("job %lld: illegal state change %s -> %s", job->id,
                 rw_job_state_name(job->state), rw_job_state_name(to));
        abort();
    }
    unlink_job(job);
    job->state = to;
    link_job(job);
}

bool rw_job_running(const struct rw_job *job)
{
    return job->state == RW_JOB_RUNNING || job->state == RW_JOB_STOPPING;
}

const char *rw_job_state_name(enum rw_job_state state)
{
    static const char *const names[RW_JOB_NSTATES] = {
        [RW_JOB_READY] = "ready", [RW_JOB_WAITING] = "waiting", [RW_JOB_RUNNING] = "running",
        [RW_JOB_STOPPING] = "stopping", [RW_JOB_ENDED] = "ended"};

    return state >= 0 && state < RW_JOB_NSTATES ? names[state] : "?";
}

int rw_job_count(const struct rw_job_lists *lists, enum rw_job_state state)
{
    return state == RW_JOB_ENDED ? 0 : lists->by_state[state].n;
}

int rw_job_count_live(const struct rw_job_lists *lists)
{
    int n = 0;

    for (int st = 0; st < RW_JOB_ENDED; st++)
        n += lists->by_state[st].n;
    return n;
}

void rw_job_each(struct rw_job_lists *lists, void (*fn)(struct rw_job *job, void *arg),
                 void *arg)
{
    /* latest state first: a job fn moves goes to a later state, a list
     * already walked, so no job is seen twice */
    for (int st = RW_JOB_ENDED - 1; st >= 0; st--) {
        for (struct rw_job *j = lists->by_state[st].head, *next; j; j = next) {
            next = j->next;
            fn(j, arg);
        }
    }
}

void rw_job_free(struct rw_job **jp)
{
    struct rw_job *job = *jp;

    *jp = NULL;
    if (!job)
        return;
    unlink_job(job);
    json_decref(job->payload);
    free(job->task);
    free(job->claims);
    free(job->subject);
    free(job->run_as);
    free(job);
}
