/* Internal to scheduler/: pieces shared between scheduler.c and recovery.c. */
#ifndef RW_SCHEDULER_INT_H
#define RW_SCHEDULER_INT_H

#include <unistd.h>

struct rw_worker;

void rw_sched_check_done(struct rw_worker *w);
void rw_sched_finish(struct rw_worker *w);

/* recovery.c: heartbeats and sweeping jobs of lost workers */
void rw_sched_recovery_init(struct rw_worker *w);
void rw_sched_recovery_start(struct rw_worker *w);
void rw_sched_recovery_stop(struct rw_worker *w);

#endif
