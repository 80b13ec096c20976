/* Crontab lines: <schedule> <task> [?options] [JSON payload]. */
#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "scheduler/cron/cron.h"

#define MAX_TOKENS 10        /* six fields + task + options, with room to spare */

struct line_ctx {
    char *err;
    size_t errlen;
};

static int fail(struct line_ctx *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int fail(struct line_ctx *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err, c->errlen, fmt, ap);
    va_end(ap);
    return -1;
}

static bool name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n < 1 || n > RW_CRON_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && !strchr("_.:-", s[i]))
            return false;
    return true;
}

static bool role_ok(const char *s)
{
    size_t n = strlen(s);
    if (n < 1 || n > 63 || !(isalpha((unsigned char)s[0]) || s[0] == '_'))
        return false;
    for (size_t i = 1; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && !strchr("_$-", s[i]))
            return false;
    return true;
}

bool rw_cron_tz_valid(const char *tz)
{
    size_t n = strlen(tz);
    if (n < 1 || n > RW_CRON_TZ_MAX || tz[0] == '/' || strstr(tz, ".."))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)tz[i]) && !strchr("_+-/", tz[i]))
            return false;
    if (strcmp(tz, "UTC") == 0)
        return true;
    const char *dir = getenv("TZDIR");
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir && *dir ? dir : "/usr/share/zoneinfo", tz);
    return access(path, R_OK) == 0;
}

static int parse_int(const char *v, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || end == v || *end || x < lo || x > hi)
        return -1;
    *out = x;
    return 0;
}

static int set_option(struct rw_cron_entry *e, const char *key, const char *val,
                      struct line_ctx *c)
{
    long x;
    if (strcmp(key, "id") == 0) {
        if (!name_ok(val))
            return fail(c, "bad id \"%.40s\": use 1-128 of A-Z a-z 0-9 _ . : -", val);
        snprintf(e->id, sizeof e->id, "%s", val);
    } else if (strcmp(key, "fill") == 0) {
        if (rw_cron_duration_parse(val, &e->fill_s) < 0)
            return fail(c, "bad fill duration \"%.40s\" (use e.g. 30s, 10m, 1h30m, 2d)", val);
    } else if (strcmp(key, "tz") == 0) {
        if (!rw_cron_tz_valid(val))
            return fail(c, "unknown time zone \"%.64s\" (use an IANA name such as Europe/Berlin)", val);
        snprintf(e->tz, sizeof e->tz, "%s", val);
    } else if (strcmp(key, "queue") == 0) {
        if (strlen(val) > 128)
            return fail(c, "queue name is longer than 128 bytes");
        e->queue = strdup(val);
    } else if (strcmp(key, "priority") == 0) {
        if (parse_int(val, -1000000, 1000000, &x) < 0)
            return fail(c, "bad priority \"%.40s\" (an integer from -1000000 to 1000000)", val);
        e->priority = (int)x;
    } else if (strcmp(key, "max") == 0) {
        if (parse_int(val, 1, 1000, &x) < 0)
            return fail(c, "bad max \"%.40s\" (max attempts, 1 to 1000)", val);
        e->max_attempts = (int)x;
    } else if (strcmp(key, "run_as") == 0) {
        if (!role_ok(val))
            return fail(c, "bad run_as \"%.40s\" (user, system or a role name)", val);
        e->run_as = strdup(val);
    } else if (strcmp(key, "subject") == 0) {
        if (strlen(val) > 255)
            return fail(c, "subject is longer than 255 bytes");
        e->subject = strdup(val);
    } else {
        return fail(c, "unknown option \"%.40s\" (known: id, fill, tz, queue, priority, "
                    "max, run_as, subject)", key);
    }
    if ((strcmp(key, "queue") == 0 && !e->queue) || (strcmp(key, "run_as") == 0 && !e->run_as)
        || (strcmp(key, "subject") == 0 && !e->subject))
        return fail(c, "out of memory");
    return 0;
}

