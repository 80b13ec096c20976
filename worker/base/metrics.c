#include "worker/base/metrics.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SERIES 512
#define LABEL_MAX 136

/* duration histogram buckets, seconds */
static const double buckets[] = {0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30, 300};
#define NBUCKETS (sizeof buckets / sizeof buckets[0])

struct job_series {
    char task[LABEL_MAX];
    char outcome[16];
    long long count;
    double sum;
    long long bucket[NBUCKETS];
};

struct kv {
    char key[LABEL_MAX];
    long long value;
};

/* per-queue figures as last read from the database */
#define MAX_QUEUES 100
struct queue_series {
    char queue[LABEL_MAX];        /* "" for jobs without a named queue */
    long long state[3];           /* queued, running, dead */
    double lag;                   /* seconds the oldest ready job has waited */
};

#define MAX_POOLS 20
struct pool_series {
    char pool[LABEL_MAX];
    int in_use, idle, opening, waiting, max;
};

struct rw_metrics {
    struct job_series jobs[MAX_SERIES];
    int njobs;
    struct kv intake[64];
    int nintake;
    struct kv rejected[64];
    int nrejected;
    struct kv depth[8];
    int ndepth;
    struct queue_series queues[MAX_QUEUES];
    int nqueues;
    struct pool_series pools[MAX_POOLS];
    int npools;
    long long history_pruned;
};

static const char *const queue_states[3] = {"queued", "running", "dead"};

struct rw_metrics *rw_metrics_new(void) { return calloc(1, sizeof(struct rw_metrics)); }

void rw_metrics_free(struct rw_metrics **m)
{
    free(*m);
    *m = NULL;
}

static struct kv *kv_slot(struct kv *arr, int *n, int cap, const char *key)
{
    for (int i = 0; i < *n; i++)
        if (strcmp(arr[i].key, key) == 0)
            return &arr[i];
    if (*n == cap)
        return NULL;       /* bounded: extra label values are dropped */
    snprintf(arr[*n].key, LABEL_MAX, "%s", key);
    arr[*n].value = 0;
    return &arr[(*n)++];
}

void rw_metrics_job(struct rw_metrics *m, const char *task, const char *outcome,
                    double seconds)
{
    struct job_series *s = NULL;

    if (!m)
        return;
    for (int i = 0; i < m->njobs && !s; i++)
        if (strcmp(m->jobs[i].task, task) == 0 && strcmp(m->jobs[i].outcome, outcome) == 0)
            s = &m->jobs[i];
    if (!s) {
        if (m->njobs == MAX_SERIES)
            return;
        s = &m->jobs[m->njobs++];
        snprintf(s->task, sizeof s->task, "%s", task);
        snprintf(s->outcome, sizeof s->outcome, "%s", outcome);
    }
    s->count++;
    s->sum += seconds;
    for (size_t b = 0; b < NBUCKETS; b++)
        if (seconds <= buckets[b])
            s->bucket[b]++;
}

void rw_metrics_intake(struct rw_metrics *m, int status)
{
    char key[16];
    struct kv *slot;

    if (!m)
        return;
    snprintf(key, sizeof key, "%d", status);
    if ((slot = kv_slot(m->intake, &m->nintake, 64, key)))
        slot->value++;
}

void rw_metrics_token_rejected(struct rw_metrics *m, const char *reason)
{
    struct kv *slot;

    if (m && (slot = kv_slot(m->rejected, &m->nrejected, 64, reason)))
        slot->value++;
}

void rw_metrics_queue_depth(struct rw_metrics *m, const char *state, long long count)
{
    struct kv *slot;

    if (m && (slot = kv_slot(m->depth, &m->ndepth, 8, state)))
        slot->value = count;
}

void rw_metrics_history_pruned(struct rw_metrics *m, long long n)
{
    if (m && n > 0)
        m->history_pruned += n;
}

void rw_metrics_queues_reset(struct rw_metrics *m)
{
    if (m)
        m->nqueues = 0;
}

