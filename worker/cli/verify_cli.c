/* `rlsworker add --token`: verify with the configured mode, keep the claims. */
#include "worker/cli/verify_cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "worker/cli/cli.h"
#include "worker/cli/commands.h"
#include "worker/auth/verifier.h"

#define TOKEN_READ_MAX 16384   /* more than the verifier's 8192-byte limit */

static char *read_stdin_token(void)
{
    char *buf = malloc(TOKEN_READ_MAX + 1);
    size_t n;

    if (!buf)
        return NULL;
    n = fread(buf, 1, TOKEN_READ_MAX, stdin);
    buf[n] = '\0';
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        buf[--n] = '\0';
    return buf;
}

int rw_verify_cli_token(const char *cmd, const struct rw_config *cfg, const char *token,
                        char **claims_out)
{
    enum rw_jwt_reason reason;
    json_t *claims = NULL;
    time_t verified_at;
    char err[512];
    char *owned = NULL;
    int rc;

    *claims_out = NULL;
    if (strcmp(token, "-") == 0 && !(token = owned = read_stdin_token())) {
        rw_cli_error(cmd, "out of memory");
        return RW_EXIT_FAIL;
    }
    rc = rw_verify_token_blocking(cfg, token, strlen(token), &reason, &claims, &verified_at,
                                  err, sizeof err);
    free(owned);
    if (rc < 0) {
        rw_cli_error(cmd, "%s", err);
        return RW_EXIT_FAIL;
    }
    if (reason != RW_JWT_OK) {
        rw_cli_error(cmd, "token rejected: %s", rw_jwt_reason_str(reason));
        return RW_EXIT_FAIL;
    }
    *claims_out = json_dumps(claims, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(claims);
    if (!*claims_out) {
        rw_cli_error(cmd, "out of memory");
        return RW_EXIT_FAIL;
    }
    if (strlen(*claims_out) > (size_t)cfg->claims_max_bytes) {
        rw_cli_error(cmd, "the token's claims are %zu bytes, more than claims_max_bytes (%d)",
                     strlen(*claims_out), cfg->claims_max_bytes);
        free(*claims_out);
        *claims_out = NULL;
        return RW_EXIT_FAIL;
    }
    return 0;
}
