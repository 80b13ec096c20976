/* A small SQL lexer for task files: just enough of PostgreSQL's lexical rules
 * to find statement ends (`;`), `:name` parameters and leading keywords
 * without being fooled by strings, quoted identifiers, dollar quotes or
 * comments. It never allocates; tokens point into the caller's text.
 *
 * What it knows: '...' with '' (and E'...' with backslash escapes), "..."
 * with "", U&'...' and U&"..." (one token each, prefix included), $$...$$
 * and $tag$...$tag$, -- comments, nested block comments,
 * `::` casts and `:=`, positional $1 parameters, words (identifiers and
 * keywords, including `$` after the first character). */
#ifndef RW_SQLSCAN_H
#define RW_SQLSCAN_H

#include <stddef.h>

enum rw_sql_tok_kind {
    RW_SQL_END,            /* end of text */
    RW_SQL_SPACE,          /* a run of white space */
    RW_SQL_LINE_COMMENT,   /* -- to the end of the line (newline excluded) */
    RW_SQL_BLOCK_COMMENT,  /* slash-star ... star-slash, nested */
    RW_SQL_STRING,         /* '...', E'...' (prefix included) */
    RW_SQL_QUOTED_IDENT,   /* "..." */
    RW_SQL_DOLLAR_STRING,  /* $$...$$ or $tag$...$tag$ */
    RW_SQL_WORD,           /* identifier or keyword */
    RW_SQL_NUMBER,         /* digits and what sticks to them (1.5e3, 0x1f) */
    RW_SQL_PARAM,          /* :name (text includes the colon) */
    RW_SQL_POSITIONAL,     /* $1 */
    RW_SQL_SEMICOLON,
    RW_SQL_OTHER           /* any other character, or `::` / `:=` */
};

struct rw_sql_token {
    enum rw_sql_tok_kind kind;
    const char *start;     /* borrowed from the scanned text */
    size_t len;
    int line;              /* line where the token starts */
};

struct rw_sql_scanner {
    const char *pos;       /* borrowed; next character to read */
    int line;
};

void rw_sql_scan_init(struct rw_sql_scanner *sc, const char *text, int first_line);

/* Reads the next token. Returns 0, or -1 for an unterminated string, quoted
 * identifier, dollar quote or comment: `err` then says which, and tok->line
 * is the line where it started. */
int rw_sql_scan_next(struct rw_sql_scanner *sc, struct rw_sql_token *tok,
                     char *err, size_t errlen) __attribute__((warn_unused_result));

/* True when the token is a word equal to `kw` (ASCII, case-insensitive). */
int rw_sql_tok_is(const struct rw_sql_token *tok, const char *kw);

/* The name an identifier at toks[i] stands for, as PostgreSQL resolves it:
 * a word case-folded (ASCII), "..." unquoted ("" undoubled), U&"..."
 * unquoted with its escapes decoded (\XXXX, \+XXXXXX, or another escape
 * character given by a following UESCAPE 'c') to UTF-8. Writes at most
 * outlen - 1 bytes and a NUL to out. Returns how many tokens it used (1,
 * or 3 with UESCAPE), or 0 when toks[i] is no identifier. */
int rw_sql_ident(const struct rw_sql_token *toks, int n, int i, char *out, size_t outlen);

#endif