static struct queue_series *queue_slot(struct rw_metrics *m, const char *queue)
{
    for (int i = 0; i < m->nqueues; i++)
        if (strcmp(m->queues[i].queue, queue) == 0)
            return &m->queues[i];
    if (m->nqueues == MAX_QUEUES)
        return NULL;
    memset(&m->queues[m->nqueues], 0, sizeof m->queues[0]);
    snprintf(m->queues[m->nqueues].queue, LABEL_MAX, "%s", queue);
    return &m->queues[m->nqueues++];
}

void rw_metrics_queue(struct rw_metrics *m, const char *queue, const char *state,
                      long long count, double lag)
{
    struct queue_series *q;

    if (!m || !(q = queue_slot(m, queue ? queue : "")))
        return;
    for (int i = 0; i < 3; i++)
        if (strcmp(state, queue_states[i]) == 0)
            q->state[i] = count;
    if (lag > q->lag)
        q->lag = lag;
}

void rw_metrics_pool(struct rw_metrics *m, const char *pool, int in_use, int idle,
                     int opening, int waiting, int max)
{
    struct pool_series *p = NULL;

    if (!m)
        return;
    for (int i = 0; i < m->npools && !p; i++)
        if (strcmp(m->pools[i].pool, pool) == 0)
            p = &m->pools[i];
    if (!p) {
        if (m->npools == MAX_POOLS)
            return;
        p = &m->pools[m->npools++];
        snprintf(p->pool, LABEL_MAX, "%s", pool);
    }
    *p = (struct pool_series){.in_use = in_use, .idle = idle, .opening = opening,
                              .waiting = waiting, .max = max};
    snprintf(p->pool, LABEL_MAX, "%s", pool);
}

struct buf {
    char *s;
    size_t len, cap;
};

__attribute__((format(printf, 2, 3)))
static void put(struct buf *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    for (;;) {
        va_start(ap, fmt);
        n = vsnprintf(b->s ? b->s + b->len : NULL, b->s ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0)
            return;
        if (b->s && b->len + (size_t)n < b->cap) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = (b->cap ? b->cap * 2 : 4096) + (size_t)n;
        char *s = realloc(b->s, cap);
        if (!s)
            return;
        b->s = s;
        b->cap = cap;
    }
}

