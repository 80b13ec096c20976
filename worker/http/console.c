/* The web console: authentication, CSRF, embedded files, routing and its
 * admin connection (see worker/console.h, docs/console.md). */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "worker/http/console_int.h"
#include "worker/base/log.h"

#define BACKOFF_MIN_MS 100
#define AUTH_HEADER_MAX 1024

static const char CSP[] =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/* ---- password settings ---------------------------------------------------- */

static void hmac(const unsigned char key[32], const void *data, size_t len,
                 unsigned char out[32])
{
    unsigned int n = 32;

    HMAC(EVP_sha256(), key, 32, data, len, out, &n);
}

static int unhex(const char *s, unsigned char *out, int max)
{
    size_t n = strlen(s);

    if (n == 0 || n % 2 || (int)(n / 2) > max)
        return -1;
    for (size_t i = 0; i < n / 2; i++) {
        unsigned int b;
        if (!isxdigit((unsigned char)s[2 * i]) || !isxdigit((unsigned char)s[2 * i + 1]) ||
            sscanf(s + 2 * i, "%2x", &b) != 1)
            return -1;
        out[i] = (unsigned char)b;
    }
    return (int)(n / 2);
}

/* pbkdf2-sha256:<iterations>:<salt hex>:<32-byte key hex> */
static int parse_pbkdf2(struct rw_console *c, const char *spec)
{
    char buf[300], *salt, *key, *end;
    long iter;

    if (strlen(spec) >= sizeof buf)
        return -1;
    strcpy(buf, spec);
    if (!(salt = strchr(buf, ':')) || !(key = strchr(salt + 1, ':')))
        return -1;
    *salt++ = '\0';
    *key++ = '\0';
    iter = strtol(buf, &end, 10);
    if (*end || iter < 1000 || iter > 10000000)
        return -1;
    c->iter = (int)iter;
    c->saltlen = unhex(salt, c->salt, sizeof c->salt);
    return c->saltlen >= 8 && unhex(key, c->pw, 32) == 32 ? 0 : -1;
}

static int parse_password(struct rw_console *c, const char *pw, char *err, size_t errlen)
{
    if (strncmp(pw, "sha256:", 7) == 0) {
        c->kind = RW_PW_SHA256;
        if (unhex(pw + 7, c->pw, 32) == 32)
            return 0;
        snprintf(err, errlen, "console_password sha256:<hex> needs 64 hex digits (the "
                 "SHA-256 of the password)");
        return -1;
    }
    if (strncmp(pw, "pbkdf2-sha256:", 14) == 0) {
        c->kind = RW_PW_PBKDF2;
        if (parse_pbkdf2(c, pw + 14) == 0)
            return 0;
        snprintf(err, errlen, "console_password pbkdf2-sha256 must be "
                 "pbkdf2-sha256:<iterations 1000..10000000>:<salt hex, 8+ bytes>:<64 hex "
                 "digits> (see docs/console.md)");
        return -1;
    }
    c->kind = RW_PW_PLAIN;
    hmac(c->key, pw, strlen(pw), c->pw);
    return 0;
}

/* Constant time in the given password's content: every kind ends in one
 * CRYPTO_memcmp of 32 bytes. */
static bool password_ok(const struct rw_console *c, const char *pw)
{
    unsigned char d[32];
    unsigned int n = 32;

    switch (c->kind) {
    case RW_PW_PLAIN:
        hmac(c->key, pw, strlen(pw), d);
        break;
    case RW_PW_SHA256:
        EVP_Digest(pw, strlen(pw), d, &n, EVP_sha256(), NULL);
        break;
    case RW_PW_PBKDF2:
        if (PKCS5_PBKDF2_HMAC(pw, (int)strlen(pw), c->salt, c->saltlen, c->iter,
                              EVP_sha256(), 32, d) != 1)
            return false;
        break;
    }
    return CRYPTO_memcmp(d, c->pw, 32) == 0;
}

/* ---- the database connection ------------------------------------------------ */

