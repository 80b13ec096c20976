/* SQL task files: the `-- key: value` header, then the body (taskbody.c).
 *
 * The header is the leading block of blank lines and `--` comment lines. In
 * it, a comment that starts with a lower-case `word:` is a key; any other
 * comment is prose. A known key written in another case is an error rather
 * than a comment, so `-- Run_as: system` cannot be silently ignored. */
#include "jobs/task/taskfile.h"
#include "jobs/task/taskbody.h"
#include "jobs/task/scopecheck.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_VALUE 256   /* longest header value */
#define MAX_DURATION_S (365LL * 86400)

struct key_def {
    const char *name;
    int (*parse)(struct rw_task *t, const char *value);   /* 0 or -1 */
    const char *allowed;
};

static int valid_task_name(const char *s, size_t n)
{
    if (n < 1 || n > 128)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && !strchr("_.:-", s[i]))
            return 0;
    return 1;
}

static int valid_role_name(const char *s)
{
    static const char *const reserved[] = { "user", "system", "public", "none",
        "current_user", "session_user", "current_role", NULL };
    size_t n = strlen(s);

    if (n < 1 || n > 63 || !(isalpha((unsigned char)s[0]) || s[0] == '_'))
        return 0;
    for (size_t i = 1; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '_' && s[i] != '$')
            return 0;
    for (int i = 0; reserved[i]; i++)
        if (strcasecmp(s, reserved[i]) == 0)
            return 0;
    return strncasecmp(s, "pg_", 3) != 0;
}

/* "30s", "5m", "1h", "2d" or plain seconds, into seconds. */
static int parse_duration(const char *v, long long min_s, long long max_s, int *out)
{
    long long n = 0, unit = 1;
    const char *p = v;

    if (!isdigit((unsigned char)*p))
        return -1;
    for (; isdigit((unsigned char)*p); p++)
        if ((n = n * 10 + (*p - '0')) > MAX_DURATION_S)
            return -1;
    switch (*p) {
    case '\0': break;
    case 's': unit = 1; break;
    case 'm': unit = 60; break;
    case 'h': unit = 3600; break;
    case 'd': unit = 86400; break;
    default: return -1;
    }
    if (*p && p[1])
        return -1;
    if (n * unit < min_s || n * unit > max_s)
        return -1;
    *out = (int)(n * unit);
    return 0;
}

static int parse_task(struct rw_task *t, const char *v)
{
    if (!valid_task_name(v, strlen(v)))
        return -1;
    free(t->name);
    return (t->name = strdup(v)) ? 0 : -1;
}

static int parse_run_as(struct rw_task *t, const char *v)
{
    if (strcmp(v, "user") == 0) {
        t->run_as = RW_RUN_AS_USER;
    } else if (strcmp(v, "system") == 0) {
        t->run_as = RW_RUN_AS_SYSTEM;
    } else if (valid_role_name(v)) {
        t->run_as = RW_RUN_AS_ROLE;
        if (!(t->role = strdup(v)))
            return -1;
    } else {
        return -1;
    }
    return 0;
}

static int parse_scope(struct rw_task *t, const char *v)
{
    if (strcmp(v, "subject") == 0)
        t->scope = RW_SCOPE_SUBJECT;
    else if (strcmp(v, "global") == 0)
        t->scope = RW_SCOPE_GLOBAL;
    else
        return -1;
    return 0;
}

static int parse_max_attempts(struct rw_task *t, const char *v)
{
    char *end;
    long n;

    errno = 0;
    n = isdigit((unsigned char)v[0]) ? strtol(v, &end, 10) : 0;
    if (n < 1 || n > 1000 || errno || *end)
        return -1;
    t->max_attempts = (int)n;
    return 0;
}

static int parse_timeout(struct rw_task *t, const char *v)
{
    return parse_duration(v, 1, 86400, &t->timeout_s);
}

static int parse_claims_max_age(struct rw_task *t, const char *v)
{
    return parse_duration(v, 1, 30 * 86400, &t->claims_max_age_s);
}

