/* rlsworker run: start-up in a stated order, then the loop.
 *   1. configuration   2. task registry (and crontab)   3. fail-closed
 *   checks of every role, schema version   4. pools, signals, scheduler
 *   5. the loop until stopped. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "worker/cli/run_hooks.h"
#include "jobs/builtin/builtin.h"
#include "worker/cli/cli.h"
#include "worker/cli/commands.h"
#include "worker/base/log.h"
#include "worker/base/metrics.h"
#include "worker/base/sdnotify.h"
#include "worker/pg/migrations.h"
#include "worker/pg/pgconn.h"
#include "worker/checks/rolecheck.h"
#include "worker/cli/worker.h"

#define CMD "run"

static void usage(FILE *out)
{
    fprintf(out,
        "usage: rlsworker run [--once] [--tasks DIR] [--concurrency N] [--crontab FILE]\n"
        "                     [--listen ADDR:PORT] [--config FILE] [options]\n\n"
        "Claims jobs and runs them until SIGTERM/SIGINT (a second one stops at once).\n"
        "  --once     run what is ready now, then exit\n"
        "SIGHUP re-reads the tasks directory and the crontab.\n"
        "Every option of \"rlsworker --help\" may be given as a flag.\n");
}

/* Learns which role a URL logs in as (also proves it can log in). */
static char *login_role(const char *url, const char *what, char *err, size_t errlen)
{
    PGconn *c = rw_pg_connect_blocking(url, what, err, errlen);
    PGresult *r;
    char *role = NULL;

    if (!c)
        return NULL;
    r = PQexec(c, "select current_user");
    if (PQresultStatus(r) == PGRES_TUPLES_OK)
        role = strdup(PQgetvalue(r, 0, 0));
    else
        snprintf(err, errlen, "%s: %s", what, PQerrorMessage(c));
    PQclear(r);
    PQfinish(c);
    return role;
}

/* The functions that make a reused plan unsafe (RW_SQL_IMMUTABLE_READERS):
 * while there is one, every user job is planned for its own claims. Warns
 * once, naming up to five. A failed query counts as one. */
static bool immutable_readers(PGconn *c)
{
    const char *limit = "5";
    PGresult *r = PQexecParams(c, RW_SQL_IMMUTABLE_READERS, 1, NULL, &limit, NULL, NULL, 0);
    char names[600] = "";
    size_t used = 0;
    bool found;

    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        rw_rolecheck_oneline(names, sizeof names, PQresultErrorMessage(r));
        rw_warn("could not list the functions marked IMMUTABLE that read settings: %s; "
                "every user job is planned for its own claims", names);
        PQclear(r);
        return true;
    }
    for (int i = 0; i < PQntuples(r); i++) {
        int n = snprintf(names + used, sizeof names - used, "%s%s", i ? ", " : "",
                         PQgetvalue(r, i, 0));
        used = n < 0 || (size_t)n >= sizeof names - used ? sizeof names - 1 : used + (size_t)n;
    }
    if ((found = PQntuples(r) > 0))
        rw_warn("function %s is marked IMMUTABLE but reads settings or calls a function that "
                "is not IMMUTABLE: a reused plan would keep one user's claims for the next, so "
                "every user job is planned for its own claims; fix: ALTER FUNCTION ... STABLE "
                "(docs/guarantees.md, \"Plans\")", names);
    PQclear(r);
    return found;
}

static int check_schema(struct rw_worker *w)
{
    char err[700];
    PGconn *c = rw_pg_connect_blocking(w->cfg.database_url, "DATABASE_URL", err, sizeof err);
    int v;

    if (!c) {
        rw_cli_error(CMD, "%s", err);
        return -1;
    }
    v = rw_schema_version(c, err, sizeof err);
    if (v == rw_migrations_latest())
        w->plan_each_job = immutable_readers(c);
    PQfinish(c);
    if (v < 0) {
        rw_cli_error(CMD, "%s", err);
        return -1;
    }
    if (v != rw_migrations_latest()) {
        rw_cli_error(CMD, "schema rlsworker is at version %d, this binary needs %d: "
                     "run \"rlsworker migrate\" first", v, rw_migrations_latest());
        return -1;
    }
    return 0;
}

/* The admin pool serves system jobs only. The restricted table is built
 * from the restricted URLs alone, so no run_as can reach the admin role. */
static int make_pools(struct rw_worker *w)
{
    const struct rw_config *cfg = &w->cfg;
    int pool_size = rw_config_pool_size(cfg);
    int admin_max = cfg->concurrency < pool_size ? cfg->concurrency : pool_size;

    int tmo = cfg->connect_timeout_s;

    w->admin_pool = rw_pool_new(w->loop, "admin", cfg->database_url, admin_max, tmo);
    w->roles = calloc((size_t)(1 + cfg->nroles), sizeof *w->roles);
    if (!w->admin_pool || !w->roles)
        return -1;
    w->roles[w->nroles++] = (struct rw_exec_role){
        w->user_role, rw_pool_new(w->loop, w->user_role, cfg->authenticated_url,
                                  pool_size, tmo)};
    for (int i = 0; i < cfg->nroles; i++)
        w->roles[w->nroles++] = (struct rw_exec_role){
            cfg->roles[i].role,
            rw_pool_new(w->loop, cfg->roles[i].role, cfg->roles[i].url, pool_size, tmo)};
    for (int i = 0; i < w->nroles; i++)
        if (!w->roles[i].pool)
            return -1;
    return 0;
}

