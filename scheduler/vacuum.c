/* Vacuuming the queue table during long drains.
 *
 * A claim walks jobs_claim_idx from its head, and every job claimed leaves
 * a dead entry there (and dead row versions in the heap) until the table is
 * vacuumed. So with a long queue a claim's cost grows with the jobs claimed
 * since the last vacuum: after 200 000 claims from a queue of 1 000 000, the
 * pick read 1 011 index pages instead of 5, and a million-job drain ran at
 * half the rate of a short one. Autovacuum looks at a database at most once
 * per naptime (a minute by default) and waits for a fifth of the table to be
 * dead, so it rarely comes during a drain.
 *
 * The worker vacuums rlsworker.jobs itself every vacuum_every jobs it
 * claimed, on a connection of its own ("rlsworker vacuum", DATABASE_URL,
 * opened at the first vacuum), with SKIP_LOCKED so it never waits for
 * another worker's vacuum or autovacuum, and one vacuum at a time. Only the
 * table's owner (or a superuser) may vacuum it: a role that is not gets one
 * line in the log and autovacuum keeps the table. */
#include "scheduler/scheduler_int.h"
#include "worker/base/log.h"

#define OWNS_JOBS "select pg_has_role(current_user, c.relowner, 'USAGE')" \
                  " from pg_class c where c.oid = 'rlsworker.jobs'::regclass"
#define VACUUM_JOBS "vacuum (skip_locked) rlsworker.jobs"

static void vacuumed(rw_pg *pg, const struct rw_pg_result *r, void *arg)
{
    struct rw_sched *s = arg;

    (void)pg;
    s->vac_inflight = false;
    if (!r->ok) {
        if (!r->conn_lost)
            rw_warn("could not vacuum rlsworker.jobs: %s; trying again after %d more "
                    "claimed jobs (vacuum_every)", r->error, s->cfg->vacuum_every);
        return;
    }
    rw_debug("vacuumed rlsworker.jobs in %.0f ms", (ev_time() - s->vac_started) * 1000.0);
}

static void send_vacuum(struct rw_sched *s)
{
    s->vac_started = ev_time();
    if (rw_pg_query(s->vac, VACUUM_JOBS, 0, NULL, vacuumed, s) != 0)
        s->vac_inflight = false;
}

static void owner_checked(rw_pg *pg, const struct rw_pg_result *r, void *arg)
{
    struct rw_sched *s = arg;

    if (!r->ok) {
        s->vac_inflight = false;
        if (!r->conn_lost)
            rw_warn("could not check who owns rlsworker.jobs: %s", r->error);
        return;
    }
    if (PQntuples(r->results[0]) != 1 || PQgetvalue(r->results[0], 0, 0)[0] != 't') {
        rw_info("the role of DATABASE_URL does not own rlsworker.jobs, so the worker does "
                "not vacuum it during long drains and leaves it to autovacuum (fix: run "
                "the worker as the role that ran \"rlsworker migrate\", or set "
                "vacuum_every 0 to silence this)");
        s->vac_off = true;
        s->vac_inflight = false;
        rw_pg_disconnect(pg);
        return;
    }
    s->vac_owner_checked = true;
    send_vacuum(s);
}

static void vac_ready(rw_pg *pg, void *arg)
{
    struct rw_sched *s = arg;

    if (s->vac_owner_checked) {
        send_vacuum(s);
        return;
    }
    if (rw_pg_query(pg, OWNS_JOBS, 0, NULL, owner_checked, s) != 0)
        s->vac_inflight = false;
}

static void vac_lost(rw_pg *pg, const char *why, void *arg)
{
    struct rw_sched *s = arg;

    (void)pg;
    if (s->vac_inflight && !s->stopping)
        rw_info("lost the vacuum connection: %s; the next vacuum connects again", why);
    s->vac_inflight = false;
}

void rw_sched_vacuum_claimed(struct rw_sched *s, int n)
{
    struct rw_pg_callbacks cb = {vac_ready, vac_lost, NULL, s};

    s->vac_claimed += n;
    if (s->cfg->vacuum_every <= 0 || s->vac_off || s->vac_inflight || s->stopping ||
        s->vac_claimed < s->cfg->vacuum_every)
        return;
    s->vac_claimed = 0;
    if (!s->vac) {
        s->vac = rw_pg_new(s->loop, s->cfg->database_url, &cb, s->cfg->connect_timeout_s);
        if (!s->vac)
            return;
        rw_pg_set_app_name(s->vac, "rlsworker vacuum");
        rw_pg_set_quiet_notices(s->vac);
    }
    s->vac_inflight = true;
    if (rw_pg_ready(s->vac))
        send_vacuum(s);
    else
        rw_pg_connect(s->vac);    /* vac_ready sends it */
}
