/* Group commit of user jobs: several SQL jobs of one restricted role in one
 * transaction, each in its own savepoint (group.c; docs/guarantees.md). */
#ifndef RW_GROUP_H
#define RW_GROUP_H

#include <stdbool.h>

#include "jobs/exec/job.h"

struct rw_executor;

/* The job (task and pool resolved, checks passed) may share a transaction. */
bool rw_group_eligible(const struct rw_job *job);
/* A group of that pool is still open to one more job. */
bool rw_group_has_room(const struct rw_executor *ex, const struct rw_pool *pool);
/* Adds the job to an open group of its pool, or opens one; the group asks
 * the pool for a connection at the end of the loop turn. */
void rw_group_add(struct rw_job *job);
/* A waiting job leaves its group (cancel, shutdown). */
void rw_group_forget(struct rw_job *job);
/* Not in a group, or its first live member: it counts against concurrency. */
bool rw_group_holds_slot(const struct rw_job *job);

#endif
