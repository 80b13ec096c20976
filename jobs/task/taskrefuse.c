/* Statements a task may not contain. A job's statements run inside the one
 * transaction the worker opens for it, on a connection that the next job
 * reuses; so anything that ends that transaction, cannot run inside one, or
 * leaves state in the session is refused when the task is loaded, and so is
 * touching the claims, which only the worker sets. This is a guard against
 * mistakes, not a sandbox: the security boundary is the role the task runs
 * as and row-level security. */
#include "jobs/task/taskbody.h"
#include "jobs/task/sqlscan.h"

#include <ctype.h>
#include <stddef.h>
#include <string.h>
#include <strings.h>

#define MAX_WORDS 3

struct leading_rule {
    const char *words[MAX_WORDS];   /* leading keywords; unused slots NULL */
    const char *why;
};

static const char WHY_TXN_START[] =
    "a task runs inside the one transaction the worker opens for each job; "
    "remove the statement";
static const char WHY_TXN_END[] =
    "the worker commits the job's transaction together with its completion, "
    "or rolls it back on error; remove the statement (raise an error to fail the job)";
static const char WHY_NO_TXN_BLOCK[] =
    "it cannot run inside a transaction block, and every task runs in one; "
    "run it outside rlsworker";
static const char WHY_SESSION[] =
    "it changes the session of a pooled connection that later jobs reuse; "
    "use SET LOCAL, which ends with the job's transaction";

static const struct leading_rule leading_rules[] = {
    { { "begin" }, WHY_TXN_START },
    { { "start", "transaction" }, WHY_TXN_START },
    { { "commit" }, WHY_TXN_END },
    { { "end" }, WHY_TXN_END },
    { { "rollback" }, WHY_TXN_END },
    { { "abort" }, WHY_TXN_END },
    { { "prepare" },
      "prepared statements and prepared transactions outlive the job on a pooled "
      "connection; write the statement itself" },
    { { "deallocate" },
      "it would drop the worker's prepared statements on a pooled connection; remove it" },
    { { "reset" }, WHY_SESSION },
    { { "discard" }, WHY_SESSION },
    { { "load" }, "LOAD changes a pooled connection's session; load libraries in "
                  "the server configuration instead" },
    { { "listen" }, "a LISTEN outlives the job on a pooled connection; remove it" },
    { { "unlisten" }, "the worker's pooled connections hold no LISTEN of the task's; "
                      "remove it" },
    { { "copy" }, "the worker does not speak the COPY protocol; use INSERT ... SELECT, "
                  "with the data in the job's payload" },
    { { "vacuum" }, WHY_NO_TXN_BLOCK },
    { { "create", "database" }, WHY_NO_TXN_BLOCK },
    { { "drop", "database" }, WHY_NO_TXN_BLOCK },
    { { "create", "tablespace" }, WHY_NO_TXN_BLOCK },
    { { "drop", "tablespace" }, WHY_NO_TXN_BLOCK },
    { { "alter", "system" }, WHY_NO_TXN_BLOCK },
};

/* True when toks[i..] are the words of `words` (NULL-terminated or full). */
static int words_at(const struct rw_sql_token *toks, int n, int i,
                    const char *const *words, int nwords)
{
    for (int k = 0; k < nwords && words[k]; k++, i++)
        if (i >= n || !rw_sql_tok_is(&toks[i], words[k]))
            return 0;
    return 1;
}

static int has_words(const struct rw_sql_token *toks, int n, const char *w1, const char *w2,
                     const char *w3)
{
    const char *words[3] = { w1, w2, w3 };

    for (int i = 0; i < n; i++)
        if (words_at(toks, n, i, words, 3))
            return 1;
    return 0;
}

static int is_temp(const struct rw_sql_token *t)
{
    return rw_sql_tok_is(t, "temp") || rw_sql_tok_is(t, "temporary");
}

/* CREATE [OR REPLACE] [GLOBAL|LOCAL] TEMP ... and SELECT ... INTO TEMP. */
static const char *check_temp(const struct rw_sql_token *toks, int n)
{
    for (int i = 0; i + 1 < n; i++) {
        int j = i + 1;

        if (!rw_sql_tok_is(&toks[i], "create") && !rw_sql_tok_is(&toks[i], "into"))
            continue;
        if (j + 1 < n && rw_sql_tok_is(&toks[j], "or") && rw_sql_tok_is(&toks[j + 1], "replace"))
            j += 2;
        if (j < n && (rw_sql_tok_is(&toks[j], "global") || rw_sql_tok_is(&toks[j], "local")))
            j++;
        if (j < n && is_temp(&toks[j]) && !has_words(toks, n, "on", "commit", "drop"))
            return "a temporary object outlives the job on a pooled connection; "
                   "use CREATE TEMP TABLE ... ON COMMIT DROP";
    }
    return NULL;
}

