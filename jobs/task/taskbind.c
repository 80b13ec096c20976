/* Binding a statement's :name parameters for one job (rw_task_bind). The
 * values go to libpq as text bind parameters, never into the SQL. */
#include "jobs/task/taskfile.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int bind_fail(struct rw_bind *b, char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int bind_fail(struct rw_bind *b, char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    rw_task_bind_free(b);
    return -1;
}

/* Takes ownership of s (may be NULL after a failed allocation). */
static const char *own(struct rw_bind *b, char *s)
{
    if (!s)
        return NULL;
    b->owned[b->nowned++] = s;
    return s;
}

/* Shortest "%.*g" that reads back as the same double (at most 17 digits). */
static char *real_text(double d)
{
    char buf[64];

    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, d);
        if (strtod(buf, NULL) == d)
            break;
    }
    return strdup(buf);
}

static char *json_text(json_t *v)
{
    char buf[64];

    switch (json_typeof(v)) {
    case JSON_INTEGER:
        snprintf(buf, sizeof buf, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        return strdup(buf);
    case JSON_REAL:
        return real_text(json_real_value(v));
    case JSON_TRUE:
        return strdup("true");
    case JSON_FALSE:
        return strdup("false");
    default:   /* object, array */
        return json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    }
}

/* The text of one payload value; *is_null for JSON null. NULL on failure. */
static const char *payload_value(struct rw_bind *b, json_t *v, int *is_null)
{
    *is_null = json_is_null(v);
    if (*is_null)
        return NULL;
    if (json_is_string(v))
        return json_string_value(v);   /* borrowed from the payload */
    return own(b, json_text(v));
}

static const char *reserved_value(struct rw_bind *b, const char *name, json_t *payload,
                                  long long job_id, int attempt)
{
    char buf[32];

    if (strcmp(name, "job_id") == 0) {
        snprintf(buf, sizeof buf, "%lld", job_id);
        return own(b, strdup(buf));
    }
    if (strcmp(name, "attempt") == 0) {
        snprintf(buf, sizeof buf, "%d", attempt);
        return own(b, strdup(buf));
    }
    return own(b, payload ? json_dumps(payload, JSON_COMPACT | JSON_ENCODE_ANY)
                          : strdup("{}"));
}

static int is_reserved(const char *name)
{
    return strcmp(name, "job_id") == 0 || strcmp(name, "attempt") == 0 ||
           strcmp(name, "payload") == 0;
}

static const char *task_name(const struct rw_sql_stmt *stmt)
{
    return stmt->task ? stmt->task : "(unnamed)";
}

/* What a job offers to its statements' parameters. */
struct bind_job {
    json_t *payload;
    const char *subject;
    long long job_id;
    int attempt;
};

/* Binds param_names[i]; 0 or -1 (err set, b freed). */
static int bind_one(const struct rw_sql_stmt *stmt, int i, const struct bind_job *job,
                    struct rw_bind *b, char *err, size_t errlen)
{
    const char *name = stmt->param_names[i];
    json_t *payload = job->payload, *v;
    int is_null = 0;

    if (strcmp(name, "subject") == 0) {
        b->values[i] = job->subject;   /* NULL binds SQL NULL */
        return 0;
    }
    if (is_reserved(name)) {
        b->values[i] = reserved_value(b, name, payload, job->job_id, job->attempt);
    } else {
        if (!(v = json_is_object(payload) ? json_object_get(payload, name) : NULL))
            return bind_fail(b, err, errlen, "payload has no \"%s\" (needed by task %s, line %d)",
                             name, task_name(stmt), stmt->line);
        if (json_is_string(v) && strlen(json_string_value(v)) != json_string_length(v))
            return bind_fail(b, err, errlen, "payload \"%s\" contains a NUL character, which "
                             "cannot be bound as text (task %s, line %d)",
                             name, task_name(stmt), stmt->line);
        b->values[i] = payload_value(b, v, &is_null);
    }
    if (!b->values[i] && !is_null)
        return bind_fail(b, err, errlen, "out of memory binding \"%s\" for task %s", name,
                         task_name(stmt));
    return 0;
}

int rw_task_bind(const struct rw_sql_stmt *stmt, json_t *payload, const char *subject,
                 long long job_id, int attempt, struct rw_bind *out, char *err, size_t errlen)
{
    const struct bind_job job = { payload, subject, job_id, attempt };
    int n = stmt->nparams;

    memset(out, 0, sizeof *out);
    out->values = calloc((size_t)(n ? n : 1), sizeof *out->values);
    out->owned = calloc((size_t)(n ? n : 1), sizeof *out->owned);
    if (!out->values || !out->owned)
        return bind_fail(out, err, errlen, "out of memory binding task %s", task_name(stmt));
    for (int i = 0; i < n; i++) {
        if (bind_one(stmt, i, &job, out, err, errlen) < 0)
            return -1;
    }
    return 0;
}

void rw_task_bind_free(struct rw_bind *b)
{
    if (!b)
        return;
    for (int i = 0; i < b->nowned; i++)
        free(b->owned[i]);
    free(b->owned);
    free((void *)b->values);
    memset(b, 0, sizeof *b);
}
