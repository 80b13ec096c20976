/* The option table, rw_options[] (config.h): each option's name,
 * environment variable, type, default, bounds, reloadable flag and doc line;
 * the --help lines made from it; and the values derived from options
 * (pool size, group size, prefetch). Setting options from files, the
 * environment and flags is config.c's. */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "worker/base/config.h"

#define OFF(f) offsetof(struct rw_config, f)
#define S(n, e, f, d, r, doc) {n, e, RW_OPT_STRING, OFF(f), d, 0, 0, r, doc, NULL}
#define I(n, e, f, d, lo, hi, r, doc) {n, e, RW_OPT_INT, OFF(f), d, lo, hi, r, doc, NULL}
#define C(n, e, f, d, ch, r, doc) {n, e, RW_OPT_STRING, OFF(f), d, 0, 0, r, doc, ch}

static const char *const claim_settings_choices[] = {"off", "sub", "all", NULL};
static const char *const on_off_choices[] = {"on", "off", NULL};

const struct rw_option rw_options[] = {
    S("database_url", "DATABASE_URL", database_url, NULL, false,
      "admin connection (BYPASSRLS role): queue, migrations, system jobs"),
    S("direct_url", "DATABASE_DIRECT_URL", direct_url, NULL, false,
      "direct, unpooled admin connection for LISTEN when DATABASE_URL goes through a "
      "transaction pooler (on Neon: the host without -pooler)"),
    S("authenticated_url", "DATABASE_AUTHENTICATED_URL", authenticated_url, NULL, false,
      "restricted role for user-scoped jobs (run_as: user)"),
    I("pool_size", "RLSWORKER_POOL_SIZE", pool_size, "0", 0, 1000, false,
      "most connections held open per restricted role (0: the concurrency)"),
    I("connect_timeout", "RLSWORKER_CONNECT_TIMEOUT", connect_timeout_s, "10", 1, 3600, false,
      "seconds to wait for a database connection"),
    I("reconnect_max", "RLSWORKER_RECONNECT_MAX", reconnect_max_s, "30", 1, 3600, false,
      "cap in seconds of the reconnect backoff after losing the database"),
    I("tcp_keepalives_idle", "RLSWORKER_TCP_KEEPALIVES_IDLE", tcp_keepalives_idle_s, "10", 1, 7200, false,
      "seconds a database connection may be silent before TCP keepalive probes start"),
    I("tcp_keepalives_interval", "RLSWORKER_TCP_KEEPALIVES_INTERVAL", tcp_keepalives_interval_s, "5", 1, 600, false,
      "seconds between unanswered TCP keepalive probes"),
    I("tcp_keepalives_count", "RLSWORKER_TCP_KEEPALIVES_COUNT", tcp_keepalives_count, "3", 1, 100, false,
      "unanswered TCP keepalive probes after which a database connection is dropped"),
    I("tcp_user_timeout", "RLSWORKER_TCP_USER_TIMEOUT", tcp_user_timeout_ms, "25000", 0, 3600000, false,
      "milliseconds sent data may stay unacknowledged before a database connection is dropped (0: the kernel's default)"),
    S("jwks_url", "JWKS_URL", jwks_url, NULL, false,
      "JWKS endpoint for RS256/ES256 tokens (https://, or http:// to loopback)"),
    S("jwt_secret", "JWT_SECRET", jwt_secret, NULL, false,
      "HS256 shared secret, at least 32 bytes (never together with jwks_url)"),
    S("jwt_issuer", "JWT_ISSUER", jwt_issuer, NULL, false,
      "required `iss` of tokens, when set"),
    S("jwt_audience", "JWT_AUDIENCE", jwt_audience, NULL, false,
      "required `aud` of tokens, when set"),
    I("jwt_leeway", "RLSWORKER_JWT_LEEWAY", jwt_leeway_s, "30", 0, 600, true,
      "seconds of clock leeway for exp, nbf and iat"),
    I("jwks_refresh_interval", "RLSWORKER_JWKS_REFRESH_INTERVAL", jwks_refresh_interval_s, "60", 1, 86400, true,
      "least seconds between JWKS refetches on an unknown kid"),
    I("jwks_timeout", "RLSWORKER_JWKS_TIMEOUT", jwks_timeout_s, "5", 1, 60, true,
      "seconds a JWKS fetch may take"),
    I("claims_max_bytes", "RLSWORKER_CLAIMS_MAX_BYTES", claims_max_bytes, "4096", 64, 65536, true,
      "largest stored claims object, in bytes of canonical JSON"),
    C("claim_settings", "RLSWORKER_CLAIM_SETTINGS", claim_settings, "off",
      claim_settings_choices, false,
      "off, sub or all: user jobs also get request.jwt.claim.<name> for sub or every "
      "top-level string claim"),
    S("tasks", "RLSWORKER_TASKS", tasks_dir, "./tasks", true,
      "directory of SQL task files"),
    S("crontab", "RLSWORKER_CRONTAB", crontab, NULL, true,
      "crontab file of periodic jobs"),
    I("concurrency", "RLSWORKER_CONCURRENCY", concurrency, "10", 1, 1000, false,
      "jobs in flight at once in this process"),
    I("vacuum_every", "RLSWORKER_VACUUM_EVERY", vacuum_every, "25000", 0, 100000000, true,
      "the worker vacuums rlsworker.jobs after claiming this many jobs, so long drains "
      "keep their speed (0: leave it to autovacuum)"),
    I("claim_batch", "RLSWORKER_CLAIM_BATCH", claim_batch, "200", 1, 1000, true,
      "most jobs claimed in one round trip"),
    I("prefetch", "RLSWORKER_PREFETCH", prefetch, "-1", -1, 1000, true,
      "jobs claimed ahead of free slots and held in this process (-1: concurrency "
      "times group_commit_max, at least 200, at most 1000)"),
    C("group_commit", "RLSWORKER_GROUP_COMMIT", group_commit, "on", on_off_choices, true,
      "on or off: ready user jobs of one role share a transaction, each in its own "
      "savepoint (docs/guarantees.md)"),
    I("group_commit_max", "RLSWORKER_GROUP_COMMIT_MAX", group_commit_max, "32", 1, 1000, true,
      "most jobs in one group-committed transaction"),
    C("group_prepare", "RLSWORKER_GROUP_PREPARE", group_prepare, "on", on_off_choices, true,
      "on or off: a group-committed transaction prepares each of its statements once "
      "and runs it for every job, sharing plans that need no claims (off: parsed and "
      "planned again for every job)"),
    I("poll_interval", "RLSWORKER_POLL_INTERVAL", poll_interval_ms, "2000", 10, 600000, true,
      "milliseconds between polls when no NOTIFY arrives"),
    I("poll_interval_pooled", "RLSWORKER_POLL_INTERVAL_POOLED", poll_interval_pooled_ms, "200", 10, 600000, true,
      "milliseconds between polls (and cancel checks) when notifications do not reach the worker"),
    I("notify_probe_timeout", "RLSWORKER_NOTIFY_PROBE_TIMEOUT", notify_probe_timeout_ms, "1000", 50, 60000, false,
      "milliseconds the start-up NOTIFY to itself may take before the worker polls instead"),
    I("notify_reprobe_interval", "RLSWORKER_NOTIFY_REPROBE_INTERVAL", notify_reprobe_interval_s, "300", 0, 86400, false,
      "seconds after which a worker that found notifications do not arrive checks again "
      "(0: never)"),
    I("max_attempts", "RLSWORKER_MAX_ATTEMPTS", max_attempts, "25", 1, 1000, true,
      "attempts before a job is dead, unless the job or task says otherwise"),
    I("backoff_base", "RLSWORKER_BACKOFF_BASE", backoff_base_ms, "1000", 1, 3600000, true,
      "milliseconds of the first retry delay; it doubles each attempt, with jitter"),
    I("backoff_max", "RLSWORKER_BACKOFF_MAX", backoff_max_s, "3600", 1, 604800, true,
      "cap in seconds of the retry delay"),
    I("task_timeout", "RLSWORKER_TASK_TIMEOUT", task_timeout_s, "300", 1, 86400, true,
      "seconds a job may run unless its task sets `timeout`"),
    I("lock_timeout", "RLSWORKER_LOCK_TIMEOUT", lock_timeout_s, "20", 2, 3600, false,
      "seconds without heartbeat after which a worker's jobs return to the queue"),
    I("heartbeat_interval", "RLSWORKER_HEARTBEAT_INTERVAL", heartbeat_interval_s, "5", 1, 600, false,
      "seconds between heartbeats (keep well below lock_timeout)"),
    I("shutdown_timeout", "RLSWORKER_SHUTDOWN_TIMEOUT", shutdown_timeout_s, "30", 0, 3600, false,
      "seconds running jobs get to finish on SIGTERM before they are put back"),
    I("history_retention", "RLSWORKER_HISTORY_RETENTION", history_retention_s, "604800", 0, 315360000, true,
      "seconds finished runs stay in the history, rlsworker.job_runs (604800 = 7 days)"),
    I("history_prune_batch", "RLSWORKER_HISTORY_PRUNE_BATCH", history_prune_batch, "10000", 1, 1000000, true,
      "most history rows one sweep removes"),
    S("listen", "RLSWORKER_LISTEN", listen, NULL, false,
      "ADDR:PORT of the HTTP intake (off when unset)"),
    I("body_limit", "RLSWORKER_BODY_LIMIT", body_limit, "1048576", 1024, 67108864, true,
      "largest accepted HTTP request body, in bytes"),
    I("webhook_tolerance", "RLSWORKER_WEBHOOK_TOLERANCE", webhook_tolerance_s, "300", 1, 86400, true,
      "seconds a webhook timestamp may differ from now"),
    I("intake_conn_timeout", "RLSWORKER_INTAKE_CONN_TIMEOUT", intake_conn_timeout_s, "30", 1, 3600, false,
      "seconds an idle or slow HTTP intake connection is kept"),
    I("intake_request_timeout", "RLSWORKER_INTAKE_REQUEST_TIMEOUT", intake_request_timeout_s, "10", 1, 3600, false,
      "seconds an HTTP intake request (headers and body) may take to arrive whole"),
    I("intake_conns_per_address", "RLSWORKER_INTAKE_CONNS_PER_ADDRESS", intake_conns_per_address, "32", 0, 100000, false,
      "most open HTTP intake connections from one client address (0: no cap)"),
    I("intake_max_inflight", "RLSWORKER_INTAKE_MAX_INFLIGHT", intake_max_inflight, "256", 1, 100000, true,
      "HTTP enqueues waiting on the database before new ones get 503"),
    I("http_max_response", "RLSWORKER_HTTP_MAX_RESPONSE", http_max_response, "1048576", 1024, 67108864, true,
      "largest HTTP response body accepted (JWKS documents), in bytes"),
    I("http_timeout", "RLSWORKER_HTTP_TIMEOUT", http_timeout_s, "30", 1, 3600, true,
      "seconds an outgoing HTTP request may take"),
    S("http_allow", "RLSWORKER_HTTP_ALLOW", http_allow, NULL, true,
      "comma-separated hosts or CIDRs that outgoing HTTP may reach though private"),
    S("console_user", "RLSWORKER_CONSOLE_USER", console_user, NULL, false,
      "user name of the web console at /ui/ (off unless console_password is set too)"),
    S("console_password", "RLSWORKER_CONSOLE_PASSWORD", console_password, NULL, false,
      "console password: plain text, sha256:HEX or pbkdf2-sha256:ITER:SALTHEX:HEX (docs/console.md)"),
    I("console_max_failures", "RLSWORKER_CONSOLE_MAX_FAILURES", console_max_failures, "10", 1, 100000, false,
      "failed console logins from one address before it gets 429 for console_failure_window"),
    I("console_failure_window", "RLSWORKER_CONSOLE_FAILURE_WINDOW", console_failure_window_s, "60", 1, 86400, false,
      "seconds over which failed console logins are counted"),
    S("log_level", "RLSWORKER_LOG_LEVEL", log_level, "info", true,
      "debug, info, warning or error"),
};
const int rw_options_count = sizeof rw_options / sizeof rw_options[0];