/* Copies the setting name of `SET LOCAL name ...` (toks from i) into out
 * as the server looks it up: each part a normalized identifier (quotes
 * removed, U& escapes decoded), parts joined by '.', lower-cased (setting
 * names are case-insensitive, quoted or not). */
static void setting_name(const struct rw_sql_token *toks, int n, int i, char *out, size_t outlen)
{
    size_t len = 0;
    char part[128];
    int used;

    out[0] = '\0';
    while (i < n && (used = rw_sql_ident(toks, n, i, part, sizeof part)) > 0) {
        if (toks[i].kind == RW_SQL_WORD && strcmp(part, "to") == 0)
            break;
        for (size_t k = 0; part[k] && len + 1 < outlen; k++)
            out[len++] = (char)tolower((unsigned char)part[k]);
        i += used;
        if (i >= n || toks[i].len != 1 || toks[i].start[0] != '.' || len + 1 >= outlen)
            break;
        out[len++] = '.';
        i++;
    }
    out[len] = '\0';
}

static const char *check_set(const struct rw_sql_token *toks, int n)
{
    static const char why_role[] =
        "changing the role inside a task would undo its run_as; declare "
        "`-- run_as:` instead";
    char name[128];
    int i = 1;

    if (n > 1 && (rw_sql_tok_is(&toks[1], "constraints") || rw_sql_tok_is(&toks[1], "transaction")))
        return NULL;   /* both last only for the current transaction */
    if (n > 1 && rw_sql_tok_is(&toks[1], "local"))
        i = 2;
    if (i < n && (rw_sql_tok_is(&toks[i], "role") ||
                  (rw_sql_tok_is(&toks[i], "session") && i + 1 < n &&
                   rw_sql_tok_is(&toks[i + 1], "authorization"))))
        return why_role;
    if (i == 1)
        return WHY_SESSION;
    setting_name(toks, n, i, name, sizeof name);
    if (strcmp(name, "role") == 0 || strcmp(name, "session_authorization") == 0)
        return why_role;
    if (strncmp(name, "request.", 8) == 0)
        return "request.* settings carry the job's claims, which only the worker sets; "
               "read them with current_setting() instead";
    if (strncmp(name, "rlsworker.", 10) == 0)
        return "rlsworker.* settings (such as the chain token) are set by the worker only; "
               "remove the statement";
    return NULL;
}

/* Case-insensitive search of `needle` in the first `len` bytes of `hay`. */
static int contains_ci(const char *hay, size_t len, const char *needle)
{
    size_t nlen = strlen(needle);

    for (size_t i = 0; i + nlen <= len; i++)
        if (strncasecmp(hay + i, needle, nlen) == 0)
            return 1;
    return 0;
}

/* set_config as a name in any spelling (case, quotes, U& escapes), or its
 * plain text inside a string or dollar-quoted body (a DO block). */
static const char *check_set_config(const struct rw_sql_token *toks, int n)
{
    char name[64];

    for (int i = 0; i < n; i++) {
        int quoted = toks[i].kind == RW_SQL_STRING || toks[i].kind == RW_SQL_DOLLAR_STRING;

        if ((rw_sql_ident(toks, n, i, name, sizeof name) > 0 &&
             strcasecmp(name, "set_config") == 0) ||
            (quoted && contains_ci(toks[i].start, toks[i].len, "set_config")))
            return "set_config() is refused in tasks: the job's claims are set by the "
                   "worker only; use SET LOCAL for other settings";
    }
    return NULL;
}

static const char *check_leading(const struct rw_sql_token *toks, int n)
{
    size_t nrules = sizeof leading_rules / sizeof leading_rules[0];

    for (size_t r = 0; r < nrules; r++)
        if (words_at(toks, n, 0, leading_rules[r].words, MAX_WORDS))
            return leading_rules[r].why;
    if (rw_sql_tok_is(&toks[0], "set"))
        return check_set(toks, n);
    if (rw_sql_tok_is(&toks[0], "declare") && has_words(toks, n, "with", "hold", NULL))
        return "a WITH HOLD cursor outlives the job's transaction on a pooled "
               "connection; declare it WITHOUT HOLD";
    if ((rw_sql_tok_is(&toks[0], "create") || rw_sql_tok_is(&toks[0], "drop") ||
         rw_sql_tok_is(&toks[0], "reindex")) &&
        has_words(toks, n, "concurrently", NULL, NULL))
        return WHY_NO_TXN_BLOCK;
    return NULL;
}

const char *rw_task_refusal(const struct rw_sql_token *toks, int ntoks)
{
    const char *why;

    if (ntoks <= 0)
        return NULL;
    if ((why = check_set_config(toks, ntoks)) != NULL)
        return why;
    if ((why = check_leading(toks, ntoks)) != NULL)
        return why;
    return check_temp(toks, ntoks);
}