/* "?id=a&fill=1h": each key at most once, no empty values. */
static int parse_options(struct rw_cron_entry *e, char *opts, struct line_ctx *c)
{
    char seen[512] = "";
    char *save = NULL;
    if (opts[0] == '\0')
        return fail(c, "empty option list after \"?\"");
    for (char *kv = strtok_r(opts, "&", &save); kv; kv = strtok_r(NULL, "&", &save)) {
        char *eq = strchr(kv, '=');
        if (!eq || eq == kv || eq[1] == '\0')
            return fail(c, "bad option \"%.40s\" (expected key=value)", kv);
        *eq = '\0';
        char mark[64];
        snprintf(mark, sizeof mark, "|%.40s|", kv);
        if (strstr(seen, mark))
            return fail(c, "option \"%.40s\" is given twice", kv);
        if (strlen(seen) + strlen(mark) < sizeof seen)
            strcat(seen, mark);
        if (set_option(e, kv, eq + 1, c) < 0)
            return -1;
    }
    if (e->run_as && strcmp(e->run_as, "user") == 0 && !e->subject)
        return fail(c, "run_as=user needs subject= (the user the job runs for)");
    return 0;
}

static int parse_payload(struct rw_cron_entry *e, const char *text, struct line_ctx *c)
{
    json_error_t jerr;
    json_t *j = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
    if (!j)
        return fail(c, "bad JSON payload at column %d: %s", jerr.column, jerr.text);
    if (!json_is_object(j)) {
        json_decref(j);
        return fail(c, "payload must be a JSON object");
    }
    if (json_object_get(j, "_cron")) {
        json_decref(j);
        return fail(c, "payload key \"_cron\" is reserved (the tick time is put there)");
    }
    e->payload = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    return e->payload ? 0 : fail(c, "out of memory");
}

static int split_head(char *head, char **tok, int *n, struct line_ctx *c)
{
    char *save = NULL;
    *n = 0;
    for (char *t = strtok_r(head, " \t\r", &save); t; t = strtok_r(NULL, " \t\r", &save)) {
        if (*n == MAX_TOKENS)
            return fail(c, "too many words before the payload");
        tok[(*n)++] = t;
    }
    return 0;
}

/* Schedule tokens, task and options out of the words before the payload. */
static int parse_head(struct rw_cron_entry *e, char *head, struct line_ctx *c)
{
    char *tok[MAX_TOKENS];
    int n;
    if (split_head(head, tok, &n, c) < 0)
        return -1;
    if (n > 0 && tok[n - 1][0] == '?') {
        if (parse_options(e, tok[n - 1] + 1, c) < 0)
            return -1;
        n--;
    }
    for (int i = 0; i < n; i++)
        if (tok[i][0] == '[' || tok[i][0] == '"')
            return fail(c, "payload must be a JSON object ({...})");
    for (int i = 0; i < n; i++)
        if (tok[i][0] == '?')
            return fail(c, "options (\"?...\") must come right after the task name");
    int nsched = (n > 0 && tok[0][0] == '@') ? 1 : n - 1;
    if (nsched != 1 && nsched != 5 && nsched != 6)
        return fail(c, "expected 5 or 6 schedule fields (or an @macro) and a task name, "
                    "found %d words", n);
    if (nsched == 1 && tok[0][0] != '@')
        return fail(c, "expected 5 or 6 schedule fields (or an @macro) and a task name");
    if (n != nsched + 1)
        return fail(c, "expected a task name after the schedule");
    char spec[RW_CRON_MAX_LINE];
    spec[0] = '\0';
    for (int i = 0; i < nsched; i++) {
        strcat(spec, tok[i]);
        strcat(spec, " ");
    }
    spec[strlen(spec) - 1] = '\0';
    if (rw_cron_sched_parse(spec, &e->sched, c->err, c->errlen) < 0)
        return -1;
    if (!name_ok(tok[nsched]))
        return fail(c, "bad task name \"%.40s\": use 1-128 of A-Z a-z 0-9 _ . : -", tok[nsched]);
    snprintf(e->task, sizeof e->task, "%s", tok[nsched]);
    return 0;
}

static void entry_clear(struct rw_cron_entry *e)
{
    free(e->queue);
    free(e->run_as);
    free(e->subject);
    free(e->payload);
    memset(e, 0, sizeof *e);
}

