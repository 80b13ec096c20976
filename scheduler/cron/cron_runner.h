/* Cron at run time: fires crontab ticks on the worker's libev loop.
 *
 * Each tick is fired by one call of rlsworker.cron_fire over the admin
 * connection; the database decides which worker wins, so any number of
 * workers may run the same crontab. Waiting uses an ev_timer (monotonic);
 * which ticks are due is decided from wall-clock time on every wake, and the
 * runner wakes at least every max_sleep_s so clock jumps are noticed.
 *
 * Policy (docs/cron.md):
 *  - at start, ticks since the id's last fired tick (rlsworker.cron_state)
 *    are "missed": fired once each with _cron.backfilled = true when younger
 *    than fill=, else skipped. A new id starts from now.
 *  - while running, a due tick fires normally when at most grace_s old (late
 *    wake-up, small forward clock jump, short connection outage); older ones
 *    are missed and follow fill= as above.
 *  - a backward clock jump re-runs nothing: ticks up to the newest handled
 *    one are never fired again (and cron_state refuses them anyway).
 *
 * Lifetime: the admin rw_pg is borrowed and must outlive the runner or fail
 * its pending ops with conn_lost when freed (rw_pg_free does). */
#ifndef RW_CRON_RUNNER_H
#define RW_CRON_RUNNER_H

#include <ev.h>

#include "scheduler/cron/cron.h"
#include "worker/pg/pgconn.h"

struct rw_cron_runner_opts {
    double grace_s;        /* late ticks up to this age fire as normal (300) */
    double max_sleep_s;    /* longest timer sleep, to notice clock jumps (30) */
    double retry_s;        /* retry delay while the admin connection is down (1) */
    int max_fires_per_wake; /* bounds one wake's work; the rest follows at once (1000) */
};

void rw_cron_runner_opts_default(struct rw_cron_runner_opts *o);

struct rw_cron_runner;

/* New, stopped runner. Takes ownership of tab (also on failure); admin and
 * loop are borrowed; opts is copied (NULL = defaults). NULL on OOM. */
struct rw_cron_runner *rw_cron_runner_new(struct ev_loop *loop, rw_pg *admin,
                                          struct rw_crontab *tab,
                                          const struct rw_cron_runner_opts *opts);

/* Call when the admin connection is ready (again): loads last fired ticks
 * once, backfills per fill=, and arms the timer. Safe to call repeatedly. */
void rw_cron_runner_start(struct rw_cron_runner *r);

/* SIGHUP: swaps in a new, already-parsed crontab (ownership taken). Ids kept
 * from the old crontab keep their progress; new ids start from now. */
void rw_cron_runner_replace(struct rw_cron_runner *r, struct rw_crontab *tab);

/* SIGHUP helper: loads path; on success replaces the crontab and returns 0;
 * on error logs "FILE:LINE: ..." and that the old crontab stays, returns -1. */
int rw_cron_runner_reload(struct rw_cron_runner *r, const char *path)
    __attribute__((warn_unused_result));

/* The crontab in use (borrowed; valid until the next replace or free). */
const struct rw_crontab *rw_cron_runner_tab(const struct rw_cron_runner *r);

/* Stops the timer; ops in flight still complete. */
void rw_cron_runner_stop(struct rw_cron_runner *r);

/* Stops and frees; *r becomes NULL. With ops in flight, the memory is
 * released when the last of them completes. */
void rw_cron_runner_free(struct rw_cron_runner **r);

#endif