static void on_ready(rw_pg *pg, void *arg)
{
    struct rw_console *c = arg;

    if (c->backoff_ms)
        rw_info("console: database connection is back");
    c->pg_ready = true;
    c->backoff_ms = 0;
}

static void on_lost(rw_pg *pg, const char *why, void *arg)
{
    struct rw_console *c = arg;
    int max_ms = c->env->cfg->reconnect_max_s * 1000;

    c->pg_ready = false;
    c->backoff_ms = c->backoff_ms ? c->backoff_ms * 2 : BACKOFF_MIN_MS;
    if (c->backoff_ms > max_ms)
        c->backoff_ms = max_ms;
    rw_warn("console: lost the database: %s; reconnecting in %d ms", why, c->backoff_ms);
    ev_timer_set(&c->retry, c->backoff_ms / 1000.0, 0.);
    ev_timer_start(c->env->loop, &c->retry);
}

static void on_retry(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct rw_console *c = t->data;

    rw_pg_connect(c->pg);
}

bool rw_console_query(struct rw_console *c, struct rw_req *r, const char *sql, int n,
                      const char *const *params, rw_pg_done_cb cb)
{
    if (!c->pg_ready || rw_pg_query(c->pg, sql, n, params, cb, r) < 0)
        return false;
    r->db_wait = true;
    rw_req_suspend(r);
    return true;
}

void rw_console_db_error(struct rw_req *r, const struct rw_pg_result *res)
{
    if (res->conn_lost)
        rw_req_error(r, 503, "database_unavailable", "the database connection was lost; "
                     "retry shortly");
    else
        rw_req_error(r, 400, "refused", "%.400s", res->error ? res->error : "query failed");
}

/* ---- start and stop ---------------------------------------------------------- */

int rw_console_new(const struct rw_intake_env *env, struct rw_console **out, char *err,
                   size_t errlen)
{
    const struct rw_config *cfg = env->cfg;
    struct rw_pg_callbacks cb = {.on_ready = on_ready, .on_lost = on_lost};
    struct rw_console *c;
    unsigned char tag[32];

    *out = NULL;
    if (!cfg->console_user && !cfg->console_password)
        return 0;
    if (!cfg->console_user || !cfg->console_password || !cfg->console_user[0] ||
        strlen(cfg->console_user) > RW_CONSOLE_USER_MAX || strchr(cfg->console_user, ':')) {
        snprintf(err, errlen, "the console needs both RLSWORKER_CONSOLE_USER (1 to %d "
                 "characters, no ':') and RLSWORKER_CONSOLE_PASSWORD", RW_CONSOLE_USER_MAX);
        return -1;
    }
    if (!(c = calloc(1, sizeof *c))) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    c->env = env;
    snprintf(c->user, sizeof c->user, "%s", cfg->console_user);
    if (RAND_bytes(c->key, sizeof c->key) != 1) {
        snprintf(err, errlen, "could not get random bytes for the console's secret");
        free(c);
        return -1;
    }
    if (parse_password(c, cfg->console_password, err, errlen) < 0) {
        free(c);
        return -1;
    }
    {
        char msg[RW_CONSOLE_USER_MAX + 8];
        int n = snprintf(msg, sizeof msg, "csrf:%s", c->user);
        hmac(c->key, msg, (size_t)n, tag);
        for (int i = 0; i < 32; i++)
            snprintf(c->csrf + 2 * i, 3, "%02x", tag[i]);
    }
    cb.arg = c;
    if (!(c->pg = rw_pg_new(env->loop, cfg->database_url, &cb, cfg->connect_timeout_s))) {
        snprintf(err, errlen, "out of memory");
        free(c);
        return -1;
    }
    rw_pg_set_app_name(c->pg, "rlsworker console");
    ev_init(&c->retry, on_retry);
    c->retry.data = c;
    rw_pg_connect(c->pg);
    rw_info("console on at /ui/ for user %s (password: %s)", c->user,
            c->kind == RW_PW_PLAIN ? "plain" : c->kind == RW_PW_SHA256 ? "sha256"
                                                                      : "pbkdf2-sha256");
    *out = c;
    return 0;
}

