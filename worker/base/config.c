#include "worker/base/config.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <libpq-fe.h>

#include "worker/base/log.h"

#include <openssl/crypto.h>

#include "worker/base/webhook_sig.h"

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
    I("claim_batch", "RLSWORKER_CLAIM_BATCH", claim_batch, "100", 1, 1000, true,
      "most jobs claimed in one round trip"),
    I("prefetch", "RLSWORKER_PREFETCH", prefetch, "-1", -1, 1000, true,
      "jobs claimed ahead of free slots and held in this process (-1: concurrency "
      "times group_commit_max, at least 100, at most 1000)"),
    C("group_commit", "RLSWORKER_GROUP_COMMIT", group_commit, "on", on_off_choices, true,
      "on or off: ready user jobs of one role share a transaction, each in its own "
      "savepoint (docs/guarantees.md)"),
    I("group_commit_max", "RLSWORKER_GROUP_COMMIT_MAX", group_commit_max, "16", 1, 1000, true,
      "most jobs in one group-committed transaction"),
    I("poll_interval", "RLSWORKER_POLL_INTERVAL", poll_interval_ms, "2000", 10, 600000, true,
      "milliseconds between polls when no NOTIFY arrives"),
    I("poll_interval_pooled", "RLSWORKER_POLL_INTERVAL_POOLED", poll_interval_pooled_ms, "200", 10, 600000, true,
      "milliseconds between polls (and cancel checks) when notifications do not reach the worker"),
    I("notify_probe_timeout", "RLSWORKER_NOTIFY_PROBE_TIMEOUT", notify_probe_timeout_ms, "1000", 50, 60000, false,
      "milliseconds the start-up NOTIFY to itself may take before the worker polls instead"),
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
      "seconds finished runs stay in rlsworker.job_history (604800 = 7 days)"),
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

static char **str_field(struct rw_config *cfg, const struct rw_option *o)
{
    return (char **)((char *)cfg + o->offset);
}

static int *int_field(struct rw_config *cfg, const struct rw_option *o)
{
    return (int *)((char *)cfg + o->offset);
}

static const struct rw_option *find_option(const char *name)
{
    char key[64];
    size_t n = strlen(name);

    if (n >= sizeof key)
        return NULL;
    for (size_t i = 0; i <= n; i++)
        key[i] = name[i] == '-' ? '_' : name[i];
    for (int i = 0; i < rw_options_count; i++)
        if (strcmp(rw_options[i].name, key) == 0)
            return &rw_options[i];
    return NULL;
}

static int set_string(char **slot, const char *value)
{
    char *copy = value ? strdup(value) : NULL;
    if (value && !copy)
        return -1;
    free(*slot);
    *slot = copy;
    return 0;
}

static bool one_of(const char *const *choices, const char *value)
{
    for (; *choices; choices++)
        if (strcmp(*choices, value) == 0)
            return true;
    return false;
}

static int set_option(struct rw_config *cfg, const struct rw_option *o,
                      const char *value, char *err, size_t errlen)
{
    if (o->choices && !one_of(o->choices, value)) {
        snprintf(err, errlen, "option \"%s\" must be one of", o->name);
        for (const char *const *c = o->choices; *c; c++)
            snprintf(err + strlen(err), errlen - strlen(err), "%s %s", c == o->choices ? "" : ",", *c);
        snprintf(err + strlen(err), errlen - strlen(err), ", got \"%.64s\"", value);
        return -1;
    }
    if (o->type == RW_OPT_STRING) {
        if (set_string(str_field(cfg, o), value[0] ? value : NULL) < 0) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        return 0;
    }
    char *end;
    errno = 0;
    long v = strtol(value, &end, 10);
    if (errno || end == value || *end != '\0') {
        snprintf(err, errlen, "option \"%s\" needs a whole number, got \"%s\"",
                 o->name, value);
        return -1;
    }
    if (v < o->min || v > o->max) {
        snprintf(err, errlen, "option \"%s\" must be between %ld and %ld, got %ld",
                 o->name, o->min, o->max, v);
        return -1;
    }
    *int_field(cfg, o) = (int)v;
    return 0;
}

