/* The `scope: subject` check on a statement's tokens (jobs/scopecheck.h). */
#include "jobs/task/scopecheck.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jobs/task/sqlscan.h"

struct tok {
    struct rw_sql_token t;
    int depth;            /* parentheses around it */
};

struct toks {
    const struct rw_sql_stmt *st;
    struct tok *v;
    int n;
};

static bool is_kw(const struct tok *k, const char *kw) { return rw_sql_tok_is(&k->t, kw); }

static bool is_char(const struct tok *k, char c)
{
    return k->t.kind == RW_SQL_OTHER && k->t.len == 1 && k->t.start[0] == c;
}

static bool is_subject(const struct toks *ts, const struct tok *k)
{
    int n;

    if (k->t.kind != RW_SQL_POSITIONAL)
        return false;
    n = atoi(k->t.start + 1);
    return n >= 1 && n <= ts->st->nparams && strcmp(ts->st->param_names[n - 1], "subject") == 0;
}

static int load(struct toks *ts, char *why, size_t whylen)
{
    struct rw_sql_scanner sc;
    struct rw_sql_token t;
    size_t cap = strlen(ts->st->sql) + 1;
    int depth = 0;

    if (!(ts->v = calloc(cap, sizeof *ts->v))) {
        snprintf(why, whylen, "out of memory");
        return -1;
    }
    rw_sql_scan_init(&sc, ts->st->sql, ts->st->line);
    for (;;) {
        if (rw_sql_scan_next(&sc, &t, why, whylen) < 0)
            return -1;
        if (t.kind == RW_SQL_END || t.kind == RW_SQL_SEMICOLON)
            return 0;
        if (t.kind == RW_SQL_SPACE || t.kind == RW_SQL_LINE_COMMENT ||
            t.kind == RW_SQL_BLOCK_COMMENT)
            continue;
        if (t.kind == RW_SQL_OTHER && t.len == 1 && t.start[0] == ')' && depth > 0)
            depth--;
        ts->v[ts->n].t = t;
        ts->v[ts->n++].depth = depth;
        if (t.kind == RW_SQL_OTHER && t.len == 1 && t.start[0] == '(')
            depth++;
    }
}

/* A possibly qualified column: ident (. ident)*; returns tokens used or 0. */
static int column_at(const struct tok *k, int n)
{
    static const char *const not_columns[] = {"null", "true", "false", "not", "current_user",
                                              "session_user", "user", "current_role"};
    int i = 0;

    for (;;) {
        if (i >= n || (k[i].t.kind != RW_SQL_WORD && k[i].t.kind != RW_SQL_QUOTED_IDENT))
            return 0;
        for (size_t w = 0; w < sizeof not_columns / sizeof not_columns[0]; w++)
            if (is_kw(&k[i], not_columns[w]))
                return 0;
        i++;
        if (i < n && is_char(&k[i], '.'))
            i++;
        else
            return i;
    }
}

/* :subject with an optional ::type (type: a possibly qualified name). */
static int subject_at(const struct toks *ts, const struct tok *k, int n)
{
    int i, c;

    if (n < 1 || !is_subject(ts, &k[0]))
        return 0;
    i = 1;
    if (i < n && k[i].t.kind == RW_SQL_OTHER && k[i].t.len == 2 && !memcmp(k[i].t.start, "::", 2)) {
        if (!(c = column_at(k + i + 1, n - i - 1)))
            return 0;
        i += 1 + c;
    }
    return i;
}

/* The conjunct k[0..n) is exactly `column = :subject` or `:subject = column`. */
static bool is_subject_filter(const struct toks *ts, const struct tok *k, int n)
{
    int a = column_at(k, n), b;

    if (a && a < n && is_char(&k[a], '='))
        return (b = subject_at(ts, k + a + 1, n - a - 1)) && a + 1 + b == n;
    a = subject_at(ts, k, n);
    if (a && a < n && is_char(&k[a], '='))
        return (b = column_at(k + a + 1, n - a - 1)) && a + 1 + b == n;
    return false;
}

static bool ends_where(const struct tok *k)
{
    static const char *const kws[] = {"group", "having", "window", "order", "limit", "offset",
                                      "fetch", "for", "returning", "on", "union", "intersect",
                                      "except", "do"};
    for (size_t i = 0; i < sizeof kws / sizeof kws[0]; i++)
        if (is_kw(k, kws[i]))
            return true;
    return false;
}

