/* The web console at /ui/ of `rlsworker run --listen` (docs/console.md).
 *
 * On only when console_user and console_password are both set. Every /ui/
 * request needs HTTP basic authentication (constant-time comparison; failed
 * attempts are logged and limited per client address); state-changing
 * requests are POSTs with a CSRF token and a matching Origin. The pages are
 * compiled into the binary (cmake/embed_assets.cmake) and served with a
 * strict Content-Security-Policy; the data comes from a JSON API under
 * /ui/api/, read on the console's own admin connection (never blocking the
 * loop). The intake routes /ui requests here (worker/intake.c). */
#ifndef RW_CONSOLE_H
#define RW_CONSOLE_H

#include <microhttpd.h>
#include <stdbool.h>
#include <stddef.h>

struct rw_intake_env;
struct rw_req;
struct rw_console;

/* One embedded file (generated table). */
struct rw_console_asset {
    const char *path;     /* "/ui/app.js" */
    const char *type;     /* Content-Type */
    const char *data;     /* NUL-terminated text */
    size_t len;
};
extern const struct rw_console_asset rw_console_assets[];
extern const int rw_console_assets_count;

/* Starts the console when its credentials are configured: *out is the new
 * console (owned by the caller) or NULL when the console is off. Returns -1
 * with err set when the settings are unusable (e.g. a malformed hash). */
int rw_console_new(const struct rw_intake_env *env, struct rw_console **out, char *err,
                   size_t errlen)
    __attribute__((warn_unused_result));
/* Drops the database connection (pending ops without their callbacks). */
void rw_console_free(struct rw_console **c);

/* Is url "/ui" or under "/ui/"? */
bool rw_console_path(const char *url);
/* First call of a /ui request: method and authentication; may answer. */
void rw_console_begin(struct rw_console *c, struct rw_req *r);
/* Last call (body read): serves the file or the API call; may suspend. */
void rw_console_handle(struct rw_console *c, struct rw_req *r);
/* Security headers of every /ui answer (and the challenge on 401). */
void rw_console_headers(const struct rw_req *r, struct MHD_Response *resp);

#endif
