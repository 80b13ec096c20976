/* rlsworker token verify JWT|- [--json] [--engine libjwt|openssl]
 *
 * Verifies tokens with the current configuration (JWKS_URL or JWT_SECRET,
 * JWT_ISSUER, JWT_AUDIENCE and the --jwt-* / --jwks-* flags). A token given
 * in argv is visible to other local users in `ps`; pass `-` to read it from
 * standard input instead. On standard input every line is one token (the
 * newline is not part of it; empty lines are skipped), all verified by the
 * same verifier, so the JWKS cache and its rate limit carry across lines.
 *
 * Output: the claims as JSON on stdout (one compact line per token when
 * reading stdin), or "rlsworker: token rejected: <reason>" on stderr. With
 * --json, one line per token on stdout: {"valid":true,"claims":{...},
 * "verified_at":N} or {"valid":false,"reason":"..."}. Exit 0 when every
 * token is valid, 1 when one is not or the configuration is unusable, 2 on
 * bad usage. The token itself is never printed.
 *
 * --engine picks who checks the signature behind the same strict checks:
 * libjwt (the default, what the worker and the intake use) or rlsworker's
 * own OpenSSL code. Both must give every token the same verdict; the
 * differential test (tests/integration/test_token_engines.py) holds them
 * to it, and an operator can cross-check a token the same way. */
#include <openssl/crypto.h>
#include <stdio.h>
#include <string.h>

#include "worker/cli/commands.h"
#include "worker/base/config.h"
#include "worker/auth/verifier.h"

struct token_cmd {
    struct rw_verifier *v;
    bool json;
    bool multi;                 /* tokens from stdin: one compact line each */
};

static void usage(FILE *out)
{
    fprintf(out,
            "usage: rlsworker token verify JWT|- [--json] [--engine libjwt|openssl]\n\n"
            "Verifies a JWT with the configured JWKS_URL (RS256/ES256) or JWT_SECRET\n"
            "(HS256), plus JWT_ISSUER and JWT_AUDIENCE when set. Prints the claims and\n"
            "exits 0, or prints the reason and exits 1.\n\n"
            "  -       read tokens from standard input, one per line (a token on the\n"
            "          command line is visible to other users in ps)\n"
            "  --json  one JSON object per token on stdout\n"
            "  --engine libjwt|openssl\n"
            "          who checks the signature behind the same strict checks:\n"
            "          libjwt (default, as the worker does) or rlsworker's own\n"
            "          OpenSSL code, to cross-check a verdict\n");
}

