/* placeholder until the JWT verifier lands */
#include "worker/verify_cli.h"
#include "worker/cli.h"

int rw_verify_cli_token(const char *cmd, const struct rw_config *cfg, const char *token,
                        char **claims_out)
{
    (void)cfg; (void)token;
    *claims_out = NULL;
    rw_cli_error(cmd, "token verification is not available in this build");
    return 1;
}