void rw_console_free(struct rw_console **cp)
{
    struct rw_console *c = *cp;

    if (!c)
        return;
    ev_timer_stop(c->env->loop, &c->retry);
    rw_pg_free(&c->pg);
    OPENSSL_cleanse(c, sizeof *c);
    free(c);
    *cp = NULL;
}

/* ---- authentication --------------------------------------------------------- */

bool rw_console_path(const char *url)
{
    return strncmp(url, "/ui", 3) == 0 && (url[3] == '\0' || url[3] == '/');
}

static void client_addr(struct rw_req *r, char *buf, size_t n)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    const struct sockaddr *sa = ci ? ci->client_addr : NULL;

    snprintf(buf, n, "unknown");
    if (sa && sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, buf, (socklen_t)n);
    else if (sa && sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, buf, (socklen_t)n);
}

/* The client's failure slot (the oldest is reused when all are taken). */
static struct rw_console_fail *fail_slot(struct rw_console *c, const char *addr, ev_tstamp now)
{
    struct rw_console_fail *oldest = &c->fails[0];
    double window = c->env->cfg->console_failure_window_s;

    for (int i = 0; i < RW_CONSOLE_FAIL_SLOTS; i++) {
        struct rw_console_fail *f = &c->fails[i];
        if (strcmp(f->addr, addr) == 0) {
            if (now - f->since > window)
                f->count = 0;
            return f;
        }
        if (f->since < oldest->since)
            oldest = f;
    }
    snprintf(oldest->addr, sizeof oldest->addr, "%s", addr);
    oldest->count = 0;
    oldest->since = now;
    return oldest;
}

/* Splits "Basic base64(user:pass)" into buf; returns the password or NULL. */
static char *basic_credentials(const char *authz, char *buf, size_t n)
{
    unsigned char *out = (unsigned char *)buf;
    size_t len;
    int got;
    char *colon;

    if (!authz || strncasecmp(authz, "Basic ", 6) != 0)
        return NULL;
    authz += 6;
    while (*authz == ' ')
        authz++;
    len = strlen(authz);
    if (len == 0 || len % 4 || len / 4 * 3 + 1 > n)
        return NULL;
    got = EVP_DecodeBlock(out, (const unsigned char *)authz, (int)len);
    if (got < 0)
        return NULL;
    while (got > 0 && len && authz[--len] == '=')
        got--;
    out[got] = '\0';
    if (memchr(buf, '\0', (size_t)got) || !(colon = strchr(buf, ':')))
        return NULL;
    *colon = '\0';
    return colon + 1;
}

static bool credentials_ok(struct rw_console *c, const char *user, const char *pw)
{
    unsigned char u1[32], u2[32], tag[32];
    char both[AUTH_HEADER_MAX];
    bool user_ok, ok;
    int n;

    hmac(c->key, user, strlen(user), u1);
    hmac(c->key, c->user, strlen(c->user), u2);
    user_ok = CRYPTO_memcmp(u1, u2, 32) == 0;
    n = snprintf(both, sizeof both, "%s:%s", user, pw);
    hmac(c->key, both, (size_t)n, tag);
    OPENSSL_cleanse(both, sizeof both);
    if (c->ok_set && CRYPTO_memcmp(tag, c->ok, 32) == 0)
        return true;            /* the last good login again: skip the slow hash */
    ok = password_ok(c, pw) && user_ok;
    if (ok) {
        memcpy(c->ok, tag, 32);
        c->ok_set = true;
    }
    return ok;
}

static bool authenticate(struct rw_console *c, struct rw_req *r)
{
    const char *authz = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Authorization");
    ev_tstamp now = ev_now(c->env->loop);
    char addr[64], buf[AUTH_HEADER_MAX];
    struct rw_console_fail *f;
    const char *pw;

    client_addr(r, addr, sizeof addr);
    f = fail_slot(c, addr, now);
    if (f->count >= c->env->cfg->console_max_failures) {
        rw_req_error(r, 429, "too_many_failures", "too many failed logins from this address; "
                     "wait %d s", c->env->cfg->console_failure_window_s);
        return false;
    }
    pw = basic_credentials(authz, buf, sizeof buf);
    if (pw && credentials_ok(c, buf, pw)) {
        OPENSSL_cleanse(buf, sizeof buf);
        return true;
    }
    OPENSSL_cleanse(buf, sizeof buf);
    if (authz) {
        if (f->count++ == 0)
            f->since = now;
        rw_warn("console: failed login from %s (%d in %d s; blocked at %d)", addr, f->count,
                c->env->cfg->console_failure_window_s, c->env->cfg->console_max_failures);
    }
    rw_req_error(r, 401, "unauthorized", "log in to the rlsworker console");
    return false;
}