static int parse_chain(struct rw_task *t, const char *v)
{
    if (strcmp(v, "allow") != 0 && strcmp(v, "deny") != 0)
        return -1;
    t->chain = strcmp(v, "allow") == 0;
    return 0;
}

static int parse_chained(struct rw_task *t, const char *v)
{
    if (strcmp(v, "allow") != 0 && strcmp(v, "deny") != 0)
        return -1;
    t->chained = strcmp(v, "allow") == 0;
    return 0;
}

static int parse_enqueue(struct rw_task *t, const char *v)
{
    if (strcmp(v, "user") != 0 && strcmp(v, "admin") != 0)
        return -1;
    t->http_enqueue = strcmp(v, "user") == 0;
    return 0;
}

static int parse_group(struct rw_task *t, const char *v)
{
    if (strcmp(v, "on") != 0 && strcmp(v, "off") != 0)
        return -1;
    t->no_group = strcmp(v, "off") == 0;
    return 0;
}

enum { K_TASK, K_RUN_AS, K_SCOPE, K_MAX_ATTEMPTS, K_TIMEOUT, K_CLAIMS_MAX_AGE,
       K_CHAIN, K_CHAINED, K_ENQUEUE, K_GROUP, NKEYS };

static const struct key_def keys[NKEYS] = {
    [K_TASK] = { "task", parse_task,
        "letters, digits, _ . : and -, 1 to 128 characters" },
    [K_RUN_AS] = { "run_as", parse_run_as,
        "user, system, or a restricted role name (a letter or _, then letters, "
        "digits, _ or $, up to 63 characters; not pg_*, public or none)" },
    [K_SCOPE] = { "scope", parse_scope, "subject or global" },
    [K_MAX_ATTEMPTS] = { "max_attempts", parse_max_attempts,
        "a whole number from 1 to 1000" },
    [K_TIMEOUT] = { "timeout", parse_timeout,
        "a duration from 1s to 24h: seconds, or a number with s, m, h or d (30s, 5m, 1h)" },
    [K_CLAIMS_MAX_AGE] = { "claims_max_age", parse_claims_max_age,
        "a duration from 1s to 30d: seconds, or a number with s, m, h or d (15m, 1h)" },
    [K_CHAIN] = { "chain", parse_chain, "allow or deny" },
    [K_CHAINED] = { "chained", parse_chained,
        "allow (a running job on the same role may chain to it) or deny" },
    [K_ENQUEUE] = { "enqueue", parse_enqueue,
        "user (POST /v1/jobs may enqueue it) or admin (only trusted paths)" },
    [K_GROUP] = { "group", parse_group,
        "on (it may share a transaction with other jobs of its role) or off" },
};

#define KNOWN_KEYS "task, run_as, scope, max_attempts, timeout, claims_max_age, chain, " \
                   "chained, enqueue, group"

struct header_ctx {
    const char *path;
    struct rw_task *task;
    int key_line[NKEYS];   /* line where each key was given, 0 if not */
    char *err;
    size_t errlen;
};

