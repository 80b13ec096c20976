/* The report of the role checks: a bounded list of checks, printed as text
 * or JSON (rolecheck.h). */
#include "worker/checks/rolecheck.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

void rw_report_init(struct rw_report *rep)
{
    memset(rep, 0, sizeof *rep);
}

void rw_report_free(struct rw_report *rep)
{
    for (int i = 0; i < rep->n; i++)
        free(rep->checks[i].message);
    free(rep->checks);
    memset(rep, 0, sizeof *rep);
}

static bool report_grow(struct rw_report *rep)
{
    if (rep->n < rep->cap)
        return true;
    if (rep->cap >= RW_REPORT_MAX_CHECKS)
        return false;
    int cap = rep->cap ? rep->cap * 2 : 32;
    struct rw_check *c = realloc(rep->checks, (size_t)cap * sizeof *c);
    if (!c)
        return false;
    rep->checks = c;
    rep->cap = cap;
    return true;
}

void rw_report_add(struct rw_report *rep, const char *id, enum rw_check_status st,
                   const char *role, const char *fmt, ...)
{
    char msg[RW_CHECK_MSG_MAX];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    char *copy = report_grow(rep) ? strdup(msg) : NULL;
    if (!copy) {
        rep->dropped++;
        if (st == RW_CHECK_FAIL)
            rep->dropped_fail = true;
        return;
    }
    struct rw_check *c = &rep->checks[rep->n++];
    snprintf(c->id, sizeof c->id, "%s", id);
    snprintf(c->role, sizeof c->role, "%s", role ? role : "");
    c->config[0] = '\0';
    c->status = st;
    c->message = copy;
}

void rw_report_label(struct rw_report *rep, int first, const char *source)
{
    for (int i = first; i < rep->n; i++)
        snprintf(rep->checks[i].config, sizeof rep->checks[i].config, "%s", source);
}

int rw_report_count(const struct rw_report *rep, enum rw_check_status st)
{
    int n = 0;
    for (int i = 0; i < rep->n; i++)
        n += rep->checks[i].status == st;
    return n;
}

bool rw_report_has_fail(const struct rw_report *rep)
{
    return rep->dropped_fail || rw_report_count(rep, RW_CHECK_FAIL) > 0;
}

const char *rw_check_status_name(enum rw_check_status st)
{
    switch (st) {
    case RW_CHECK_PASS: return "PASS";
    case RW_CHECK_INFO: return "INFO";
    case RW_CHECK_WARN: return "WARN";
    case RW_CHECK_FAIL: return "FAIL";
    }
    return "?";
}

void rw_report_print_text(const struct rw_report *rep, FILE *out)
{
    for (int i = 0; i < rep->n; i++) {
        const struct rw_check *c = &rep->checks[i];
        fprintf(out, "%s  %-30s %s%s%s%s%s%s%s\n", rw_check_status_name(c->status), c->id,
                c->config[0] ? "[" : "", c->config, c->config[0] ? "] " : "",
                c->role[0] ? "role \"" : "", c->role, c->role[0] ? "\": " : "", c->message);
    }
    if (rep->dropped)
        fprintf(out, "(%d more checks not shown)\n", rep->dropped);
    fprintf(out, "\n%d passed, %d info, %d warnings, %d failed\n",
            rw_report_count(rep, RW_CHECK_PASS), rw_report_count(rep, RW_CHECK_INFO),
            rw_report_count(rep, RW_CHECK_WARN), rw_report_count(rep, RW_CHECK_FAIL));
}

static json_t *report_json(const struct rw_report *rep)
{
    json_t *checks = json_array();
    json_t *root = json_pack("{s:b, s:{s:i, s:i, s:i, s:i, s:i}}",
                             "ok", !rw_report_has_fail(rep), "summary",
                             "pass", rw_report_count(rep, RW_CHECK_PASS),
                             "info", rw_report_count(rep, RW_CHECK_INFO),
                             "warn", rw_report_count(rep, RW_CHECK_WARN),
                             "fail", rw_report_count(rep, RW_CHECK_FAIL),
                             "dropped", rep->dropped);
    if (!checks || !root || json_object_set_new(root, "checks", checks) < 0) {
        json_decref(root);
        return NULL;
    }
    for (int i = 0; i < rep->n; i++) {
        const struct rw_check *c = &rep->checks[i];
        json_t *o = json_pack("{s:s, s:s, s:s?, s:s?, s:s}", "id", c->id,
                              "status", rw_check_status_name(c->status),
                              "role", c->role[0] ? c->role : NULL,
                              "config", c->config[0] ? c->config : NULL, "message", c->message);
        if (!o || json_array_append_new(checks, o) < 0) {
            json_decref(root);
            return NULL;
        }
    }
    return root;
}

int rw_report_print_json(const struct rw_report *rep, FILE *out)
{
    json_t *root = report_json(rep);
    int result = -1;

    if (root && json_dumpf(root, out, JSON_INDENT(2)) == 0 && fputc('\n', out) != EOF)
        result = 0;
    json_decref(root);
    return result;
}
