/* rlsworker doctor: the subcommand; the probes are worker/checks/doctor.c
 * and worker/checks/rolecheck.c. */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "worker/base/config.h"
#include "worker/checks/poolercheck.h"
#include "worker/checks/rolecheck.h"
#include "worker/cli/commands.h"

static void doctor_usage(FILE *out)
{
    fprintf(out,
            "usage: rlsworker doctor [--json] [options]\n\n"
            "Checks the admin connection (DATABASE_URL) and every restricted role\n"
            "(DATABASE_AUTHENTICATED_URL, role.NAME = URL) as `rlsworker run` does at\n"
            "start, plus what weakens RLS, runs a canary transaction, and checks that\n"
            "notifications arrive (a pooled connection needs DATABASE_DIRECT_URL).\n"
            "Prints PASS / INFO / WARN / FAIL per check; exits 1 on any FAIL.\n\n"
            "  --json    print the report as JSON\n"
            "  --help    this text\n\n"
            "See `rlsworker --help` for the connection options and docs/security.md.\n");
}

int rw_cmd_doctor(int argc, char **argv)
{
    struct rw_config cfg;
    struct rw_report rep;
    char err[512];
    bool json = false;
    int rc;

    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            doctor_usage(stdout);
            return RW_EXIT_OK;
        }
    rc = rw_config_from_args(&cfg, &argc, argv, err, sizeof err);
    if (rc < 0) {
        fprintf(stderr, "rlsworker doctor: %s\n", err);
        rw_config_free(&cfg);
        return rc == -2 ? RW_EXIT_USAGE : RW_EXIT_FAIL;
    }
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) {
            json = true;
            continue;
        }
        fprintf(stderr, "rlsworker doctor: unknown argument \"%s\"\n", argv[i]);
        doctor_usage(stderr);
        rw_config_free(&cfg);
        return RW_EXIT_USAGE;
    }
    rw_report_init(&rep);
    rw_rolecheck_all(&cfg, true, &rep);
    rw_check_notifications(&cfg, &rep);
    if (json) {
        if (rw_report_print_json(&rep, stdout) < 0)
            fprintf(stderr, "rlsworker doctor: could not print the report\n");
    } else {
        rw_report_print_text(&rep, stdout);
    }
    rc = rw_report_has_fail(&rep) ? RW_EXIT_FAIL : RW_EXIT_OK;
    rw_report_free(&rep);
    rw_config_free(&cfg);
    return rc;
}