void rw_config_print_options(FILE *out)
{
    for (int i = 0; i < rw_options_count; i++) {
        const struct rw_option *o = &rw_options[i];
        char flag[64];
        size_t j;
        for (j = 0; o->name[j] && j < sizeof flag - 1; j++)
            flag[j] = o->name[j] == '_' ? '-' : o->name[j];
        flag[j] = '\0';
        fprintf(out, "  --%-24s %s (default: %s%s%s)\n", flag, o->doc,
                o->def ? o->def : "unset", o->env ? "; env " : "", o->env ? o->env : "");
    }
    fprintf(out, "  --%-24s restricted role and its URL (repeatable; config: role.NAME = URL)\n",
            "role NAME=URL");
    fprintf(out, "  --%-24s read options from FILE (key = value lines)\n", "config FILE");
    fprintf(out, "  %-26s (config file only) sign http tasks' requests to HOST the\n"
            "  %-26s Standard Webhooks way; \"$VAR\" reads the secret from VAR\n",
            "http_sign.HOST = SECRET", "");
}

int rw_config_pool_size(const struct rw_config *cfg)
{
    return cfg->pool_size > 0 ? cfg->pool_size : cfg->concurrency;
}

bool rw_config_group_prepare(const struct rw_config *cfg)
{
    return !cfg->group_prepare || strcmp(cfg->group_prepare, "on") == 0;
}

int rw_config_group_max(const struct rw_config *cfg)
{
    return cfg->group_commit && strcmp(cfg->group_commit, "on") == 0 ? cfg->group_commit_max : 1;
}

int rw_config_prefetch(const struct rw_config *cfg)
{
    long n;

    if (cfg->prefetch >= 0)
        return cfg->prefetch;
    n = (long)cfg->concurrency * rw_config_group_max(cfg);
    return n < 200 ? 200 : n > 1000 ? 1000 : (int)n;
}