int rw_config_init(struct rw_config *cfg)
{
    char err[256];

    memset(cfg, 0, sizeof *cfg);
    for (int i = 0; i < rw_options_count; i++) {
        if (rw_options[i].def &&
            set_option(cfg, &rw_options[i], rw_options[i].def, err, sizeof err) < 0)
            return -1;
    }
    return 0;
}

void rw_config_free(struct rw_config *cfg)
{
    for (int i = 0; i < rw_options_count; i++)
        if (rw_options[i].type == RW_OPT_STRING)
            free(*str_field(cfg, &rw_options[i]));
    for (int i = 0; i < cfg->nroles; i++) {
        free(cfg->roles[i].role);
        free(cfg->roles[i].url);
    }
    for (int i = 0; i < cfg->nwebhooks; i++) {
        free(cfg->webhooks[i].name);
        free(cfg->webhooks[i].secret);
        free(cfg->webhooks[i].task);
        free(cfg->webhooks[i].subject);
    }
    for (int i = 0; i < cfg->nhttp_sign; i++) {
        free(cfg->http_sign[i].host);
        if (cfg->http_sign[i].secret)
            OPENSSL_cleanse(cfg->http_sign[i].secret, strlen(cfg->http_sign[i].secret));
        free(cfg->http_sign[i].secret);
    }
    memset(cfg, 0, sizeof *cfg);
}

static bool valid_ident(const char *s, size_t n)
{
    if (n == 0 || n > 63)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!(isalnum((unsigned char)s[i]) || s[i] == '_' || s[i] == '-'))
            return false;
    return true;
}

static int set_role(struct rw_config *cfg, const char *role, const char *url,
                    char *err, size_t errlen)
{
    int i;

    if (!valid_ident(role, strlen(role))) {
        snprintf(err, errlen, "role name \"%s\" is not a plain identifier", role);
        return -1;
    }
    for (i = 0; i < cfg->nroles; i++)
        if (strcmp(cfg->roles[i].role, role) == 0)
            break;
    if (i == cfg->nroles) {
        if (cfg->nroles == RW_MAX_ROLES) {
            snprintf(err, errlen, "too many roles (at most %d)", RW_MAX_ROLES);
            return -1;
        }
        cfg->roles[i].role = strdup(role);
        cfg->roles[i].url = NULL;
        cfg->nroles++;
    }
    return set_string(&cfg->roles[i].url, url);
}

static int set_webhook(struct rw_config *cfg, const char *rest, const char *value,
                       char *err, size_t errlen)
{
    const char *dot = strrchr(rest, '.');
    int i;

    if (!dot || !valid_ident(rest, (size_t)(dot - rest)) ||
        (strcmp(dot, ".secret") != 0 && strcmp(dot, ".task") != 0 &&
         strcmp(dot, ".subject") != 0)) {
        snprintf(err, errlen, "webhook options are webhook.<source>.secret, "
                 "webhook.<source>.task and webhook.<source>.subject");
        return -1;
    }
    if (strcmp(dot, ".subject") == 0 && (value[0] != '/' || strlen(value) > 256)) {
        snprintf(err, errlen, "webhook.%.*s.subject must be a JSON pointer into the body "
                 "such as /data/user_id (starts with \"/\", at most 256 bytes)",
                 (int)(dot - rest), rest);
        return -1;
    }
    size_t n = (size_t)(dot - rest);
    for (i = 0; i < cfg->nwebhooks; i++)
        if (strlen(cfg->webhooks[i].name) == n &&
            strncmp(cfg->webhooks[i].name, rest, n) == 0)
            break;
    if (i == cfg->nwebhooks) {
        if (cfg->nwebhooks == RW_MAX_WEBHOOKS) {
            snprintf(err, errlen, "too many webhook sources (at most %d)", RW_MAX_WEBHOOKS);
            return -1;
        }
        cfg->webhooks[i].name = strndup(rest, n);
        cfg->nwebhooks++;
    }
    return set_string(strcmp(dot, ".secret") == 0 ? &cfg->webhooks[i].secret
                      : strcmp(dot, ".task") == 0 ? &cfg->webhooks[i].task
                      : &cfg->webhooks[i].subject, value);
}

