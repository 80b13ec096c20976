#include "worker/cli/cli.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "worker/cli/commands.h"
#include "worker/base/log.h"
#include "worker/pg/pgconn.h"

bool rw_cli_wants_help(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            return true;
    return false;
}

/* One line, escaped like a log line: the message may carry a server's text. */
void rw_cli_error(const char *cmd, const char *fmt, ...)
{
    char msg[4096], safe[8192];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    rw_log_escape(safe, sizeof safe, msg);
    fprintf(stderr, "rlsworker %s: %s\n", cmd, safe);
}

/* Subcommand flags that share a name with a config option but mean something
 * else there; the config parser leaves them to the subcommand. The other
 * shared names (run --tasks, migrate --database-url, ...) are the global
 * options themselves (tests/integration/test_entry_paths.py checks every
 * subcommand's --help against the global options). */
static const struct {
    const char *cmd;
    const char *const flags[4];
} own_flags[] = {
    {"add", {"max-attempts", NULL}},   /* the job's max attempts, not the worker default */
};

static const char *const *own_flags_of(const char *cmd)
{
    for (size_t i = 0; i < sizeof own_flags / sizeof own_flags[0]; i++)
        if (strcmp(own_flags[i].cmd, cmd) == 0)
            return own_flags[i].flags;
    return NULL;
}

int rw_cli_config(const char *cmd, struct rw_config *cfg, int *argc, char **argv)
{
    char err[600];
    enum rw_log_level level;
    int rc = rw_config_from_args_except(cfg, argc, argv, own_flags_of(cmd), err, sizeof err);

    if (rc < 0) {
        rw_cli_error(cmd, "%s", err);
        rw_config_free(cfg);
        return rc == -2 ? RW_EXIT_USAGE : RW_EXIT_FAIL;
    }
    if (!rw_log_parse_level(cfg->log_level, &level)) {
        rw_cli_error(cmd, "log_level must be debug, info, warning or error, got \"%s\"",
                     cfg->log_level);
        rw_config_free(cfg);
        return RW_EXIT_USAGE;
    }
    rw_log_set_level(level);
    return 0;
}

PGconn *rw_cli_admin(const char *cmd, const struct rw_config *cfg)
{
    char err[700];
    PGconn *c;

    if (!cfg->database_url) {
        rw_cli_error(cmd, "DATABASE_URL is not set: export it (the admin role's "
                     "connection string) or pass --database-url");
        return NULL;
    }
    c = rw_pg_connect_blocking(cfg->database_url, "DATABASE_URL", err, sizeof err);
    if (!c)
        rw_cli_error(cmd, "%s", err);
    return c;
}

const char *rw_cli_value(const char *cmd, int argc, char **argv, int *i)
{
    const char *eq = strchr(argv[*i], '=');

    if (eq)
        return eq + 1;
    if (*i + 1 >= argc) {
        rw_cli_error(cmd, "%s needs a value", argv[*i]);
        return NULL;
    }
    return argv[++*i];
}
