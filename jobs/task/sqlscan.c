#include "jobs/task/sqlscan.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

static int is_ident_start(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_' || c >= 0x80;
}

static int is_ident_char(unsigned char c)
{
    return is_ident_start(c) || (c >= '0' && c <= '9');
}

/* Inside a word `$` is an ordinary character (a$b is one identifier). */
static int is_word_char(unsigned char c)
{
    return is_ident_char(c) || c == '$';
}

/* Parameter names are plain ASCII: [A-Za-z_][A-Za-z0-9_]*. */
static int is_param_char(unsigned char c)
{
    return c < 0x80 && is_ident_char(c);
}

static int is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static int is_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/* Moves the scanner past n characters, counting newlines. */
static void advance(struct rw_sql_scanner *sc, size_t n)
{
    for (size_t i = 0; i < n && sc->pos[0]; i++, sc->pos++)
        if (sc->pos[0] == '\n')
            sc->line++;
}

static int unterminated(char *err, size_t errlen, const char *what)
{
    snprintf(err, errlen, "unterminated %s starting here; close it before the end of the file", what);
    return -1;
}

/* '...' with '' doubling; with backslash escapes too when `escapes`. The
 * scanner stands on the opening quote. */
static int scan_quoted(struct rw_sql_scanner *sc, char quote, int escapes,
                       char *err, size_t errlen)
{
    const char *p = sc->pos + 1;

    for (;;) {
        if (!*p)
            return unterminated(err, errlen,
                                quote == '"' ? "quoted identifier" : "quoted string");
        if (escapes && *p == '\\' && p[1]) {
            p += 2;
        } else if (*p == quote && p[1] == quote) {
            p += 2;
        } else if (*p == quote) {
            advance(sc, (size_t)(p + 1 - sc->pos));
            return 0;
        } else {
            p++;
        }
    }
}

static int scan_block_comment(struct rw_sql_scanner *sc, char *err, size_t errlen)
{
    const char *p = sc->pos + 2;
    int depth = 1;

    while (depth > 0) {
        if (!*p)
            return unterminated(err, errlen, "/* comment");
        if (p[0] == '/' && p[1] == '*') {
            depth++;
            p += 2;
        } else if (p[0] == '*' && p[1] == '/') {
            depth--;
            p += 2;
        } else {
            p++;
        }
    }
    advance(sc, (size_t)(p - sc->pos));
    return 0;
}

/* Length of a dollar-quote opening tag (`$$` or `$tag$`) at p, or 0. */
static size_t dollar_tag_len(const char *p)
{
    size_t n = 1;

    if (p[1] == '$')
        return 2;
    if (!is_ident_start((unsigned char)p[1]))
        return 0;
    while (is_ident_char((unsigned char)p[n]))
        n++;
    return p[n] == '$' ? n + 1 : 0;
}

static int scan_dollar_string(struct rw_sql_scanner *sc, size_t taglen,
                              char *err, size_t errlen)
{
    const char *body = sc->pos + taglen;
    const char *p = body;

    for (;;) {
        p = strchr(p, '$');
        if (!p)
            return unterminated(err, errlen, "dollar-quoted string");
        if (strncmp(p, sc->pos, taglen) == 0)
            break;
        p++;
    }
    advance(sc, (size_t)(p + taglen - sc->pos));
    return 0;
}

static size_t span(const char *p, int (*pred)(unsigned char))
{
    size_t n = 0;

    while (p[n] && pred((unsigned char)p[n]))
        n++;
    return n;
}

static int is_number_char(unsigned char c)
{
    return is_ident_char(c) || c == '.';
}

/* Tokens that start with ':' or '$'. Returns the kind, sets *len. */
static enum rw_sql_tok_kind scan_colon(const char *p, size_t *len)
{
    if (p[1] == ':' || p[1] == '=') {
        *len = 2;
        return RW_SQL_OTHER;
    }
    if (is_ident_start((unsigned char)p[1]) && (unsigned char)p[1] < 0x80) {
        *len = 1 + span(p + 1, is_param_char);
        return RW_SQL_PARAM;
    }
    *len = 1;
    return RW_SQL_OTHER;
}

static int scan_special(struct rw_sql_scanner *sc, struct rw_sql_token *tok,
                        char *err, size_t errlen)
{
    const char *p = sc->pos;
    size_t n = 1;

    if (p[0] == '\'' || p[0] == '"') {
        tok->kind = p[0] == '\'' ? RW_SQL_STRING : RW_SQL_QUOTED_IDENT;
        return scan_quoted(sc, p[0], 0, err, errlen);
    }
    if (p[0] == '-' && p[1] == '-') {
        tok->kind = RW_SQL_LINE_COMMENT;
        n = strcspn(p, "\n");
    } else if (p[0] == '/' && p[1] == '*') {
        tok->kind = RW_SQL_BLOCK_COMMENT;
        return scan_block_comment(sc, err, errlen);
    } else if (p[0] == '$' && is_digit((unsigned char)p[1])) {
        tok->kind = RW_SQL_POSITIONAL;
        n = 1 + span(p + 1, is_digit);
    } else if (p[0] == '$' && (n = dollar_tag_len(p)) > 0) {
        tok->kind = RW_SQL_DOLLAR_STRING;
        return scan_dollar_string(sc, n, err, errlen);
    } else if (p[0] == ':') {
        tok->kind = scan_colon(p, &n);
    } else {
        tok->kind = p[0] == ';' ? RW_SQL_SEMICOLON : RW_SQL_OTHER;
        n = 1;
    }
    advance(sc, n);
    return 0;
}

void rw_sql_scan_init(struct rw_sql_scanner *sc, const char *text, int first_line)
{
    sc->pos = text;
    sc->line = first_line;
}

int rw_sql_scan_next(struct rw_sql_scanner *sc, struct rw_sql_token *tok,
                     char *err, size_t errlen)
{
    const char *p = sc->pos;
    int result = 0;

    tok->start = p;
    tok->line = sc->line;
    if (!*p) {
        tok->kind = RW_SQL_END;
    } else if (is_space((unsigned char)*p)) {
        tok->kind = RW_SQL_SPACE;
        advance(sc, span(p, is_space));
    } else if ((*p == 'E' || *p == 'e') && p[1] == '\'') {
        tok->kind = RW_SQL_STRING;
        advance(sc, 1);
        result = scan_quoted(sc, '\'', 1, err, errlen);
    } else if (is_ident_start((unsigned char)*p)) {
        tok->kind = RW_SQL_WORD;
        advance(sc, 1 + span(p + 1, is_word_char));
    } else if (is_digit((unsigned char)*p)) {
        tok->kind = RW_SQL_NUMBER;
        advance(sc, span(p, is_number_char));
    } else {
        result = scan_special(sc, tok, err, errlen);
    }
    tok->len = (size_t)(sc->pos - tok->start);
    return result;
}

int rw_sql_tok_is(const struct rw_sql_token *tok, const char *kw)
{
    size_t n = strlen(kw);

    return tok->kind == RW_SQL_WORD && tok->len == n && strncasecmp(tok->start, kw, n) == 0;
}
