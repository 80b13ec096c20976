/* rlsworker cron check FILE [--tasks DIR] [--from RFC3339] [--count N] [--json] */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "jobs/builtin/builtin.h"
#include "jobs/task/taskfile.h"
#include "scheduler/cron/cron.h"
#include "worker/cli/commands.h"
#include "worker/cli/cron_tasks.h"

#define COUNT_MAX 1000

struct check_opts {
    const char *file;
    const char *tasks;      /* NULL: task names are not checked */
    int64_t from;
    int count;
    bool json;
};

static void usage(FILE *out)
{
    fprintf(out,
            "usage: rlsworker cron check FILE [--tasks DIR] [--from RFC3339] [--count N] [--json]\n"
            "\n"
            "Validates a crontab and prints the next fire times of each line.\n"
            "\n"
            "  --tasks DIR   also check each line's task: it exists in DIR (or is a\n"
            "                built-in) and can run as the line asks (run_as, subject)\n"
            "  --from TIME   compute fire times after TIME (RFC 3339; default: now)\n"
            "  --count N     fire times per line, 1 to %d (default 5)\n"
            "  --json        print [{\"line\", \"id\", \"task\", \"next\": [...]}]\n"
            "\n"
            "Exit status: 0 every line is valid, 1 a bad line or unreadable file,\n"
            "2 bad usage. Syntax: docs/cron.md\n", COUNT_MAX);
}

/* Returns 0, or an exit code. */
static int parse_args(int argc, char **argv, struct check_opts *o)
{
    o->file = NULL;
    o->tasks = NULL;
    o->from = (int64_t)time(NULL);
    o->count = 5;
    o->json = false;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return -1;
        } else if (strcmp(a, "--json") == 0) {
            o->json = true;
        } else if (strcmp(a, "--tasks") == 0 && i + 1 < argc) {
            o->tasks = argv[++i];
        } else if (strcmp(a, "--from") == 0 && i + 1 < argc) {
            if (rw_cron_parse_time(argv[++i], &o->from) < 0) {
                fprintf(stderr, "rlsworker cron check: bad --from \"%s\" "
                        "(use RFC 3339, e.g. 2024-03-10T00:00:00Z)\n", argv[i]);
                return RW_EXIT_USAGE;
            }
        } else if (strcmp(a, "--count") == 0 && i + 1 < argc) {
            char *end;
            long n = strtol(argv[++i], &end, 10);
            if (*end || end == argv[i] || n < 1 || n > COUNT_MAX) {
                fprintf(stderr, "rlsworker cron check: --count must be 1 to %d\n", COUNT_MAX);
                return RW_EXIT_USAGE;
            }
            o->count = (int)n;
        } else if (a[0] == '-' || o->file) {
            fprintf(stderr, "rlsworker cron check: unexpected argument \"%s\"\n", a);
            usage(stderr);
            return RW_EXIT_USAGE;
        } else {
            o->file = a;
        }
    }
    if (!o->file) {
        fprintf(stderr, "rlsworker cron check: missing FILE\n");
        usage(stderr);
        return RW_EXIT_USAGE;
    }
    return 0;
}

/* Next fire times of one entry as a JSON array of strings (new reference). */
static json_t *next_times(const struct rw_cron_entry *e, const struct check_opts *o)
{
    json_t *arr = json_array();
    int64_t t = o->from;
    char buf[32];
    for (int i = 0; arr && i < o->count; i++) {
        if (rw_cron_next(&e->sched, e->tz, t, &t) < 0)
            break;
        rw_cron_fmt_time(t, buf, sizeof buf);
        json_array_append_new(arr, json_string(buf));
    }
    return arr;
}

static void print_text(const struct rw_cron_entry *e, json_t *next)
{
    size_t i;
    json_t *v;
    printf("line %d: %s", e->line, e->task);
    if (strcmp(e->id, e->task) != 0)
        printf(" id=%s", e->id);
    if (strcmp(e->tz, "UTC") != 0)
        printf(" tz=%s", e->tz);
    printf("\n");
    json_array_foreach(next, i, v)
        printf("  %s\n", json_string_value(v));
}

static int check(const struct check_opts *o)
{
    char err[8192];
    struct rw_crontab *tab;
    if (rw_crontab_load(o->file, &tab, err, sizeof err) < 0) {
        fprintf(stderr, "%s\n", err);
        return RW_EXIT_FAIL;
    }
    if (o->tasks) {
        struct rw_registry *reg = NULL;
        int bad = rw_builtin_registry_load(o->tasks, &reg, err, sizeof err) < 0 ||
                  rw_cron_check_tasks(tab, reg, o->file, err, sizeof err) < 0;
        rw_registry_free(&reg);
        if (bad) {
            fprintf(stderr, "%s\n", err);
            rw_crontab_free(&tab);
            return RW_EXIT_FAIL;
        }
    }
    json_t *all = json_array();
    for (int i = 0; all && i < tab->n; i++) {
        const struct rw_cron_entry *e = &tab->entries[i];
        json_t *next = next_times(e, o);
        if (!o->json)
            print_text(e, next);
        json_array_append_new(all, json_pack("{s:i, s:s, s:s, s:o}", "line", e->line,
                                             "id", e->id, "task", e->task, "next", next));
    }
    if (o->json && all) {
        char *s = json_dumps(all, JSON_INDENT(2));
        printf("%s\n", s ? s : "[]");
        free(s);
    }
    json_decref(all);
    rw_crontab_free(&tab);
    return RW_EXIT_OK;
}

int rw_cmd_cron(int argc, char **argv)
{
    struct check_opts o;
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? RW_EXIT_USAGE : RW_EXIT_OK;
    }
    if (strcmp(argv[1], "check") != 0) {
        fprintf(stderr, "rlsworker cron: unknown subcommand \"%s\" (only \"check\")\n", argv[1]);
        return RW_EXIT_USAGE;
    }
    int rc = parse_args(argc, argv, &o);
    if (rc != 0)
        return rc < 0 ? RW_EXIT_OK : rc;
    return check(&o);
}
