/* The body of a task file: split into statements, :name -> $n, refusals. */
#include "jobs/task/taskbody.h"
#include "jobs/task/sqlscan.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One statement being built. `sql` grows as tokens are copied; `toks` holds
 * its significant tokens (borrowed from the body text) for the refusals. */
struct stmt_builder {
    char *sql;
    size_t len, cap;
    char **names;
    int nnames;
    struct rw_sql_token *toks;
    int ntoks, captoks;
    int line;              /* 0 until the first significant token */
};

struct body_ctx {
    const char *path;
    char *err;
    size_t errlen;
    struct rw_sql_stmt *stmts;
    int nstmts;
    struct stmt_builder b;
};

static int fail(struct body_ctx *c, int line, const char *what)
{
    snprintf(c->err, c->errlen, "%s:%d: %s", c->path, line, what);
    return -1;
}

static int oom(struct body_ctx *c, int line)
{
    return fail(c, line, "out of memory while parsing the task");
}

static int append(struct body_ctx *c, const char *s, size_t n, int line)
{
    struct stmt_builder *b = &c->b;

    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        char *p;

        while (cap < b->len + n + 1)
            cap *= 2;
        if (!(p = realloc(b->sql, cap)))
            return oom(c, line);
        b->sql = p;
        b->cap = cap;
    }
    memcpy(b->sql + b->len, s, n);
    b->len += n;
    b->sql[b->len] = '\0';
    return 0;
}

static int keep_token(struct body_ctx *c, const struct rw_sql_token *t)
{
    struct stmt_builder *b = &c->b;

    if (b->ntoks == b->captoks) {
        int cap = b->captoks ? b->captoks * 2 : 32;
        struct rw_sql_token *p = realloc(b->toks, (size_t)cap * sizeof *p);

        if (!p)
            return oom(c, t->line);
        b->toks = p;
        b->captoks = cap;
    }
    b->toks[b->ntoks++] = *t;
    if (!b->line)
        b->line = t->line;
    return append(c, t->start, t->len, t->line);
}

static int ends_word(char ch)
{
    unsigned char u = (unsigned char)ch;

    return isalnum(u) || u == '_' || u == '$' || u >= 0x80;
}

/* :name -> $k, the same k for the same name within the statement. */
static int add_param(struct body_ctx *c, const struct rw_sql_token *t)
{
    struct stmt_builder *b = &c->b;
    size_t nlen = t->len - 1;
    char dollar[16];
    int k;

    if (nlen > RW_TASK_MAX_PARAM_NAME)
        return fail(c, t->line, "parameter name is longer than 63 characters; shorten it");
    for (k = 0; k < b->nnames; k++)
        if (strlen(b->names[k]) == nlen && memcmp(b->names[k], t->start + 1, nlen) == 0)
            break;
    if (k == b->nnames) {
        char **p;

        if (b->nnames == RW_TASK_MAX_PARAMS)
            return fail(c, t->line, "more than 256 distinct parameters in one statement; "
                                    "pass a JSON object and use :payload instead");
        if (!(p = realloc(b->names, (size_t)(b->nnames + 1) * sizeof *p)))
            return oom(c, t->line);
        b->names = p;
        if (!(b->names[k] = strndup(t->start + 1, nlen)))
            return oom(c, t->line);
        b->nnames++;
    }
    if (keep_token(c, t) < 0)
        return -1;
    b->len -= t->len;   /* keep_token copied ":name"; put "$k" there instead */
    /* After an identifier character "$k" would become part of it (x$1). */
    snprintf(dollar, sizeof dollar, "%s$%d",
             b->len && ends_word(b->sql[b->len - 1]) ? " " : "", k + 1);
    return append(c, dollar, strlen(dollar), t->line);
}

static void builder_reset(struct stmt_builder *b)
{
    free(b->sql);
    for (int i = 0; i < b->nnames; i++)
        free(b->names[i]);
    free(b->names);
    free(b->toks);
    memset(b, 0, sizeof *b);
}

/* Moves the built statement into c->stmts (after the refusal check). */
static int finish_stmt(struct body_ctx *c)
{
    struct stmt_builder *b = &c->b;
    struct rw_sql_stmt *s;
    const char *why;

    if (!b->line)
        return 0;   /* only spaces and comments since the last ';' */
    if ((why = rw_task_refusal(b->toks, b->ntoks)) != NULL)
        return fail(c, b->line, why);
    if (c->nstmts == RW_TASK_MAX_STMTS)
        return fail(c, b->line, "more than 1000 statements in one task; split the task");
    s = realloc(c->stmts, (size_t)(c->nstmts + 1) * sizeof *s);
    if (!s)
        return oom(c, b->line);
    c->stmts = s;
    while (b->len > 0 && strchr(" \t\r\n\f\v", b->sql[b->len - 1]))
        b->sql[--b->len] = '\0';
    s[c->nstmts++] = (struct rw_sql_stmt){ .sql = b->sql, .nparams = b->nnames,
                                           .param_names = b->names, .line = b->line };
    free(b->toks);
    memset(b, 0, sizeof *b);
    return 0;
}

static int on_token(struct body_ctx *c, const struct rw_sql_token *t)
{
    switch (t->kind) {
    case RW_SQL_SEMICOLON:
        return finish_stmt(c);
    case RW_SQL_SPACE:
        return c->b.line ? append(c, t->start, t->len, t->line) : 0;
    case RW_SQL_LINE_COMMENT:
        return 0;   /* its newline follows as a space token */
    case RW_SQL_BLOCK_COMMENT:
        return c->b.line ? append(c, " ", 1, t->line) : 0;
    case RW_SQL_POSITIONAL:
        return fail(c, t->line, "positional parameters like $1 are not allowed; "
                                "use :name parameters, which bind from the job's payload");
    case RW_SQL_PARAM:
        return add_param(c, t);
    default:
        return keep_token(c, t);
    }
}

int rw_task_parse_body(const char *path, const char *body, int first_line,
                       struct rw_sql_stmt **stmts, int *nstmts, char *err, size_t errlen)
{
    struct body_ctx c = { .path = path, .err = err, .errlen = errlen };
    struct rw_sql_scanner sc;
    struct rw_sql_token t;
    char why[200];

    rw_sql_scan_init(&sc, body, first_line);
    do {
        if (rw_sql_scan_next(&sc, &t, why, sizeof why) < 0) {
            fail(&c, t.line, why);
            goto failed;
        }
        if (t.kind == RW_SQL_END ? finish_stmt(&c) < 0 : on_token(&c, &t) < 0)
            goto failed;
    } while (t.kind != RW_SQL_END);
    if (c.nstmts == 0) {
        fail(&c, first_line, "no SQL statement after the header; a task needs at least one");
        goto failed;
    }
    *stmts = c.stmts;
    *nstmts = c.nstmts;
    return 0;
failed:
    builder_reset(&c.b);
    rw_task_free_stmts(c.stmts, c.nstmts);
    return -1;
}

void rw_task_free_stmts(struct rw_sql_stmt *stmts, int nstmts)
{
    for (int i = 0; i < nstmts; i++) {
        free(stmts[i].sql);
        for (int k = 0; k < stmts[i].nparams; k++)
            free(stmts[i].param_names[k]);
        free(stmts[i].param_names);
    }
    free(stmts);
}