/* A POST must carry the session's CSRF token and come from this origin. */
static bool post_allowed(struct rw_console *c, struct rw_req *r)
{
    const char *tok = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "X-CSRF-Token");
    const char *origin = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Origin");
    const char *host = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Host");
    char addr[64], want[300];
    bool origin_ok = false;

    if (origin && host) {
        snprintf(want, sizeof want, "http://%s", host);
        origin_ok = strcmp(origin, want) == 0;
        snprintf(want, sizeof want, "https://%s", host);
        origin_ok = origin_ok || strcmp(origin, want) == 0;
    }
    if (origin_ok && tok && strlen(tok) == 64 && CRYPTO_memcmp(tok, c->csrf, 64) == 0)
        return true;
    client_addr(r, addr, sizeof addr);
    rw_warn("console: refused a POST from %s by user %s: %s", addr, c->user,
            !origin_ok ? "Origin missing or not this host" : "CSRF token missing or wrong");
    rw_req_error(r, 403, "forbidden", "refused: %s", !origin_ok
                 ? "the Origin header must name this console" : "reload the page (CSRF token)");
    return false;
}

void rw_console_begin(struct rw_console *c, struct rw_req *r)
{
    bool get = !strcmp(r->method, "GET") || !strcmp(r->method, "HEAD");
    bool post = !strcmp(r->method, "POST");

    if (!get && !post) {
        rw_req_error(r, 405, "method_not_allowed", "use GET or POST");
        return;
    }
    if (!authenticate(c, r))
        return;
    if (post && !post_allowed(c, r))
        return;
}

/* ---- answers ------------------------------------------------------------------ */

void rw_console_headers(const struct rw_req *r, struct MHD_Response *resp)
{
    MHD_add_response_header(resp, "Content-Security-Policy", CSP);
    MHD_add_response_header(resp, "X-Frame-Options", "DENY");
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
    MHD_add_response_header(resp, "Cross-Origin-Opener-Policy", "same-origin");
    MHD_add_response_header(resp, "Cross-Origin-Resource-Policy", "same-origin");
    if (r->status == 401)
        MHD_add_response_header(resp, "WWW-Authenticate",
                                "Basic realm=\"rlsworker console\", charset=\"UTF-8\"");
    if (r->status == 429)
        MHD_add_response_header(resp, "Retry-After", "60");
}

const char *rw_console_arg(struct rw_req *r, const char *name)
{
    const char *v = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);

    if (!v || !v[0] || strlen(v) > RW_CONSOLE_ARG_MAX)
        return NULL;
    return v;
}

static void serve_file(struct rw_req *r, const char *path)
{
    if (!strcmp(path, "/ui") || !strcmp(path, "/ui/"))
        path = "/ui/index.html";
    for (int i = 0; i < rw_console_assets_count; i++) {
        if (strcmp(rw_console_assets[i].path, path) == 0) {
            r->ctype = rw_console_assets[i].type;
            rw_req_answer(r, 200, strdup(rw_console_assets[i].data));
            return;
        }
    }
    rw_req_error(r, 404, "not_found", "no such console page");
}

void rw_console_handle(struct rw_console *c, struct rw_req *r)
{
    bool post = !strcmp(r->method, "POST");
    const char *path = r->url;

    if (strncmp(path, "/ui/api/", 8) == 0)
        rw_console_api(c, r, path + 8, post);
    else if (post)
        rw_req_error(r, 405, "method_not_allowed", "pages are read with GET");
    else
        serve_file(r, path);
}
