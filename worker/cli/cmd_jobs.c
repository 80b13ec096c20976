/* rlsworker jobs list|show|retry|cancel|stats: inspect and manage jobs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "worker/cli/cli.h"
#include "worker/cli/cmd_jobs_bulk.h"
#include "worker/cli/commands.h"
#include "worker/pg/queue_cli.h"

#define CMD "jobs"

static void usage(FILE *out)
{
    fprintf(out,
        "usage: rlsworker jobs list [--state S] [--task T] [--limit N] [--history] [--json]\n"
        "         S: queued, running, dead, cancelled (live jobs), or succeeded, failed\n"
        "         (finished runs from the job history, newest first); --history lists\n"
        "         finished runs of any outcome (dead and cancelled ones too)\n"
        "       rlsworker jobs show ID [--json]\n"
        "       rlsworker jobs retry ID     put a dead (or waiting) job back, attempts reset\n"
        "       rlsworker jobs cancel ID    cancel a queued job, or stop a running one\n"
        "       rlsworker jobs cancel|retry FILTER... [--json]\n"
        "         in bulk: every FILTER given must match; at least one of\n"
        "         --task T --queue Q --state S --subject U --key-prefix P\n"
        "         (cancel: S queued or running, default both; retry: S dead,\n"
        "         cancelled or queued, default dead and cancelled)\n"
        "       rlsworker jobs stats [--json]\n");
}

/* r (a worker/pg/queue_cli.c answer) if it has rows, else NULL, said. */
static PGresult *query(PGconn *c, PGresult *r)
{
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        const char *msg = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
        rw_cli_error(CMD, "query failed: %s", msg ? msg : PQerrorMessage(c));
        PQclear(r);
        return NULL;
    }
    return r;
}

/* Runs a query returning one JSON text. With --json prints it as is and
 * returns NULL with *rc set; otherwise returns it parsed (new reference). */
static json_t *json_query(PGconn *c, PGresult *answer, bool json, int *rc)
{
    PGresult *r = query(c, answer);
    json_t *v = NULL;

    *rc = r ? RW_EXIT_OK : RW_EXIT_FAIL;
    if (!r)
        return NULL;
    if (json)
        printf("%s\n", PQgetvalue(r, 0, 0));
    else
        v = json_loads(PQgetvalue(r, 0, 0), 0, NULL);
    PQclear(r);
    return v;
}

static int list(PGconn *c, const char *state, const char *task, const char *limit, bool json)
{
    int rc;
    json_t *arr = json_query(c, rw_queue_cli_list_jobs(c, state, task, limit), json, &rc);

    if (!arr)
        return rc;
    printf("%-8s %-24s %-8s %-8s %-10s %s\n", "ID", "TASK", "STATE", "ATTEMPTS", "SUBJECT",
           "LAST ERROR");
    for (size_t i = 0; i < json_array_size(arr); i++) {
        json_t *j = json_array_get(arr, i);
        const char *err = json_string_value(json_object_get(j, "last_error"));
        const char *sub = json_string_value(json_object_get(j, "subject"));
        printf("%-8lld %-24s %-8s %-8lld %-10s %.60s\n",
               (long long)json_integer_value(json_object_get(j, "id")),
               json_string_value(json_object_get(j, "task")),
               json_string_value(json_object_get(j, "state")),
               (long long)json_integer_value(json_object_get(j, "attempts")),
               sub ? sub : "-", err ? err : "");
    }
    json_decref(arr);
    return RW_EXIT_OK;
}

/* Outcomes only the history holds; dead and cancelled jobs are also live
 * (retryable) rows of rlsworker.jobs, listed from the history with --history. */
static bool is_outcome(const char *state)
{
    return state && (!strcmp(state, "succeeded") || !strcmp(state, "failed"));
}