static void on_stop_signal(struct ev_loop *loop, ev_signal *s, int revents)
{
    struct rw_worker *w = s->data;
    bool second = rw_sched_stopping(w->sched);

    rw_info("received %s: %s", strsignal(s->signum),
            second ? "stopping now" : "finishing running jobs, then stopping");
    rw_sched_stop(w->sched, second);
}

static void on_hup(struct ev_loop *loop, ev_signal *s, int revents)
{
    struct rw_worker *w = s->data;
    struct rw_registry *reg = NULL, **retired;
    char err[1200];

    if (rw_builtin_registry_load(w->cfg.tasks_dir, &reg, err, sizeof err) < 0 ||
        rw_run_hooks_check_run_as(w, reg, err, sizeof err) < 0) {
        rw_error("SIGHUP: kept the old tasks: %s", err);
        rw_registry_free(&reg);
    } else {
        retired = realloc(w->retired, (size_t)(w->nretired + 1) * sizeof *retired);
        if (!retired) {
            rw_registry_free(&reg);
        } else {
            /* running jobs keep pointers into the old registry: retire it */
            w->retired = retired;
            w->retired[w->nretired++] = w->tasks;
            w->tasks = reg;
            rw_exec_set_tasks(w->ex, reg);
            rw_info("SIGHUP: loaded %d tasks from %s", rw_registry_count(reg), w->cfg.tasks_dir);
        }
    }
    rw_run_hooks_reload(w);
}

/* Start-up (role checks, schema check, connecting) takes a while; a stop
 * signal that arrives before the loop watches for it must not kill the
 * process: hold it pending (SIG_BLOCK) until start_signals has libev's
 * handlers in place, then let it through (SIG_UNBLOCK): the loop sees it
 * as if it came then. The loop is made without EVFLAG_SIGNALFD, so libev
 * catches signals with handlers, not by keeping them blocked. */
static void hold_stop_signals(int how)
{
    sigset_t ss;

    sigemptyset(&ss);
    sigaddset(&ss, SIGTERM);
    sigaddset(&ss, SIGINT);
    sigaddset(&ss, SIGHUP);
    sigprocmask(how, &ss, NULL);
}

static void start_signals(struct rw_worker *w)
{
    ev_signal *sigs[3] = {&w->sig_term, &w->sig_int, &w->sig_hup};
    int nums[3] = {SIGTERM, SIGINT, SIGHUP};

    for (int i = 0; i < 3; i++) {
        ev_signal_init(sigs[i], i < 2 ? on_stop_signal : on_hup, nums[i]);
        sigs[i]->data = w;
        ev_signal_start(w->loop, sigs[i]);
    }
    signal(SIGPIPE, SIG_IGN);
    hold_stop_signals(SIG_UNBLOCK);
}

/* systemd: ready once registered on the queue, stopping once told to stop. */
static enum rw_sdnotify_state sd_state(void *arg)
{
    const struct rw_worker *w = arg;

    if (!w->sched || rw_sched_stopping(w->sched))
        return RW_SD_STOPPING;
    return rw_sched_registered(w->sched) ? RW_SD_READY : RW_SD_STARTING;
}

static void sd_status(void *arg, char *buf, size_t len)
{
    const struct rw_worker *w = arg;
    const struct rw_stats *st = rw_sched_stats(w->sched);

    snprintf(buf, len, "jobs in flight: %d (running: %d); completed: %lld, failed: %lld%s",
             rw_sched_inflight(w->sched), rw_sched_running(w->sched), st->completed,
             st->failed, rw_sched_registered(w->sched) ? "" : "; reconnecting to the queue database");
}

static void on_registered(void *arg)
{
    rw_run_hooks_registered(arg);
}

static void on_stopping(void *arg)
{
    rw_run_hooks_quiesce(arg);
}

static void on_history_pruned(long long n, void *arg)
{
    struct rw_worker *w = arg;

    rw_metrics_history_pruned(w->metrics, n);
}

/* The scheduler claims into the executor, which reports back to it. */
static int start_scheduler(struct rw_worker *w)
{
    struct rw_sched_callbacks scb = {on_registered, on_stopping, on_history_pruned, w};
    struct rw_exec_pools pools = {w->admin_pool, w->roles, w->nroles, w->user_role};
    struct rw_exec_callbacks ecb;

    w->sched = rw_sched_new(w->loop, &w->cfg, w->id, w->host, w->once, &scb);
    if (!w->sched)
        return -1;
    ecb = rw_sched_exec_callbacks(w->sched);
    w->ex = rw_exec_new(w->loop, &w->cfg, &pools, w->metrics, &ecb);
    if (!w->ex)
        return -1;
    rw_exec_set_tasks(w->ex, w->tasks);
    if (w->plan_each_job)
        rw_exec_plan_each_job(w->ex);
    return rw_sched_start(w->sched, w->ex);
}

