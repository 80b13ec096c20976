/* The bridge from CLI commands to the JWT verifier: verifies a token given
 * on the command line ("-" reads stdin) with the configured mode, and
 * returns the canonical claims text (caller frees). Returns 0 or an exit
 * code (1 rejected/misconfigured), with the reason printed. */
#ifndef RW_VERIFY_CLI_H
#define RW_VERIFY_CLI_H

#include "worker/base/config.h"

int rw_verify_cli_token(const char *cmd, const struct rw_config *cfg, const char *token,
                        char **claims_out);

#endif
