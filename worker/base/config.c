/* Setting options: defaults, config files (key = value lines, "$VAR"
 * values), the environment and flags, with their checks, and the keyed
 * options beside the table (role.NAME, webhook.SOURCE.*, http_sign.HOST).
 * The table itself, rw_options[], is config_options.c's. */
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
