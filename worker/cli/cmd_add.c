/* rlsworker add TASK: enqueue a job over the admin connection. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "worker/cli/cli.h"
#include "worker/cli/commands.h"
#include "worker/cli/verify_cli.h"
#include "worker/pg/queue_cli.h"

#define CMD "add"

struct add_args {
    const char *task, *payload, *claims, *token, *run_at, *queue, *key, *key_mode;
    const char *priority, *max_attempts, *subject, *run_as;
    bool json;
};

static void usage(FILE *out)
{
    fprintf(out,
        "usage: rlsworker add TASK [options]\n\n"
        "  --payload JSON       job payload, a JSON object (default {})\n"
        "  --claims JSON        claims for a user-scoped job (trusted: admin path)\n"
        "  --token JWT          verify the JWT (JWKS_URL or JWT_SECRET) and store its claims;\n"
        "                       \"-\" reads it from stdin\n"
        "  --subject SUB        subject for a system task with scope: subject\n"
        "  --run-as ROLE        user, system or a restricted role name (default: the task's)\n"
        "  --run-at TIME        when to run (RFC 3339, e.g. 2026-01-02T15:04:05Z; default now)\n"
        "  --queue NAME         named queue: its jobs run one at a time\n"
        "  --key KEY            job key: replaces a queued job with the same key\n"
        "  --key-mode MODE      replace (default) or keep (leave the existing job as it is)\n"
        "  --priority N         smaller runs first (default 0)\n"
        "  --max-attempts N     attempts before the job is dead (default: task's, then 25)\n"
        "  --json               print {\"id\": N}\n");
}

static int parse_args(int argc, char **argv, struct add_args *a)
{
    static const struct { const char *flag; size_t off; } flags[] = {
        {"--payload", offsetof(struct add_args, payload)},
        {"--claims", offsetof(struct add_args, claims)},
        {"--token", offsetof(struct add_args, token)},
        {"--run-at", offsetof(struct add_args, run_at)},
        {"--queue", offsetof(struct add_args, queue)},
        {"--key", offsetof(struct add_args, key)},
        {"--key-mode", offsetof(struct add_args, key_mode)},
        {"--priority", offsetof(struct add_args, priority)},
        {"--max-attempts", offsetof(struct add_args, max_attempts)},
        {"--subject", offsetof(struct add_args, subject)},
        {"--run-as", offsetof(struct add_args, run_as)},
    };
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        size_t n = strcspn(arg, "=");
        bool matched = false;

        if (strcmp(arg, "--json") == 0) {
            a->json = true;
            continue;
        }
        for (size_t f = 0; f < sizeof flags / sizeof flags[0]; f++) {
            if (strlen(flags[f].flag) == n && strncmp(arg, flags[f].flag, n) == 0) {
                const char *v = rw_cli_value(CMD, argc, argv, &i);
                if (!v)
                    return -1;
                *(const char **)((char *)a + flags[f].off) = v;
                matched = true;
                break;
            }
        }
        if (matched)
            continue;
        if (arg[0] == '-' && arg[1]) {
            rw_cli_error(CMD, "unknown option \"%s\" (see rlsworker add --help)", arg);
            return -1;
        }
        if (a->task) {
            rw_cli_error(CMD, "unexpected argument \"%s\": give one task name", arg);
            return -1;
        }
        a->task = arg;
    }
    if (!a->task) {
        rw_cli_error(CMD, "missing TASK (see rlsworker add --help)");
        return -1;
    }
    if (a->claims && a->token) {
        rw_cli_error(CMD, "--claims and --token cannot be used together");
        return -1;
    }
    return 0;
}

static bool is_int(const char *s)
{
    char *end;
    if (!s || !*s)
        return false;
    strtol(s, &end, 10);
    return *end == '\0';
}

/* Parses a JSON object argument; returns a canonical (compact, sorted) text. */
static char *json_object_arg(const char *flag, const char *text, size_t max)
{
    json_error_t jerr;
    json_t *v = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
    char *out;

    if (!v) {
        rw_cli_error(CMD, "%s is not valid JSON: %s (at character %d)", flag, jerr.text,
                     jerr.position);
        return NULL;
    }
    if (!json_is_object(v)) {
        rw_cli_error(CMD, "%s must be a JSON object, like '{\"key\": \"value\"}'", flag);
        json_decref(v);
        return NULL;
    }
    out = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(v);
    if (out && max && strlen(out) > max) {
        rw_cli_error(CMD, "%s is %zu bytes, more than claims_max_bytes (%zu)", flag,
                     strlen(out), max);
        free(out);
        return NULL;
    }
    return out;
}

