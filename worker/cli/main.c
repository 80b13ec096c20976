/* rlsworker: a background job worker for PostgreSQL applications that guard
 * their data with Row-Level Security. main() only dispatches; each
 * subcommand lives in its own file and returns the exit code. */
#include <stdio.h>
#include <string.h>

#include "worker/cli/commands.h"
#include "worker/base/config.h"

static const struct {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *doc;
} commands[] = {
    {"migrate", rw_cmd_migrate, "create or upgrade schema rlsworker"},
    {"run", rw_cmd_run, "claim and run jobs (--once drains what is ready, then exits)"},
    {"add", rw_cmd_add, "enqueue a job"},
    {"jobs", rw_cmd_jobs, "list, show, retry, cancel jobs; queue stats"},
    {"doctor", rw_cmd_doctor, "check roles and RLS set-up"},
    {"cron", rw_cmd_cron, "validate a crontab and print next fire times"},
    {"token", rw_cmd_token, "verify a JWT with the current configuration"},
    {"tasks", rw_cmd_tasks, "print a TypeScript module for the tasks (typegen)"},
};

static void usage(FILE *out)
{
    fprintf(out, "usage: rlsworker COMMAND [options]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].doc);
    fprintf(out, "\noptions accepted by every command (flag > environment > config file > default):\n");
    rw_config_print_options(out);
    fprintf(out, "\nrun \"rlsworker COMMAND --help\" for a command's own options\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return RW_EXIT_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return RW_EXIT_OK;
    }
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0) {
        printf("rlsworker %s\n", RW_VERSION);
        return RW_EXIT_OK;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        if (strcmp(argv[1], commands[i].name) != 0)
            continue;
        for (int a = 2; a < argc && strcmp(argv[a], "--") != 0; a++) {
            if (strcmp(argv[a], "--version") == 0) {
                printf("rlsworker %s\n", RW_VERSION);
                return RW_EXIT_OK;
            }
        }
        return commands[i].fn(argc - 1, argv + 1);
    }
    fprintf(stderr, "rlsworker: unknown command \"%s\"\n", argv[1]);
    usage(stderr);
    return RW_EXIT_USAGE;
}