static void report(struct token_cmd *tc, enum rw_jwt_reason r, json_t *claims, time_t at)
{
    if (tc->json) {
        json_t *out = r == RW_JWT_OK
            ? json_pack("{s:b, s:O, s:I}", "valid", 1, "claims", claims, "verified_at",
                        (json_int_t)at)
            : json_pack("{s:b, s:s}", "valid", 0, "reason", rw_jwt_reason_str(r));
        char *s = out ? json_dumps(out, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
        printf("%s\n", s ? s : "{\"valid\":false,\"reason\":\"internal error\"}");
        free(s);
        json_decref(out);
    } else if (r == RW_JWT_OK) {
        size_t flags = JSON_SORT_KEYS | (tc->multi ? JSON_COMPACT : JSON_INDENT(2));
        char *s = json_dumps(claims, flags);
        printf("%s\n", s ? s : "{}");
        free(s);
    }
    if (r != RW_JWT_OK)
        fprintf(stderr, "rlsworker: token rejected: %s\n", rw_jwt_reason_str(r));
    fflush(stdout);
}

static bool verify_one(struct token_cmd *tc, const char *token, size_t len)
{
    json_t *claims = NULL;
    time_t at = 0;
    enum rw_jwt_reason r = rw_verifier_verify_sync(tc->v, token, len, &claims, &at);

    report(tc, r, claims, at);
    json_decref(claims);
    return r == RW_JWT_OK;
}

/* Reads one line of at most cap bytes into buf; longer lines are consumed
 * and reported as cap + 1 bytes (refused as too large, unread). Returns the
 * length, or -1 at end of input. */
static long read_line(FILE *in, char *buf, size_t cap)
{
    size_t n = 0;
    int ch;
    bool any = false;

    while ((ch = getc(in)) != EOF) {
        any = true;
        if (ch == '\n')
            break;
        if (n < cap)
            buf[n] = (char)ch;
        if (n <= cap)
            n++;
    }
    return any ? (long)n : -1;
}

static int verify_stdin(struct token_cmd *tc)
{
    static char buf[RW_JWT_MAX_TOKEN + 1];
    long n;
    int count = 0;
    bool all_ok = true;

    tc->multi = true;
    while ((n = read_line(stdin, buf, RW_JWT_MAX_TOKEN)) >= 0) {
        if (n == 0)
            continue;
        count++;
        if (!verify_one(tc, buf, (size_t)n))
            all_ok = false;
    }
    OPENSSL_cleanse(buf, sizeof buf);
    if (count == 0) {
        fprintf(stderr, "rlsworker token verify: no token on standard input\n");
        return RW_EXIT_USAGE;
    }
    return all_ok ? RW_EXIT_OK : RW_EXIT_FAIL;
}

/* Runs `token verify` once the config is loaded; argv holds only our args. */
static int token_verify(const struct rw_config *cfg, const char *token, bool json,
                        enum rw_jwt_engine engine)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct rw_http_client *http = loop ? rw_http_client_new(loop) : NULL;
    struct token_cmd tc = {.json = json};
    char err[256];
    int result = RW_EXIT_FAIL;

    if (!http) {
        fprintf(stderr, "rlsworker: could not set up an event loop and HTTP client\n");
    } else if (!(tc.v = rw_verifier_new(loop, http, cfg, err, sizeof err))) {
        fprintf(stderr, "rlsworker: %s\n", err);
    } else {
        rw_verifier_set_engine(tc.v, engine);
        if (strcmp(token, "-") == 0)
            result = verify_stdin(&tc);
        else
            result = verify_one(&tc, token, strlen(token)) ? RW_EXIT_OK : RW_EXIT_FAIL;
    }
    rw_verifier_free(&tc.v);
    rw_http_client_free(&http);
    if (loop)
        ev_loop_destroy(loop);
    return result;
}

static int parse_engine(const char *s, enum rw_jwt_engine *out)
{
    if (s && strcmp(s, "libjwt") == 0)
        *out = RW_JWT_ENGINE_LIBJWT;
    else if (s && strcmp(s, "openssl") == 0)
        *out = RW_JWT_ENGINE_OPENSSL;
    else {
        fprintf(stderr, "rlsworker token: --engine takes \"libjwt\" or \"openssl\", "
                "not \"%s\"\n", s ? s : "");
        return -1;
    }
    return 0;
}

int rw_cmd_token(int argc, char **argv)
{
    struct rw_config cfg;
    char err[512];
    const char *token = NULL;
    bool json = false;
    enum rw_jwt_engine engine = RW_JWT_ENGINE_LIBJWT;
    int rc = rw_config_from_args(&cfg, &argc, argv, err, sizeof err);
    int result;

    if (rc < 0) {
        fprintf(stderr, "rlsworker token: %s\n", err);
        rw_config_free(&cfg);
        return rc == -2 ? RW_EXIT_USAGE : RW_EXIT_FAIL;
    }
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            rw_config_free(&cfg);
            return RW_EXIT_OK;
        }
    }
    int npos = 0;
    const char *pos[3] = {0};
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0)
            json = true;
        else if (strcmp(argv[i], "--engine") == 0) {
            if (parse_engine(i + 1 < argc ? argv[++i] : NULL, &engine) < 0) {
                npos = -1;
                break;
            }
        } else if (argv[i][0] == '-' && argv[i][1] == '-') {
            fprintf(stderr, "rlsworker token: unknown option \"%s\"\n", argv[i]);
            npos = -1;
            break;
        } else if (npos < 3)
            pos[npos++] = argv[i];
        else
            npos = 3;
    }
    if (npos != 2 || strcmp(pos[0], "verify") != 0) {
        usage(stderr);
        rw_config_free(&cfg);
        return RW_EXIT_USAGE;
    }
    token = pos[1];
    result = token_verify(&cfg, token, json, engine);
    rw_config_free(&cfg);
    return result;
}
