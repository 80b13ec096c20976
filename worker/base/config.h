/* Configuration: one table (config_options.c, rw_options[]) is the schema:
 * name, environment variable, type, default, bounds, reloadable flag and a
 * doc line.
 * Precedence: defaults < config file (--config) < environment < flags.
 * Every option can be given as a flag: `--lock-timeout 30` sets lock_timeout.
 * All strings in struct rw_config are owned by it (freed by rw_config_free). */
#ifndef RW_CONFIG_H
#define RW_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#define RW_MAX_ROLES 16
#define RW_MAX_WEBHOOKS 32
#define RW_MAX_HTTP_SIGN 32
#define RW_HTTP_SIGN_HOST_MAX 253

struct rw_role_url {
    char *role;   /* PostgreSQL role name, e.g. moderator_backend */
    char *url;    /* connection string that logs in as that role */
};

struct rw_webhook_source {
    char *name;   /* path segment: POST /v1/webhooks/<name> */
    char *secret; /* Standard Webhooks secret ("whsec_<base64>" or raw) */
    char *task;   /* task enqueued with the body as payload */
    char *subject;/* JSON pointer into the body naming the job's subject, or NULL */
};

/* Secret the `http` built-in signs its requests to one host with
 * (config `http_sign.<host> = whsec_...`; docs/http-task.md). */
struct rw_http_sign {
    char *host;   /* lower case, no trailing dot; matched against the URL's host */
    char *secret; /* Standard Webhooks secret ("whsec_<base64>" or raw) */
};

struct rw_config {
    /* connections */
    char *database_url;        /* admin role (BYPASSRLS): queue, system jobs */
    char *direct_url;          /* admin role, unpooled: LISTEN (NULL: database_url) */
    char *authenticated_url;   /* restricted role for user-scoped jobs */
    struct rw_role_url roles[RW_MAX_ROLES];
    int nroles;
    int pool_size;             /* max connections per restricted role */
    int connect_timeout_s;
    int reconnect_max_s;
    int tcp_keepalives_idle_s;   /* TCP keepalives and user timeout of every */
    int tcp_keepalives_interval_s; /* database connection (libpq's keywords; */
    int tcp_keepalives_count;    /* a connection string's own values win) */
    int tcp_user_timeout_ms;
    /* JWT */
    char *jwks_url;
    char *jwt_secret;
    char *jwt_issuer;
    char *jwt_audience;
    int jwt_leeway_s;
    int jwks_refresh_interval_s;
    int jwks_timeout_s;
    int claims_max_bytes;
    char *claim_settings;      /* "off", "sub" or "all": request.jwt.claim.<name> too */
    /* tasks and scheduling */
    char *tasks_dir;
    char *crontab;
    int concurrency;
    int claim_batch;
    int vacuum_every;          /* claimed jobs between vacuums of rlsworker.jobs; 0: never */
    int prefetch;              /* -1: rw_config_prefetch sizes it */
    char *group_commit;        /* "on" or "off" */
    int group_commit_max;
    char *group_prepare;       /* "on" or "off" */
    int poll_interval_ms;
    int poll_interval_pooled_ms; /* when notifications do not arrive */
    int notify_probe_timeout_ms;
    int notify_reprobe_interval_s; /* after a failed probe; 0: never again */
    int max_attempts;
    int backoff_base_ms;
    int backoff_max_s;
    int task_timeout_s;
    int lock_timeout_s;
    int heartbeat_interval_s;
    int shutdown_timeout_s;
    int history_retention_s;   /* finished runs kept in rlsworker.job_history */
    int history_prune_batch;   /* most history rows one sweep removes */
    /* HTTP */
    char *listen;
    int body_limit;
    int webhook_tolerance_s;
    int intake_max_inflight;
    int intake_conn_timeout_s;
    int intake_request_timeout_s; /* whole request (headers and body) */
    int intake_conns_per_address; /* 0: no per-address cap */
    int http_max_response;
    int http_timeout_s;        /* outgoing HTTP of the http built-in */
    char *http_allow;          /* netguard allowlist (worker/net/netguard.h), or NULL */
    struct rw_webhook_source webhooks[RW_MAX_WEBHOOKS];
    int nwebhooks;
    struct rw_http_sign http_sign[RW_MAX_HTTP_SIGN];
    int nhttp_sign;
    /* console (worker/http/console.c): on when both are set */
    char *console_user;
    char *console_password;    /* plain, sha256:<hex> or pbkdf2-sha256:... */
    int console_max_failures;  /* failed logins per address before 429 */
    int console_failure_window_s;
    /* logging */
    char *log_level;
};