/* One non-comment line (NUL-terminated copy, modified in place). */
static int parse_line(struct rw_cron_entry *e, char *line, struct line_ctx *c)
{
    char *brace = strchr(line, '{');
    snprintf(e->tz, sizeof e->tz, "UTC");
    if (brace) {
        if (parse_payload(e, brace, c) < 0)
            return -1;
        *brace = '\0';
    } else {
        e->payload = strdup("{}");
        if (!e->payload)
            return fail(c, "out of memory");
    }
    if (parse_head(e, line, c) < 0)
        return -1;
    if (e->id[0] == '\0')
        snprintf(e->id, sizeof e->id, "%s", e->task);
    return 0;
}

static void diag_add(struct rw_cron_diag *d, int line, const char *msg)
{
    if (d->nerr < RW_CRON_MAX_ERRORS) {
        d->err[d->nerr].line = line;
        snprintf(d->err[d->nerr].msg, sizeof d->err[d->nerr].msg, "%s", msg);
    }
    d->nerr++;
}

static bool blank_or_comment(const char *s)
{
    while (*s == ' ' || *s == '\t' || *s == '\r')
        s++;
    return *s == '\0' || *s == '#';
}

static void check_duplicates(struct rw_crontab *tab, struct rw_cron_diag *d)
{
    for (int i = 1; i < tab->n; i++) {
        for (int j = 0; j < i; j++) {
            if (strcmp(tab->entries[i].id, tab->entries[j].id) != 0)
                continue;
            char msg[240];
            snprintf(msg, sizeof msg, "duplicate id \"%.60s\" (first used on line %d; "
                     "give one of them ?id=...)", tab->entries[i].id, tab->entries[j].line);
            diag_add(d, tab->entries[i].line, msg);
            break;
        }
    }
}

/* Parses one line into the next slot of tab; records errors in d. */
static void add_line(struct rw_crontab *tab, const char *start, size_t len, int lineno,
                     struct rw_cron_diag *d)
{
    char buf[RW_CRON_MAX_LINE + 1];
    char err[240];
    struct line_ctx c = {err, sizeof err};
    if (len > RW_CRON_MAX_LINE) {
        diag_add(d, lineno, "line is longer than 8192 bytes");
        return;
    }
    memcpy(buf, start, len);
    buf[len] = '\0';
    if (strlen(buf) != len) {
        diag_add(d, lineno, "line contains a NUL byte");
        return;
    }
    if (blank_or_comment(buf))
        return;
    if (tab->n == RW_CRON_MAX_ENTRIES) {
        diag_add(d, lineno, "too many jobs in one crontab (at most 10000)");
        return;
    }
    struct rw_cron_entry *e = &tab->entries[tab->n];
    memset(e, 0, sizeof *e);
    e->line = lineno;
    if (parse_line(e, buf, &c) < 0) {
        diag_add(d, lineno, err);
        entry_clear(e);
        return;
    }
    tab->n++;
}

static int count_lines(const char *text, size_t len)
{
    int n = 1;
    for (size_t i = 0; i < len; i++)
        n += text[i] == '\n';
    return n;
}

int rw_crontab_parse(const char *text, size_t len, struct rw_crontab **out,
                     struct rw_cron_diag *d)
{
    *out = NULL;
    memset(d, 0, sizeof *d);
    if (len > RW_CRON_MAX_FILE) {
        diag_add(d, 0, "crontab is larger than 1 MiB");
        return -1;
    }
    int cap = count_lines(text, len);
    if (cap > RW_CRON_MAX_ENTRIES)
        cap = RW_CRON_MAX_ENTRIES;
    struct rw_crontab *tab = calloc(1, sizeof *tab);
    if (!tab || !(tab->entries = calloc((size_t)cap, sizeof *tab->entries))) {
        free(tab);
        diag_add(d, 0, "out of memory");
        return -1;
    }
    size_t pos = 0;
    for (int lineno = 1; pos <= len; lineno++) {
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t l = nl ? (size_t)(nl - (text + pos)) : len - pos;
        add_line(tab, text + pos, l, lineno, d);
        pos += l + 1;
    }
    check_duplicates(tab, d);
    if (d->nerr > 0) {
        rw_crontab_free(&tab);
        return -1;
    }
    *out = tab;
    return 0;
}

void rw_crontab_free(struct rw_crontab **tab)
{
    if (!tab || !*tab)
        return;
    for (int i = 0; i < (*tab)->n; i++)
        entry_clear(&(*tab)->entries[i]);
    free((*tab)->entries);
    free(*tab);
    *tab = NULL;
}