static void worker_free(struct rw_worker *w)
{
    rw_sched_free(&w->sched);
    rw_exec_free(&w->ex);
    rw_pool_free(&w->admin_pool);
    for (int i = 0; i < w->nroles; i++)
        rw_pool_free(&w->roles[i].pool);
    free(w->roles);
    for (int i = 0; i < w->nretired; i++)
        rw_registry_free(&w->retired[i]);
    free(w->retired);
    rw_registry_free(&w->tasks);
    free(w->user_role);
    rw_metrics_free(&w->metrics);
    rw_config_free(&w->cfg);
}

static int parse_flags(struct rw_worker *w, int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--once") == 0) {
            w->once = true;
        } else {
            rw_cli_error(CMD, "unknown option \"%s\" (see rlsworker run --help)", argv[i]);
            return -1;
        }
    }
    if (!w->cfg.database_url) {
        rw_cli_error(CMD, "DATABASE_URL is not set: export the admin role's connection string");
        return -1;
    }
    if (!w->cfg.authenticated_url) {
        rw_cli_error(CMD, "DATABASE_AUTHENTICATED_URL is not set: export the connection string "
                     "of the restricted role user-scoped jobs run as");
        return -1;
    }
    return 0;
}

static int prepare(struct rw_worker *w)
{
    char err[4096];

    if (rw_builtin_registry_load(w->cfg.tasks_dir, &w->tasks, err, sizeof err) < 0) {
        rw_cli_error(CMD, "%s", err);
        return -1;
    }
    if (rw_run_hooks_prepare(w, err, sizeof err) < 0) {
        rw_cli_error(CMD, "%s", err);
        return -1;
    }
    if (rw_run_hooks_check_roles(w, err, sizeof err) < 0) {
        fprintf(stderr, "rlsworker run: refusing to start:\n%s\n", err);
        return -1;
    }
    if (check_schema(w) < 0)
        return -1;
    w->user_role = login_role(w->cfg.authenticated_url, "DATABASE_AUTHENTICATED_URL",
                              err, sizeof err);
    if (!w->user_role) {
        rw_cli_error(CMD, "%s", err);
        return -1;
    }
    return 0;
}

int rw_cmd_run(int argc, char **argv)
{
    struct rw_worker w;
    struct rw_sdnotify *sd = NULL;
    char err[1024];
    int rc;

    if (rw_cli_wants_help(argc, argv)) {
        usage(stdout);
        return RW_EXIT_OK;
    }
    memset(&w, 0, sizeof w);
    hold_stop_signals(SIG_BLOCK);
    if ((rc = rw_cli_config(CMD, &w.cfg, &argc, argv)) != 0)
        return rc;
    if (parse_flags(&w, argc, argv) < 0) {
        rw_config_free(&w.cfg);
        return RW_EXIT_USAGE;
    }
    srandom((unsigned)(time(NULL) ^ getpid()));
    gethostname(w.host, sizeof w.host - 1);
    snprintf(w.id, sizeof w.id, "%s-%d-%08lx", w.host, (int)getpid(), (unsigned long)random());
    rc = RW_EXIT_FAIL;
    if (prepare(&w) < 0)
        goto out;
    w.loop = ev_default_loop(EVFLAG_AUTO);
    rw_pg_set_tcp_defaults(&(struct rw_pg_tcp){
        w.cfg.tcp_keepalives_idle_s, w.cfg.tcp_keepalives_interval_s,
        w.cfg.tcp_keepalives_count, w.cfg.tcp_user_timeout_ms});
    w.metrics = rw_metrics_new();
    if (make_pools(&w) < 0) {
        rw_cli_error(CMD, "out of memory");
        goto out;
    }
    if (rw_run_hooks_check_run_as(&w, w.tasks, err, sizeof err) < 0) {
        rw_cli_error(CMD, "%s", err);
        goto out;
    }
    if (start_scheduler(&w) < 0) {
        rw_cli_error(CMD, "out of memory");
        goto out;
    }
    start_signals(&w);
    if (rw_run_hooks_start(&w, err, sizeof err) < 0) {
        rw_cli_error(CMD, "%s", err);
        goto out;
    }
    rw_info("worker %s started: %d tasks, concurrency %d%s", w.id, rw_registry_count(w.tasks),
            w.cfg.concurrency, w.once ? ", --once" : "");
    sd = rw_sdnotify_new(w.loop, &(struct rw_sdnotify_callbacks){sd_state, sd_status, &w});
    ev_run(w.loop, 0);
    rw_sdnotify_free(&sd);
    rw_run_hooks_stop(&w);
    const struct rw_stats *st = rw_sched_stats(w.sched);
    rw_info("worker stopped: %lld claimed, %lld completed, %lld failed, %lld dead, %lld released",
            st->claimed, st->completed, st->failed, st->dead, st->released);
    rc = RW_EXIT_OK;
out:
    worker_free(&w);
    return rc;
}