enum rw_opt_type { RW_OPT_STRING, RW_OPT_INT };

struct rw_option {
    const char *name;     /* config-file key; flag is --name with '_' -> '-' */
    const char *env;      /* environment variable, or NULL */
    enum rw_opt_type type;
    size_t offset;
    const char *def;      /* default as text, or NULL (unset) */
    long min, max;        /* bounds for ints */
    bool reloadable;      /* may change on SIGHUP */
    const char *doc;
    const char *const *choices; /* strings: the allowed values (NULL-terminated), or NULL */
};

extern const struct rw_option rw_options[];
extern const int rw_options_count;

/* Fills defaults. Returns 0. */
int rw_config_init(struct rw_config *cfg);
void rw_config_free(struct rw_config *cfg);

/* Sets one option by name (config key or flag spelling). Also accepts
 * role.<name> = URL, webhook.<source>.secret|task and http_sign.<host>. A value "$VAR" reads
 * the environment variable VAR. Returns 0, or -1 with err filled. */
int rw_config_set(struct rw_config *cfg, const char *name, const char *value,
                  char *err, size_t errlen) __attribute__((warn_unused_result));

/* `key = value` lines, '#' comments; errors name FILE:LINE. */
int rw_config_load_file(struct rw_config *cfg, const char *path, char *err,
                        size_t errlen) __attribute__((warn_unused_result));
int rw_config_load_env(struct rw_config *cfg, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* The usual sequence for a subcommand: defaults, --config FILE if present in
 * argv, environment, then every `--option value` flag found in argv that
 * names a config option. Consumed flags are removed from argv (argc updated),
 * so the subcommand sees only its own flags. Returns 0, -1 on a bad value
 * (err filled; exit 1) or -2 on bad usage (err filled; exit 2). */
int rw_config_from_args(struct rw_config *cfg, int *argc, char **argv,
                        char *err, size_t errlen) __attribute__((warn_unused_result));
/* The same, leaving to the subcommand the flags it names in `own` (NULL-ended
 * names without "--", e.g. "max-attempts"): where a subcommand's flag has the
 * name of a config option, the subcommand's meaning wins. */
int rw_config_from_args_except(struct rw_config *cfg, int *argc, char **argv,
                               const char *const *own, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* The signing secret configured for host (case-insensitive, a trailing dot
 * ignored), or NULL: borrowed from cfg. */
const char *rw_config_http_sign_secret(const struct rw_config *cfg, const char *host);

/* Looks up the connection string for a restricted role name. */
const char *rw_config_role_url(const struct rw_config *cfg, const char *role);

/* pool_size, or the concurrency when pool_size is 0 (the default). */
int rw_config_pool_size(const struct rw_config *cfg);
/* A group-commit transaction prepares its statements once (group_prepare). */
bool rw_config_group_prepare(const struct rw_config *cfg);
/* Most jobs in one user transaction: group_commit_max, or 1 when group_commit is off. */
int rw_config_group_max(const struct rw_config *cfg);
/* prefetch, or when -1 (the default) concurrency x rw_config_group_max, within 100..1000. */
int rw_config_prefetch(const struct rw_config *cfg);

/* Prints the options table (for --help and the docs). */
void rw_config_print_options(FILE *out);

#endif