static void put_kv(struct buf *b, const char *name, const char *help, const char *type,
                   const char *label, const struct kv *arr, int n)
{
    put(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
    for (int i = 0; i < n; i++)
        put(b, "%s{%s=\"%s\"} %lld\n", name, label, arr[i].key, arr[i].value);
}

/* A label value in the text format: backslash, quote and newline escaped. */
static const char *label_value(const char *v, char *out, size_t n)
{
    size_t k = 0;

    for (; *v && k + 3 < n; v++) {
        if (*v == '\\' || *v == '"') {
            out[k++] = '\\';
            out[k++] = *v;
        } else if (*v == '\n') {
            out[k++] = '\\';
            out[k++] = 'n';
        } else {
            out[k++] = *v;
        }
    }
    out[k] = '\0';
    return out;
}

static void put_queues(struct buf *b, const struct rw_metrics *m)
{
    char q[2 * LABEL_MAX + 2];

    put(b, "# HELP rlsworker_queue_lag_seconds Wait of the oldest ready job per queue "
           "(queue=\"\" is jobs without a named queue), as last read\n"
           "# TYPE rlsworker_queue_lag_seconds gauge\n");
    for (int i = 0; i < m->nqueues; i++)
        put(b, "rlsworker_queue_lag_seconds{queue=\"%s\"} %.3f\n",
            label_value(m->queues[i].queue, q, sizeof q), m->queues[i].lag);
    put(b, "# HELP rlsworker_queue_state_jobs Jobs per queue and state, as last read\n"
           "# TYPE rlsworker_queue_state_jobs gauge\n");
    for (int i = 0; i < m->nqueues; i++)
        for (int k = 0; k < 3; k++)
            put(b, "rlsworker_queue_state_jobs{queue=\"%s\",state=\"%s\"} %lld\n",
                label_value(m->queues[i].queue, q, sizeof q), queue_states[k],
                m->queues[i].state[k]);
}

static void put_pools(struct buf *b, const struct rw_metrics *m)
{
    char p[2 * LABEL_MAX + 2];

    put(b, "# HELP rlsworker_pool_connections Connections per pool: in_use by a job, "
           "idle, or opening\n# TYPE rlsworker_pool_connections gauge\n");
    for (int i = 0; i < m->npools; i++) {
        const struct pool_series *s = &m->pools[i];
        label_value(s->pool, p, sizeof p);
        put(b, "rlsworker_pool_connections{pool=\"%s\",state=\"in_use\"} %d\n", p, s->in_use);
        put(b, "rlsworker_pool_connections{pool=\"%s\",state=\"idle\"} %d\n", p, s->idle);
        put(b, "rlsworker_pool_connections{pool=\"%s\",state=\"opening\"} %d\n", p, s->opening);
    }
    put(b, "# HELP rlsworker_pool_connections_max Most connections a pool opens\n"
           "# TYPE rlsworker_pool_connections_max gauge\n");
    for (int i = 0; i < m->npools; i++)
        put(b, "rlsworker_pool_connections_max{pool=\"%s\"} %d\n",
            label_value(m->pools[i].pool, p, sizeof p), m->pools[i].max);
    put(b, "# HELP rlsworker_pool_waiting_jobs Jobs waiting for a connection of the pool\n"
           "# TYPE rlsworker_pool_waiting_jobs gauge\n");
    for (int i = 0; i < m->npools; i++)
        put(b, "rlsworker_pool_waiting_jobs{pool=\"%s\"} %d\n",
            label_value(m->pools[i].pool, p, sizeof p), m->pools[i].waiting);
}

char *rw_metrics_render(const struct rw_metrics *m)
{
    struct buf b = {0};

    put(&b, "# HELP rlsworker_jobs_total Jobs finished by this process, by task and outcome\n"
            "# TYPE rlsworker_jobs_total counter\n");
    for (int i = 0; i < m->njobs; i++)
        put(&b, "rlsworker_jobs_total{task=\"%s\",outcome=\"%s\"} %lld\n", m->jobs[i].task,
            m->jobs[i].outcome, m->jobs[i].count);
    put(&b, "# HELP rlsworker_job_duration_seconds Time from start to outcome\n"
            "# TYPE rlsworker_job_duration_seconds histogram\n");
    for (int i = 0; i < m->njobs; i++) {
        const struct job_series *s = &m->jobs[i];
        for (size_t k = 0; k < NBUCKETS; k++)
            put(&b, "rlsworker_job_duration_seconds_bucket{task=\"%s\",outcome=\"%s\",le=\"%g\"} %lld\n",
                s->task, s->outcome, buckets[k], s->bucket[k]);
        put(&b, "rlsworker_job_duration_seconds_bucket{task=\"%s\",outcome=\"%s\",le=\"+Inf\"} %lld\n",
            s->task, s->outcome, s->count);
        put(&b, "rlsworker_job_duration_seconds_sum{task=\"%s\",outcome=\"%s\"} %.6f\n",
            s->task, s->outcome, s->sum);
        put(&b, "rlsworker_job_duration_seconds_count{task=\"%s\",outcome=\"%s\"} %lld\n",
            s->task, s->outcome, s->count);
    }
    put_kv(&b, "rlsworker_queue_jobs", "Jobs in the queue by state, as last read", "gauge",
           "state", m->depth, m->ndepth);
    put_kv(&b, "rlsworker_intake_requests_total", "HTTP intake requests by status", "counter",
           "status", m->intake, m->nintake);
    put_kv(&b, "rlsworker_token_rejections_total", "Tokens refused, by reason", "counter",
           "reason", m->rejected, m->nrejected);
    put_queues(&b, m);
    put_pools(&b, m);
    put(&b, "# HELP rlsworker_history_pruned_total Job history rows removed after "
            "history_retention by this process\n# TYPE rlsworker_history_pruned_total counter\n"
            "rlsworker_history_pruned_total %lld\n", m->history_pruned);
    return b.s;
}
