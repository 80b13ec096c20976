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
    } else if ((*p == 'U' || *p == 'u') && p[1] == '&' && (p[2] == '\'' || p[2] == '"')) {
        /* U&'...' and U&"...": Unicode escapes, but quotes as without U& */
        tok->kind = p[2] == '"' ? RW_SQL_QUOTED_IDENT : RW_SQL_STRING;
        advance(sc, 2);
        result = scan_quoted(sc, p[2], 0, err, errlen);
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

/* ---- identifiers -------------------------------------------------------- */

static int hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Reads n hex digits at p into *cp. Returns 0, or -1 when they are not. */
static int read_hex(const char *p, const char *end, int n, unsigned long *cp)
{
    *cp = 0;
    for (int k = 0; k < n; k++) {
        int v = p + k < end ? hex_value((unsigned char)p[k]) : -1;
        if (v < 0)
            return -1;
        *cp = *cp * 16 + (unsigned long)v;
    }
    return 0;
}

struct ident_out {
    char *buf;
    size_t cap, len;
};

static void put(struct ident_out *o, unsigned char c)
{
    if (o->len + 1 < o->cap)
        o->buf[o->len++] = (char)c;
}

static void put_utf8(struct ident_out *o, unsigned long cp)
{
    if (cp < 0x80) {
        put(o, (unsigned char)cp);
    } else if (cp < 0x800) {
        put(o, (unsigned char)(0xc0 | (cp >> 6)));
        put(o, (unsigned char)(0x80 | (cp & 0x3f)));
    } else if (cp < 0x10000) {
        put(o, (unsigned char)(0xe0 | (cp >> 12)));
        put(o, (unsigned char)(0x80 | ((cp >> 6) & 0x3f)));
        put(o, (unsigned char)(0x80 | (cp & 0x3f)));
    } else {
        put(o, (unsigned char)(0xf0 | ((cp >> 18) & 0x07)));
        put(o, (unsigned char)(0x80 | ((cp >> 12) & 0x3f)));
        put(o, (unsigned char)(0x80 | ((cp >> 6) & 0x3f)));
        put(o, (unsigned char)(0x80 | (cp & 0x3f)));
    }
}

/* The body of "..." (between the quotes), "" undoubled; with `esc` (U&),
 * escapes decoded: esc esc, esc XXXX, esc + XXXXXX. An invalid escape
 * (which PostgreSQL rejects) is kept as it is. */
static void unquote(const char *p, const char *end, int esc, struct ident_out *o)
{
    unsigned long cp;

    while (p < end) {
        if (p[0] == '"' && p + 1 < end && p[1] == '"') {
            put(o, '"');
            p += 2;
        } else if (esc >= 0 && (unsigned char)p[0] == esc && p + 1 < end &&
                   (unsigned char)p[1] == esc) {
            put(o, (unsigned char)esc);
            p += 2;
        } else if (esc >= 0 && (unsigned char)p[0] == esc && p + 1 < end && p[1] == '+' &&
                   read_hex(p + 2, end, 6, &cp) == 0) {
            put_utf8(o, cp);
            p += 8;
        } else if (esc >= 0 && (unsigned char)p[0] == esc && read_hex(p + 1, end, 4, &cp) == 0) {
            put_utf8(o, cp);
            p += 5;
        } else {
            put(o, (unsigned char)*p++);
        }
    }
}

/* The escape character of a U& identifier at toks[i]: '\\', or the one
 * of a following UESCAPE 'c' (then *ntoks is 3). -1 when the UESCAPE
 * clause is malformed (PostgreSQL rejects it). */
static int uescape_char(const struct rw_sql_token *toks, int n, int i, int *ntoks)
{
    *ntoks = 1;
    if (i + 1 >= n || !rw_sql_tok_is(&toks[i + 1], "uescape"))
        return '\\';
    *ntoks = 2;
    if (i + 2 >= n || toks[i + 2].kind != RW_SQL_STRING || toks[i + 2].len != 3 ||
        toks[i + 2].start[0] != '\'')
        return -1;
    *ntoks = 3;
    return (unsigned char)toks[i + 2].start[1];
}

int rw_sql_ident(const struct rw_sql_token *toks, int n, int i, char *out, size_t outlen)
{
    const struct rw_sql_token *t = &toks[i];
    struct ident_out o = { out, outlen, 0 };
    int used = 1;

    if (outlen == 0 || i < 0 || i >= n)
        return 0;
    if (t->kind == RW_SQL_WORD) {
        for (size_t k = 0; k < t->len; k++) {
            unsigned char c = (unsigned char)t->start[k];
            put(&o, c >= 'A' && c <= 'Z' ? (unsigned char)(c - 'A' + 'a') : c);
        }
    } else if (t->kind == RW_SQL_QUOTED_IDENT && t->start[0] == '"') {
        unquote(t->start + 1, t->start + t->len - 1, -1, &o);
    } else if (t->kind == RW_SQL_QUOTED_IDENT) {   /* U&"..." */
        int esc = uescape_char(toks, n, i, &used);
        unquote(t->start + 3, t->start + t->len - 1, esc, &o);
    } else {
        return 0;
    }
    out[o.len] = '\0';
    return used;
}