/* host as the http_sign table keeps it: lower case, no trailing dot, an
 * IPv6 address without its brackets.
 * Returns false when it is not a plausible host name or IP address. */
static bool normal_host(const char *host, char *out, size_t outlen)
{
    size_t n = strlen(host);

    if (n >= 2 && host[0] == '[' && host[n - 1] == ']') {     /* [::1] as in a URL */
        host++;
        n -= 2;
    }
    if (n > 0 && host[n - 1] == '.')
        n--;
    if (n == 0 || n > RW_HTTP_SIGN_HOST_MAX || n >= outlen)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)host[i];
        if (!(isalnum(c) || (c && strchr(".-_:", c))))
            return false;
        out[i] = (char)tolower(c);
    }
    out[n] = '\0';
    return true;
}

/* http_sign.<host> = secret. The secret is checked here (its key bytes must
 * decode) so that a bad one stops the start, and is never echoed. */
static int set_http_sign(struct rw_config *cfg, const char *host, const char *value,
                         char *err, size_t errlen)
{
    char norm[RW_HTTP_SIGN_HOST_MAX + 1];
    unsigned char key[RW_WEBHOOK_KEY_MAX];
    int keylen = rw_webhook_key(value, key, sizeof key);
    int i;

    OPENSSL_cleanse(key, sizeof key);
    if (!normal_host(host, norm, sizeof norm)) {
        snprintf(err, errlen, "http_sign.%.64s: \"%.64s\" is not a host name or address "
                 "(the option is http_sign.<host> = whsec_...)", host, host);
        return -1;
    }
    if (keylen <= 0) {
        snprintf(err, errlen, "http_sign.%s: the secret must be whsec_ followed by base64 "
                 "(at most %d bytes decoded), or plain bytes", norm, RW_WEBHOOK_KEY_MAX);
        return -1;
    }
    for (i = 0; i < cfg->nhttp_sign; i++)
        if (strcmp(cfg->http_sign[i].host, norm) == 0)
            break;
    if (i == cfg->nhttp_sign) {
        if (cfg->nhttp_sign == RW_MAX_HTTP_SIGN) {
            snprintf(err, errlen, "too many http_sign hosts (at most %d)", RW_MAX_HTTP_SIGN);
            return -1;
        }
        if (!(cfg->http_sign[i].host = strdup(norm))) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        cfg->nhttp_sign++;
    }
    if (cfg->http_sign[i].secret)
        OPENSSL_cleanse(cfg->http_sign[i].secret, strlen(cfg->http_sign[i].secret));
    if (set_string(&cfg->http_sign[i].secret, value) < 0) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

const char *rw_config_http_sign_secret(const struct rw_config *cfg, const char *host)
{
    char norm[RW_HTTP_SIGN_HOST_MAX + 1];

    if (!host || !normal_host(host, norm, sizeof norm))
        return NULL;
    for (int i = 0; i < cfg->nhttp_sign; i++)
        if (strcmp(cfg->http_sign[i].host, norm) == 0)
            return cfg->http_sign[i].secret;
    return NULL;
}

int rw_config_set(struct rw_config *cfg, const char *name, const char *value,
                  char *err, size_t errlen)
{
    const struct rw_option *o;

    if (value[0] == '$' && value[1]) {
        const char *env = getenv(value + 1);
        if (!env) {
            snprintf(err, errlen, "option \"%s\" refers to environment variable %s, "
                     "which is not set", name, value + 1);
            return -1;
        }
        value = env;
    }
    if (strncmp(name, "role.", 5) == 0)
        return set_role(cfg, name + 5, value, err, errlen);
    if (strncmp(name, "webhook.", 8) == 0)
        return set_webhook(cfg, name + 8, value, err, errlen);
    if (strncmp(name, "http_sign.", 10) == 0)
        return set_http_sign(cfg, name + 10, value, err, errlen);
    o = find_option(name);
    if (!o) {
        snprintf(err, errlen, "unknown option \"%s\" (see rlsworker --help for the list)", name);
        return -1;
    }
    return set_option(cfg, o, value, err, errlen);
}

static char *trim(char *s)
{
    char *e;
    while (isspace((unsigned char)*s))
        s++;
    e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        *--e = '\0';
    return s;
}

/* Whether a config-file line stores a secret in the file itself (a "$VAR"
 * value only names an environment variable). A connection string counts when
 * it holds a password, or when it cannot be parsed to tell. */
static bool holds_secret(const char *key, const char *value)
{
    PQconninfoOption *opts;
    bool secret = false;
    size_t n = strlen(key);

    if (value[0] == '$' || value[0] == '\0')
        return false;
    if (strcmp(key, "jwt_secret") == 0 ||
        (strncmp(key, "webhook.", 8) == 0 && n > 7 && strcmp(key + n - 7, ".secret") == 0))
        return true;
    if (strcmp(key, "database_url") != 0 && strcmp(key, "authenticated_url") != 0 &&
        strcmp(key, "direct_url") != 0 &&
        strncmp(key, "role.", 5) != 0)
        return false;
    if (!(opts = PQconninfoParse(value, NULL)))
        return true;
    for (PQconninfoOption *o = opts; o->keyword; o++)
        if (strcmp(o->keyword, "password") == 0 && o->val && o->val[0])
            secret = true;
    PQconninfoFree(opts);
    return secret;
}

/* Warns once per load when a file holding secrets is readable by others. */
static void warn_if_exposed(FILE *f, const char *path, const char *key, int lineno)
{
    struct stat st;

    if (fstat(fileno(f), &st) == 0 && (st.st_mode & (S_IRGRP | S_IROTH)))
        rw_warn("config file \"%s\" holds a secret (%s at line %d) and is readable by "
                "%s: run \"chmod 600 %s\" (or move the secret to an environment variable "
                "and write \"%s = $VAR\")", path, key, lineno,
                (st.st_mode & S_IROTH) ? "every user" : "its group", path, key);
}

int rw_config_load_file(struct rw_config *cfg, const char *path, char *err,
                        size_t errlen)
{
    char secret_key[64] = "";
    int secret_line = 0;
    FILE *f = fopen(path, "r");
    char line[4096];
    char msg[512];
    int lineno = 0;

    if (!f) {
        snprintf(err, errlen, "could not open config file \"%s\": %s", path, strerror(errno));
        return -1;
    }
    while (fgets(line, sizeof line, f)) {
        char *s, *eq, *key, *value;
        lineno++;
        if (!strchr(line, '\n') && !feof(f)) {
            snprintf(err, errlen, "%s:%d: line too long", path, lineno);
            fclose(f);
            return -1;
        }
        s = trim(line);
        if (*s == '\0' || *s == '#')
            continue;
        eq = strchr(s, '=');
        if (!eq) {
            snprintf(err, errlen, "%s:%d: expected \"key = value\"", path, lineno);
            fclose(f);
            return -1;
        }
        *eq = '\0';
        key = trim(s);
        value = trim(eq + 1);
        if (rw_config_set(cfg, key, value, msg, sizeof msg) < 0) {
            snprintf(err, errlen, "%s:%d: %s", path, lineno, msg);
            fclose(f);
            return -1;
        }
        if (!secret_line && holds_secret(key, value)) {
            snprintf(secret_key, sizeof secret_key, "%s", key);
            secret_line = lineno;
        }
    }
    if (secret_line)
        warn_if_exposed(f, path, secret_key, secret_line);
    fclose(f);
    return 0;
}

int rw_config_load_env(struct rw_config *cfg, char *err, size_t errlen)
{
    char msg[512];

    for (int i = 0; i < rw_options_count; i++) {
        const char *v = rw_options[i].env ? getenv(rw_options[i].env) : NULL;
        if (v && *v && set_option(cfg, &rw_options[i], v, msg, sizeof msg) < 0) {
            snprintf(err, errlen, "environment variable %s: %s", rw_options[i].env, msg);
            return -1;
        }
    }
    /* conventional names of the extra restricted roles in Neon's guide */
    static const char *const known[][2] = {
        {"moderator_backend", "DATABASE_MODERATOR_URL"},
        {"admin_backend", "DATABASE_ADMIN_BACKEND_URL"},
    };
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
        const char *v = getenv(known[i][1]);
        if (v && *v && !rw_config_role_url(cfg, known[i][0]) &&
            set_role(cfg, known[i][0], v, err, errlen) < 0)
            return -1;
    }
    return 0;
}