static int list_history(PGconn *c, const char *state, const char *task, const char *limit,
                        bool json)
{
    int rc;
    json_t *arr = json_query(c, rw_queue_cli_list_history(c, state, task, limit), json, &rc);

    if (!arr)
        return rc;
    printf("%-8s %-24s %-10s %-8s %10s %-10s %s\n", "ID", "TASK", "OUTCOME", "ATTEMPTS",
           "MS", "SUBJECT", "ERROR");
    for (size_t i = 0; i < json_array_size(arr); i++) {
        json_t *j = json_array_get(arr, i);
        const char *err = json_string_value(json_object_get(j, "error"));
        const char *sub = json_string_value(json_object_get(j, "subject"));
        json_t *ms = json_object_get(j, "duration_ms");
        printf("%-8lld %-24s %-10s %-8lld %10.1f %-10s %.60s\n",
               (long long)json_integer_value(json_object_get(j, "id")),
               json_string_value(json_object_get(j, "task")),
               json_string_value(json_object_get(j, "state")),
               (long long)json_integer_value(json_object_get(j, "attempts")),
               json_is_number(ms) ? json_number_value(ms) : 0.0, sub ? sub : "-",
               err ? err : "");
    }
    json_decref(arr);
    return RW_EXIT_OK;
}

static int show(PGconn *c, const char *id, bool json)
{
    PGresult *r = query(c, rw_queue_cli_show_job(c, id));
    json_t *j;
    const char *key;
    json_t *v;

    if (!r)
        return RW_EXIT_FAIL;
    if (PQntuples(r) == 0) {
        rw_cli_error(CMD, "no job %s in the queue (finished runs: rlsworker jobs list "
                     "--state succeeded)", id);
        PQclear(r);
        return RW_EXIT_FAIL;
    }
    if (json) {
        printf("%s\n", PQgetvalue(r, 0, 0));
        PQclear(r);
        return RW_EXIT_OK;
    }
    j = json_loads(PQgetvalue(r, 0, 0), 0, NULL);
    PQclear(r);
    json_object_foreach(j, key, v) {
        if (strcmp(key, "errors") == 0 && json_is_array(v)) {
            size_t k;
            json_t *e;
            printf("%-13s %zu kept (the last 10 attempts)\n", key, json_array_size(v));
            json_array_foreach(v, k, e)
                printf("  attempt %lld at %s: %s\n",
                       (long long)json_integer_value(json_object_get(e, "attempt")),
                       json_string_value(json_object_get(e, "at")),
                       json_string_value(json_object_get(e, "error")));
            continue;
        }
        char *s = json_is_string(v) ? strdup(json_string_value(v)) : json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
        printf("%-13s %s\n", key, s ? s : "");
        free(s);
    }
    json_decref(j);
    return RW_EXIT_OK;
}

static int act(PGconn *c, const char *fn, const char *id)
{
    PGresult *r;
    const char *res;
    int rc = RW_EXIT_OK;

    r = strcmp(fn, "retry_job") == 0 ? rw_queue_cli_retry_job(c, id)
                                     : rw_queue_cli_cancel_job(c, id);
    if (!(r = query(c, r)))
        return RW_EXIT_FAIL;
    res = PQgetvalue(r, 0, 0);
    if (strcmp(res, "not found") == 0) {
        rw_cli_error(CMD, "no job %s", id);
        rc = RW_EXIT_FAIL;
    } else if (strcmp(fn, "retry_job") == 0 && strcmp(res, "running") == 0) {
        rw_cli_error(CMD, "job %s is running; cancel it first or let it finish", id);
        rc = RW_EXIT_FAIL;
    } else {
        printf("job %s: %s\n", id, res);
    }
    PQclear(r);
    return rc;
}

static int stats(PGconn *c, bool json)
{
    int rc;
    json_t *arr = json_query(c, rw_queue_cli_job_stats(c), json, &rc);

    if (!arr)
        return rc;
    printf("%-24s %-8s %8s %8s\n", "TASK", "STATE", "JOBS", "READY");
    for (size_t i = 0; i < json_array_size(arr); i++) {
        json_t *s = json_array_get(arr, i);
        printf("%-24s %-8s %8lld %8lld\n", json_string_value(json_object_get(s, "task")),
               json_string_value(json_object_get(s, "state")),
               (long long)json_integer_value(json_object_get(s, "jobs")),
               (long long)json_integer_value(json_object_get(s, "ready")));
    }
    json_decref(arr);
    return RW_EXIT_OK;
}

static bool is_id(const char *s)
{
    char *end;
    if (!s || !*s)
        return false;
    return strtoll(s, &end, 10) > 0 && *end == '\0';
}

