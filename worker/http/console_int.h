/* Internals shared by console.c (authentication, CSRF, files, routing, the
 * database connection) and console_api.c (the JSON API). Not a public API. */
#ifndef RW_CONSOLE_INT_H
#define RW_CONSOLE_INT_H

#include <ev.h>
#include <stdbool.h>

#include "worker/http/console.h"
#include "worker/http/intake_int.h"
#include "worker/pg/pgconn.h"

#define RW_CONSOLE_USER_MAX 128
#define RW_CONSOLE_FAIL_SLOTS 64     /* client addresses remembered for rate limiting */
#define RW_CONSOLE_PAGE_MAX 100      /* most rows one API call returns */
#define RW_CONSOLE_PAGE_DEFAULT 50
#define RW_CONSOLE_ARG_MAX 256       /* longest query-string value accepted */

enum rw_pw_kind { RW_PW_PLAIN, RW_PW_SHA256, RW_PW_PBKDF2 };

struct rw_console_fail {
    char addr[64];
    int count;                       /* failures since `since` */
    ev_tstamp since;
};

struct rw_console {
    const struct rw_intake_env *env; /* borrowed: the intake's */
    rw_pg *pg;                       /* owned admin connection */
    bool pg_ready;
    int backoff_ms;
    ev_timer retry;
    char user[RW_CONSOLE_USER_MAX + 1];
    enum rw_pw_kind kind;
    unsigned char pw[32];            /* plain: HMAC(key, pw); sha256: digest; pbkdf2: key */
    unsigned char salt[64];
    int saltlen, iter;
    unsigned char key[32];           /* random per process: CSRF tokens, the cache */
    unsigned char ok[32];            /* HMAC(key, user:pass) of the last good login */
    bool ok_set;
    char csrf[65];                   /* hex HMAC(key, "csrf:" user) */
    struct rw_console_fail fails[RW_CONSOLE_FAIL_SLOTS];
};

/* console.c */
/* Answers with a JSON error (status, code, message). */
#define rw_console_error rw_req_error
/* A query-string argument, NULL when absent, empty or too long. */
const char *rw_console_arg(struct rw_req *r, const char *name);
/* Submits one statement for r and suspends it; false when the database is
 * not connected (nothing sent; the caller answers). */
bool rw_console_query(struct rw_console *c, struct rw_req *r, const char *sql, int n,
                      const char *const *params, rw_pg_done_cb cb);
/* Answers a failed statement: 503 when the connection went, else 400 with
 * PostgreSQL's message (the console user is an administrator). */
void rw_console_db_error(struct rw_req *r, const struct rw_pg_result *res);

/* console_api.c */
void rw_console_api(struct rw_console *c, struct rw_req *r, const char *path, bool post);

#endif
