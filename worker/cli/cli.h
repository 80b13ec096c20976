/* Small helpers shared by the subcommands. */
#ifndef RW_CLI_H
#define RW_CLI_H

#include <libpq-fe.h>
#include <stdbool.h>

#include "worker/base/config.h"

/* True when argv holds --help or -h. */
bool rw_cli_wants_help(int argc, char **argv);

/* Loads the configuration for a subcommand (see rw_config_from_args),
 * printing any error. Returns 0, or the exit code to return (1 or 2); on
 * error cfg is already freed. */
int rw_cli_config(const char *cmd, struct rw_config *cfg, int *argc, char **argv);

/* Connects to DATABASE_URL (blocking), printing a clear error on failure. */
PGconn *rw_cli_admin(const char *cmd, const struct rw_config *cfg);

/* Prints "rlsworker CMD: MESSAGE" to stderr. */
void rw_cli_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Takes the value of flag argv[*i] (either "--flag value" or "--flag=value").
 * Returns NULL (with an error printed) when it is missing. */
const char *rw_cli_value(const char *cmd, int argc, char **argv, int *i);

#endif