int rw_cmd_jobs(int argc, char **argv)
{
    struct rw_config cfg;
    const char *sub = NULL, *id = NULL, *state = NULL, *task = NULL, *limit = NULL;
    const char *queue = NULL, *subject = NULL, *key_prefix = NULL;
    bool json = false, history = false;
    PGconn *c;
    int rc;

    if (rw_cli_wants_help(argc, argv)) {
        usage(stdout);
        return RW_EXIT_OK;
    }
    if ((rc = rw_cli_config(CMD, &cfg, &argc, argv)) != 0)
        return rc;
    rc = RW_EXIT_USAGE;
    for (int i = 1; i < argc; i++) {
        const char **slot = NULL;
        if (strcmp(argv[i], "--json") == 0)
            json = true;
        else if (strcmp(argv[i], "--history") == 0)
            history = true;
        else if (strncmp(argv[i], "--state", 7) == 0)
            slot = &state;
        else if (strncmp(argv[i], "--task", 6) == 0)
            slot = &task;
        else if (strncmp(argv[i], "--limit", 7) == 0)
            slot = &limit;
        else if (strncmp(argv[i], "--queue", 7) == 0)
            slot = &queue;
        else if (strncmp(argv[i], "--subject", 9) == 0)
            slot = &subject;
        else if (strncmp(argv[i], "--key-prefix", 12) == 0)
            slot = &key_prefix;
        else if (argv[i][0] == '-') {
            rw_cli_error(CMD, "unknown option \"%s\" (see rlsworker jobs --help)", argv[i]);
            goto out;
        } else if (!sub)
            sub = argv[i];
        else if (!id)
            id = argv[i];
        else {
            rw_cli_error(CMD, "unexpected argument \"%s\"", argv[i]);
            goto out;
        }
        if (slot && !(*slot = rw_cli_value(CMD, argc, argv, &i)))
            goto out;
    }
    if (!sub) {
        usage(stderr);
        goto out;
    }
    struct rw_jobs_filter filter = {task, queue, state, subject, key_prefix};
    bool bulk = (strcmp(sub, "retry") == 0 || strcmp(sub, "cancel") == 0) && !id &&
                rw_jobs_filter_given(&filter);
    bool needs_id = !bulk && (strcmp(sub, "show") == 0 || strcmp(sub, "retry") == 0 ||
                              strcmp(sub, "cancel") == 0);
    if (!bulk && (queue || subject || key_prefix)) {
        rw_cli_error(CMD, "--queue, --subject and --key-prefix are filters of a bulk "
                     "cancel or retry (rlsworker jobs cancel --queue Q)");
        goto out;
    }
    if (needs_id && !is_id(id)) {
        rw_cli_error(CMD, "%s needs a job id (a positive whole number)", sub);
        goto out;
    }
    if (!bulk && !needs_id && strcmp(sub, "list") != 0 && strcmp(sub, "stats") != 0) {
        rw_cli_error(CMD, "unknown subcommand \"%s\": use list, show, retry, cancel or stats", sub);
        goto out;
    }
    if (state && strcmp(state, "queued") && strcmp(state, "running") && strcmp(state, "dead") &&
        strcmp(state, "cancelled") && !is_outcome(state)) {
        rw_cli_error(CMD, "--state must be queued, running, dead, cancelled, succeeded or "
                     "failed");
        goto out;
    }
    if (history && state && (!strcmp(state, "queued") || !strcmp(state, "running"))) {
        rw_cli_error(CMD, "--history lists finished runs: use --state succeeded, failed, "
                     "dead or cancelled");
        goto out;
    }
    if (limit && !is_id(limit)) {
        rw_cli_error(CMD, "--limit takes a positive whole number");
        goto out;
    }
    rc = RW_EXIT_FAIL;
    if (!(c = rw_cli_admin(CMD, &cfg)))
        goto out;
    if (bulk)
        rc = rw_jobs_bulk(c, strcmp(sub, "cancel") == 0, &filter, json);
    else if (strcmp(sub, "list") == 0 && (history || is_outcome(state)))
        rc = list_history(c, state, task, limit, json);
    else if (strcmp(sub, "list") == 0)
        rc = list(c, state, task, limit, json);
    else if (strcmp(sub, "show") == 0)
        rc = show(c, id, json);
    else if (strcmp(sub, "retry") == 0)
        rc = act(c, "retry_job", id);
    else if (strcmp(sub, "cancel") == 0)
        rc = act(c, "cancel_job", id);
    else
        rc = stats(c, json);
    PQfinish(c);
out:
    rw_config_free(&cfg);
    return rc;
}