static void remove_args(int *argc, char **argv, int at, int n)
{
    for (int i = at; i + n <= *argc; i++)
        argv[i] = argv[i + n];
    *argc -= n;
}

int rw_config_from_args(struct rw_config *cfg, int *argc, char **argv,
                        char *err, size_t errlen)
{
    return rw_config_from_args_except(cfg, argc, argv, NULL, err, errlen);
}

static bool is_own(const char *const *own, const char *name)
{
    for (int i = 0; own && own[i]; i++)
        if (strcmp(own[i], name) == 0)
            return true;
    return false;
}

int rw_config_from_args_except(struct rw_config *cfg, int *argc, char **argv,
                               const char *const *own, char *err, size_t errlen)
{
    if (rw_config_init(cfg) < 0) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (int i = 1; i < *argc; i++) {
        if (strcmp(argv[i], "--config") == 0) {
            if (i + 1 >= *argc) {
                snprintf(err, errlen, "--config needs a file name");
                return -2;
            }
            if (rw_config_load_file(cfg, argv[i + 1], err, errlen) < 0)
                return -1;
            remove_args(argc, argv, i, 2);
            i--;
        }
    }
    if (rw_config_load_env(cfg, err, errlen) < 0)
        return -1;
    for (int i = 1; i < *argc; i++) {
        char name[80];
        const char *a = argv[i], *value;
        int used = 2;

        if (strcmp(a, "--") == 0)
            break;
        if (strncmp(a, "--", 2) != 0)
            continue;
        const char *eq = strchr(a, '=');
        snprintf(name, sizeof name, "%.*s", eq ? (int)(eq - a - 2) : (int)strlen(a + 2), a + 2);
        bool is_role = strcmp(name, "role") == 0;
        if ((!is_role && !find_option(name)) || is_own(own, name))
            continue;           /* a subcommand's own flag */
        if (eq) {
            value = eq + 1;
            used = 1;
        } else if (i + 1 < *argc) {
            value = argv[i + 1];
        } else {
            snprintf(err, errlen, "%s needs a value", a);
            return -2;
        }
        if (is_role) {          /* --role NAME=URL */
            const char *e2 = strchr(value, '=');
            char role[80];
            if (!e2 || (size_t)(e2 - value) >= sizeof role) {
                snprintf(err, errlen, "--role takes NAME=URL");
                return -2;
            }
            snprintf(role, sizeof role, "%.*s", (int)(e2 - value), value);
            if (set_role(cfg, role, e2 + 1, err, errlen) < 0)
                return -2;
        } else if (rw_config_set(cfg, name, value, err, errlen) < 0) {
            return -2;
        }
        remove_args(argc, argv, i, used);
        i--;
    }
    return 0;
}

const char *rw_config_role_url(const struct rw_config *cfg, const char *role)
{
    for (int i = 0; i < cfg->nroles; i++)
        if (strcmp(cfg->roles[i].role, role) == 0)
            return cfg->roles[i].url;
    return NULL;
}

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
    return n < 100 ? 100 : n > 1000 ? 1000 : (int)n;
}