static int herr(struct header_ctx *h, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int herr(struct header_ctx *h, int line, const char *fmt, ...)
{
    int n = snprintf(h->err, h->errlen, "%s:%d: ", h->path, line);
    va_list ap;

    if (n < 0 || (size_t)n >= h->errlen)
        return -1;
    va_start(ap, fmt);
    vsnprintf(h->err + n, h->errlen - (size_t)n, fmt, ap);
    va_end(ap);
    return -1;
}

static int find_key(const char *k, size_t n, int ignore_case)
{
    for (int i = 0; i < NKEYS; i++)
        if (strlen(keys[i].name) == n &&
            (ignore_case ? strncasecmp(k, keys[i].name, n) : strncmp(k, keys[i].name, n)) == 0)
            return i;
    return -1;
}

static int is_key_char(char c)
{
    return isalnum((unsigned char)c) || c == '_' || c == '-';
}

static int all_lower(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (isupper((unsigned char)s[i]))
            return 0;
    return 1;
}

/* Sets one key from "value" (s..e, untrimmed). */
static int set_key(struct header_ctx *h, int k, const char *s, const char *e, int line)
{
    char value[MAX_VALUE];

    while (s < e && (*s == ' ' || *s == '\t'))
        s++;
    while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
        e--;
    if (h->key_line[k])
        return herr(h, line, "duplicate header key %s (first given at line %d); give each key once",
                    keys[k].name, h->key_line[k]);
    if (e == s)
        return herr(h, line, "empty value for %s; allowed: %s", keys[k].name, keys[k].allowed);
    if ((size_t)(e - s) >= sizeof value)
        return herr(h, line, "value for %s is longer than %d characters; allowed: %s",
                    keys[k].name, MAX_VALUE - 1, keys[k].allowed);
    memcpy(value, s, (size_t)(e - s));
    value[e - s] = '\0';
    if (keys[k].parse(h->task, value) < 0)
        return herr(h, line, "bad value \"%.64s\" for %s; allowed: %s", value, keys[k].name,
                    keys[k].allowed);
    h->key_line[k] = line;
    return 0;
}

/* One header comment line, s..e, starting with "--". Prose is skipped. */
static int header_line(struct header_ctx *h, const char *s, const char *e, int line)
{
    const char *k = s + 2, *p;
    int idx;

    while (k < e && (*k == ' ' || *k == '\t'))
        k++;
    for (p = k; p < e && is_key_char(*p); p++)
        ;
    if (p == k || p == e || *p != ':' || !isalpha((unsigned char)*k))
        return 0;
    idx = find_key(k, (size_t)(p - k), 0);
    if (idx < 0 && (idx = find_key(k, (size_t)(p - k), 1)) >= 0)
        return herr(h, line, "header key \"%.*s\" must be written in lower case: %s",
                    (int)(p - k), k, keys[idx].name);
    if (idx >= 0)
        return set_key(h, idx, p + 1, e, line);
    if ((p + 1 == e || p[1] == ' ' || p[1] == '\t') && all_lower(k, (size_t)(p - k)))
        return herr(h, line, "unknown header key \"%.*s\"; known keys: %s (a prose comment "
                    "in the header must not start with a lower-case \"word:\")",
                    (int)(p - k) > 64 ? 64 : (int)(p - k), k, KNOWN_KEYS);
    return 0;
}

/* Reads the header; returns where the body starts (and its line), or NULL. */
static const char *parse_header(struct header_ctx *h, const char *text, int *first_line)
{
    const char *p = text;
    int line = 1;

    for (;;) {
        const char *e = strchr(p, '\n'), *q = p;

        if (!e)
            e = p + strlen(p);
        while (q < e && (*q == ' ' || *q == '\t' || *q == '\r'))
            q++;
        if (q < e && !(q[0] == '-' && q + 1 < e && q[1] == '-'))
            break;
        if (q < e && header_line(h, q, e > q && e[-1] == '\r' ? e - 1 : e, line) < 0)
            return NULL;
        if (!*e) {
            p = e;
            break;
        }
        p = e + 1;
        line++;
    }
    *first_line = line;
    return p;
}

static int check_header(struct header_ctx *h)
{
    static const int claims_keys[] = { K_CLAIMS_MAX_AGE, K_CHAIN, K_CHAINED, K_ENQUEUE };
    const struct rw_task *t = h->task;

    if (t->run_as != RW_RUN_AS_SYSTEM) {
        if (t->scope == RW_SCOPE_GLOBAL)
            return herr(h, h->key_line[K_SCOPE], "scope: global is only for run_as: system "
                        "tasks; user and role tasks see the rows their claims and row-level "
                        "security allow (use scope: subject, or no scope)");
        return 0;
    }
    if (t->scope == RW_SCOPE_NONE)
        return herr(h, h->key_line[K_RUN_AS], "run_as: system needs a declared scope; add "
                    "`-- scope: subject` (every statement uses :subject) or `-- scope: global` "
                    "(explicitly all rows)");
    for (size_t i = 0; i < sizeof claims_keys / sizeof claims_keys[0]; i++)
        if (h->key_line[claims_keys[i]])
            return herr(h, h->key_line[claims_keys[i]], "%s applies only to user and role "
                        "tasks, which run with claims; remove it from this system task",
                        keys[claims_keys[i]].name);
    return 0;
}

/* Default task name: the file name without its directory and ".sql". */
static int default_name(struct header_ctx *h)
{
    const char *base = strrchr(h->path, '/');
    size_t n;

    base = base ? base + 1 : h->path;
    n = strlen(base);
    if (n > 4 && strcmp(base + n - 4, ".sql") == 0)
        n -= 4;
    if (!valid_task_name(base, n))
        return herr(h, 1, "the file name \"%.64s\" is not a valid task name; rename the file "
                    "or add `-- task: NAME` (%s)", base, keys[K_TASK].allowed);
    return (h->task->name = strndup(base, n)) ? 0 : herr(h, 1, "out of memory");
}

/* Every statement uses :subject; in a system task (no row-level security)
 * each statement's rows must also be bounded by `column = :subject`
 * (jobs/scopecheck.h says exactly what that proves). */
static int check_subject_scope(struct header_ctx *h)
{
    const struct rw_task *t = h->task;
    char why[300];
    int line;

    for (int i = 0; i < t->nstmts; i++) {
        int uses = 0;

        for (int k = 0; k < t->stmts[i].nparams; k++)
            uses |= strcmp(t->stmts[i].param_names[k], "subject") == 0;
        if (!uses)
            return herr(h, t->stmts[i].line, "statement does not use :subject, but the task "
                        "declares scope: subject; filter it by the job's subject "
                        "(e.g. `where user_id = :subject`) or declare scope: global");
        if (t->run_as == RW_RUN_AS_SYSTEM &&
            rw_scope_check_stmt(&t->stmts[i], &line, why, sizeof why) < 0)
            return herr(h, line, "statement is not bounded by :subject, but the task declares "
                        "scope: subject: %s; write `where <column> = :subject and ...` "
                        "(see docs/security.md) or declare scope: global", why);
    }
    return 0;
}

int rw_task_parse(const char *path, const char *text, struct rw_task **out,
                  char *err, size_t errlen)
{
    struct header_ctx h = { .path = path, .err = err, .errlen = errlen };
    const char *body;
    int first_line;

    *out = NULL;
    if (strlen(text) > RW_TASK_MAX_BYTES)
        return herr(&h, 1, "the task file is larger than %d bytes; split it", RW_TASK_MAX_BYTES);
    if (!(h.task = calloc(1, sizeof *h.task)) || !(h.task->path = strdup(path))) {
        free(h.task);
        return herr(&h, 1, "out of memory");
    }
    if (!(body = parse_header(&h, text, &first_line)) || check_header(&h) < 0 ||
        (!h.task->name && default_name(&h) < 0) ||
        rw_task_parse_body(path, body, first_line, &h.task->stmts, &h.task->nstmts,
                           err, errlen) < 0 ||
        (h.task->scope == RW_SCOPE_SUBJECT && check_subject_scope(&h) < 0)) {
        rw_task_free(&h.task);
        return -1;
    }
    for (int i = 0; i < h.task->nstmts; i++)
        h.task->stmts[i].task = h.task->name;
    h.task->role_line = h.key_line[K_RUN_AS];
    *out = h.task;
    return 0;
}

void rw_task_free(struct rw_task **task)
{
    struct rw_task *t = task ? *task : NULL;

    if (!t)
        return;
    free(t->name);
    free(t->path);
    free(t->role);
    rw_task_free_stmts(t->stmts, t->nstmts);
    free(t);
    *task = NULL;
}
