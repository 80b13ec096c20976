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

struct rw_metrics {
    struct job_series jobs[MAX_SERIES];
    int njobs;
    struct kv intake[64];
    int nintake;
    struct kv rejected[64];
    int nrejected;
    struct kv depth[8];
    int ndepth;
};

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
    return b.s;
}