static int enqueue(PGconn *c, const struct add_args *a, const char *payload,
                   const char *claims, long long *id)
{
    const struct rw_queue_new_job j = {a->task, payload, a->run_at, a->queue, a->key,
                                       a->priority ? a->priority : "0", a->max_attempts,
                                       claims, a->subject, a->run_as,
                                       a->key_mode ? a->key_mode : "replace"};
    PGresult *r = rw_queue_cli_add_job(c, &j);
    int rc = 0;

    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
        const char *msg = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
        if (state && strcmp(state, "22007") == 0 && a->run_at)
            rw_cli_error(CMD, "--run-at \"%s\" is not a time: use RFC 3339, e.g. "
                         "2026-01-02T15:04:05Z", a->run_at);
        else
            rw_cli_error(CMD, "could not enqueue: %s", msg ? msg : PQerrorMessage(c));
        rc = state && (state[0] == '2' || strncmp(state, "P0", 2) == 0) ? RW_EXIT_USAGE
                                                                        : RW_EXIT_FAIL;
    } else {
        *id = atoll(PQgetvalue(r, 0, 0));
    }
    PQclear(r);
    return rc;
}

int rw_cmd_add(int argc, char **argv)
{
    struct rw_config cfg;
    struct add_args a = {0};
    char *payload = NULL, *claims = NULL;
    long long id = 0;
    PGconn *c = NULL;
    int rc;

    if (rw_cli_wants_help(argc, argv)) {
        usage(stdout);
        return RW_EXIT_OK;
    }
    if ((rc = rw_cli_config(CMD, &cfg, &argc, argv)) != 0)
        return rc;
    rc = RW_EXIT_USAGE;
    if (parse_args(argc, argv, &a) < 0)
        goto out;
    if ((a.priority && !is_int(a.priority)) || (a.max_attempts && !is_int(a.max_attempts))) {
        rw_cli_error(CMD, "--priority and --max-attempts take whole numbers");
        goto out;
    }
    if (a.key_mode && strcmp(a.key_mode, "replace") != 0 && strcmp(a.key_mode, "keep") != 0) {
        rw_cli_error(CMD, "--key-mode must be replace or keep, got \"%s\"", a.key_mode);
        goto out;
    }
    payload = json_object_arg("--payload", a.payload ? a.payload : "{}", 0);
    if (!payload)
        goto out;
    if (a.claims && !(claims = json_object_arg("--claims", a.claims, (size_t)cfg.claims_max_bytes)))
        goto out;
    if (a.token) {
        rc = rw_verify_cli_token(CMD, &cfg, a.token, &claims);
        if (rc != 0)
            goto out;
    }
    rc = RW_EXIT_FAIL;
    if (!(c = rw_cli_admin(CMD, &cfg)))
        goto out;
    rc = enqueue(c, &a, payload, claims, &id);
    if (rc == 0) {
        if (a.json)
            printf("{\"id\": %lld}\n", id);
        else
            printf("%lld\n", id);
    }
out:
    if (c)
        PQfinish(c);
    free(payload);
    free(claims);
    rw_config_free(&cfg);
    return rc;
}
