/* Process metrics in Prometheus text format. Counters are plain integers
 * updated on the loop thread (no locking: one thread). Label values are
 * task names, outcomes and reason codes: bounded sets, never user input
 * beyond task names (which are validated identifiers), queue names (escaped,
 * at most 100) and pool role names. */
#ifndef RW_METRICS_H
#define RW_METRICS_H

#include <stddef.h>

struct rw_metrics;

struct rw_metrics *rw_metrics_new(void);
void rw_metrics_free(struct rw_metrics **m);

/* outcome: completed | failed | dead | released */
void rw_metrics_job(struct rw_metrics *m, const char *task, const char *outcome,
                    double seconds);
/* one HTTP intake request answered with `status` */
void rw_metrics_intake(struct rw_metrics *m, int status);
/* one token refused, by reason code (jwt.h's short reason strings) */
void rw_metrics_token_rejected(struct rw_metrics *m, const char *reason);
/* queue depth as last read from the database: state -> count */
void rw_metrics_queue_depth(struct rw_metrics *m, const char *state, long long count);

/* history rows removed by this process's pruning */
void rw_metrics_history_pruned(struct rw_metrics *m, long long n);
/* Per-queue figures as last read (queue NULL or "": no named queue); the
 * first 100 queues are kept. reset forgets queues no longer present. */
void rw_metrics_queues_reset(struct rw_metrics *m);
void rw_metrics_queue(struct rw_metrics *m, const char *queue, const char *state,
                      long long count, double lag);
/* Connections of one pool, as of now. */
void rw_metrics_pool(struct rw_metrics *m, const char *pool, int in_use, int idle,
                     int opening, int waiting, int max);

/* Renders every metric; returns a malloc'd string the caller frees. */
char *rw_metrics_render(const struct rw_metrics *m);

#endif
