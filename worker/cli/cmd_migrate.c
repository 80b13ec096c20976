/* rlsworker migrate: create or upgrade schema rlsworker. */
#include <stdio.h>

#include "worker/cli/cli.h"
#include "worker/cli/commands.h"
#include "worker/pg/migrations.h"

int rw_cmd_migrate(int argc, char **argv)
{
    struct rw_config cfg;
    char err[1200];
    PGconn *admin;
    int rc;

    if (rw_cli_wants_help(argc, argv)) {
        printf("usage: rlsworker migrate [--database-url URL] [--config FILE]\n\n"
               "Creates or upgrades schema rlsworker (version %d). Idempotent; safe when\n"
               "several processes migrate at once.\n", rw_migrations_latest());
        return RW_EXIT_OK;
    }
    if ((rc = rw_cli_config("migrate", &cfg, &argc, argv)) != 0)
        return rc;
    if (argc > 1) {
        rw_cli_error("migrate", "unexpected argument \"%s\"", argv[1]);
        rw_config_free(&cfg);
        return RW_EXIT_USAGE;
    }
    admin = rw_cli_admin("migrate", &cfg);
    rw_config_free(&cfg);
    if (!admin)
        return RW_EXIT_FAIL;
    rc = rw_migrate(admin, err, sizeof err);
    PQfinish(admin);
    if (rc < 0) {
        rw_cli_error("migrate", "%s", err);
        return RW_EXIT_FAIL;
    }
    printf("schema rlsworker is at version %d (%d migration%s applied)\n",
           rw_migrations_latest(), rc, rc == 1 ? "" : "s");
    return RW_EXIT_OK;
}