/* Checks the WHERE clause starting after k[w] at depth d; sets *end. */
static int check_where(const struct toks *ts, int w, int stop, int d, int *end,
                       int *line, char *why, size_t whylen)
{
    int start = w + 1, i;
    bool found = false, between = false;

    for (i = w + 1; i <= stop; i++) {
        const struct tok *k = i < stop ? &ts->v[i] : NULL;
        if (k && k->depth > d)
            continue;
        if (k && is_kw(k, "or")) {
            *line = k->t.line;
            snprintf(why, whylen, "its WHERE has OR at the top level, so :subject does not "
                     "bound every row; put the OR inside parentheses next to "
                     "`AND column = :subject`");
            return -1;
        }
        if (k && is_kw(k, "between"))
            between = true;
        if (k && is_kw(k, "and") && between) {
            between = false;
            continue;
        }
        if (!k || is_kw(k, "and") || ends_where(k) || k->depth < d) {
            found |= is_subject_filter(ts, &ts->v[start], i - start);
            start = i + 1;
            if (!k || !is_kw(k, "and"))
                break;
        }
    }
    *end = i;
    if (found)
        return 0;
    *line = ts->v[w].t.line;
    snprintf(why, whylen, "its WHERE has no `column = :subject` joined with AND at the top "
             "level (a :subject only in a cast, IS NOT NULL, OR or a function call does not "
             "bound the rows)");
    return -1;
}

/* One query block: tokens [b, stop) at depth d. */
static int check_block(const struct toks *ts, int b, int stop, int d, int *line,
                       char *why, size_t whylen)
{
    bool insert = false, select = false, do_update = false, uses = false, seg_where = false;
    bool branches = false;            /* a UNION/INTERSECT/EXCEPT was seen */
    const struct tok *main = NULL;   /* the first SELECT/INSERT/UPDATE/DELETE/VALUES */
    int i;

    for (i = b; i < stop; i++) {
        const struct tok *k = &ts->v[i];
        uses |= is_subject(ts, k);
        if (k->depth != d)
            continue;
        if (!main && (is_kw(k, "select") || is_kw(k, "insert") || is_kw(k, "update") ||
                      is_kw(k, "delete") || is_kw(k, "values")))
            main = k;
        else
            select |= is_kw(k, "select");
        do_update |= is_kw(k, "do") && i + 1 < stop && is_kw(&ts->v[i + 1], "update");
    }
    insert = main && is_kw(main, "insert");
    if (insert && !select && !do_update) {
        if (uses)
            return 0;
        *line = ts->v[b].t.line;
        snprintf(why, whylen, "it does not use :subject");
        return -1;
    }
    for (i = b; i < stop; i++) {
        const struct tok *k = &ts->v[i];
        if (k->depth != d)
            continue;
        if (is_kw(k, "union") || is_kw(k, "intersect") || is_kw(k, "except")) {
            branches = true;
            if (!seg_where)
                goto no_where;
            seg_where = false;
        } else if (is_kw(k, "where")) {
            int end;
            if (check_where(ts, i, stop, d, &end, line, why, whylen) < 0)
                return -1;
            seg_where = true;
            i = end - 1;
        }
    }
    if (seg_where)
        return 0;
no_where:
    *line = ts->v[i < stop ? i : b].t.line;
    snprintf(why, whylen, "%s has no WHERE that compares a column with :subject",
             branches ? "a branch of its UNION/INTERSECT/EXCEPT" : "it");
    return -1;
}

/* The statement, and every ( INSERT|UPDATE|DELETE ... ) nested in it. */
int rw_scope_check_stmt(const struct rw_sql_stmt *st, int *line, char *why, size_t whylen)
{
    struct toks ts = { .st = st };
    int rc = -1;

    *line = st->line;
    if (load(&ts, why, whylen) < 0)
        goto out;
    if (ts.n == 0) {
        snprintf(why, whylen, "it is empty");
        goto out;
    }
    if (check_block(&ts, 0, ts.n, 0, line, why, whylen) < 0)
        goto out;
    for (int i = 0; i + 1 < ts.n; i++) {
        const struct tok *k = &ts.v[i + 1];
        int stop = i + 1;
        if (!is_char(&ts.v[i], '(') ||
            !(is_kw(k, "insert") || is_kw(k, "update") || is_kw(k, "delete")))
            continue;
        while (stop < ts.n && ts.v[stop].depth > ts.v[i].depth)
            stop++;
        if (check_block(&ts, i + 1, stop, k->depth, line, why, whylen) < 0)
            goto out;
    }
    rc = 0;
out:
    free(ts.v);
    return rc;
}
