/* The statements a group-commit transaction prepares once and runs for
 * each of its jobs (jobs/exec/group.c; docs/guarantees.md, "Group commit").
 *
 * A group sends the same statements for every job: the savepoint, the
 * reset of the batch-mate before, the claims, the task's statements, the
 * release. As unnamed statements the server parsed, analysed and rewrote
 * each of them for every job; prepared once per group it does that once.
 * Names are unique to this process and group, so a statement a transaction
 * pooler leaves on a server session never collides with a later group's.
 * The group's `discard all` deallocates them. */
#ifndef RW_PREPCACHE_H
#define RW_PREPCACHE_H

#include <stdbool.h>

struct rw_prep {
    char *sql;
    char name[40];
    bool ready;          /* the server confirmed the prepare */
    bool sending;        /* its prepare is in the op in flight */
};

struct rw_prepcache {
    struct rw_prep *v;
    int n, cap;
};

/* The entry for sql, added (not ready) on first use. -1 when out of memory. */
int rw_prepcache_get(struct rw_prepcache *c, const char *sql);
void rw_prepcache_free(struct rw_prepcache *c);

#endif
