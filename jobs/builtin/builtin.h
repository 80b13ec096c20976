/* Built-in C tasks (noop, http delivery, purge). The host (the executor,
 * jobs/exec/builtin_api.c) calls start(); the task reports once through
 * rw_builtin_done(). A task reaches its host only through the struct
 * rw_builtin_host given in its rw_builtin_job, so this layer links without
 * the executor and a test can host a built-in with a fake. System built-ins
 * that touch the database get the scoped query API below, which always binds
 * the job's subject. */
#ifndef RW_BUILTIN_H
#define RW_BUILTIN_H

#include <jansson.h>
#include <stdbool.h>

#include "jobs/task/taskfile.h"
#include "worker/pg/pgconn.h"

struct ev_loop;
struct rw_config;
struct rw_http_client;

struct rw_task;
struct rw_builtin_job;

typedef void (*rw_builtin_query_cb)(struct rw_builtin_job *bj, const struct rw_pg_result *r,
                                    void *arg);

/* What the host provides to a running built-in. */
struct rw_builtin_host {
    /* The job ended: error NULL on success; final: dead at once, no retry. */
    void (*done)(struct rw_builtin_job *bj, const char *error, bool final);
    /* The shared outgoing HTTP client, or NULL when it cannot be created. */
    struct rw_http_client *(*http)(struct rw_builtin_job *bj);
    /* Runs sql with params on the admin connection (already checked and
     * bound to the subject by rw_builtin_query_scoped). -1: not sent, the
     * callback is never called. */
    int (*query)(struct rw_builtin_job *bj, const char *sql, int nparams,
                 const char *const *params, rw_builtin_query_cb cb, void *arg);
};

/* A running built-in job: made and freed by the host, which fills in what
 * the task may read (all borrowed, valid until the job ends). Tasks use the
 * accessors below, not the fields. */
struct rw_builtin_job {
    const struct rw_builtin_host *host;
    void *host_job;               /* the host's own job (opaque here) */
    long long id;                 /* for rw_job_log: id, task, attempts */
    const char *task;
    int attempts;
    const char *subject;          /* NULL for a global built-in */
    const json_t *payload;
    struct ev_loop *loop;
    const struct rw_config *cfg;
    int timeout_s;
    void *data;                   /* the task's own state (rw_builtin_set_data) */
};

struct rw_builtin {
    const char *name;
    /* Starts the job; must eventually call rw_builtin_done() exactly once,
     * possibly before returning. */
    void (*start)(struct rw_builtin_job *bj);
    /* RW_SCOPE_SUBJECT: the job must carry a subject, and the task's
     * database access goes through rw_builtin_query_scoped only. */
    enum rw_scope scope;
    /* Optional: asks a running job to stop early (job timeout, operator
     * cancel, shutdown); may be called more than once. The task must still
     * end the job exactly once, from a later loop turn, never from inside
     * abort() (the executor may be walking its job list). */
    void (*abort)(struct rw_builtin_job *bj);
};

/* The job's id: the same on every attempt. */
long long rw_builtin_job_id(const struct rw_builtin_job *bj);

/* The job's subject (borrowed; NULL for a global built-in). */
const char *rw_builtin_subject(const struct rw_builtin_job *bj);

/* The scoped query API for built-in system tasks: runs `sql` on the admin
 * connection with $1 always bound to the job's subject and params as
 * $2, $3, ... A statement that does not use $1, or a job without a subject,
 * is refused (-1, callback never called). */
int rw_builtin_query_scoped(struct rw_builtin_job *bj, const char *sql, int nparams,
                            const char *const *params, rw_builtin_query_cb cb, void *arg)
    __attribute__((warn_unused_result));
/* True when sql references $1 as a parameter (not $10, not inside a word). */
bool rw_sql_uses_param1(const char *sql);

/* jobs/builtin/http_task.c: the `http` built-in (docs/http-task.md). */
void rw_http_task_start(struct rw_builtin_job *bj);
void rw_http_task_abort(struct rw_builtin_job *bj);

/* Number of built-ins and access by index. */
int rw_builtin_count(void);
const struct rw_builtin *rw_builtin_at(int i);
/* rw_registry_load (jobs/task/taskfile.h) with the built-ins' table. */
int rw_builtin_registry_load(const char *dir, struct rw_registry **out, char *err,
                             size_t errlen) __attribute__((warn_unused_result));

/* Reports the end of a built-in job: `error` NULL on success, else a
 * message for last_error (borrowed; copied by the host). A task calls it
 * exactly once per start(); bj is freed by the host. */
void rw_builtin_done(struct rw_builtin_job *bj, const char *error);
/* Like rw_builtin_done with an error, but the job is dead at once (no retry):
 * for input that can never succeed, e.g. a malformed payload. */
void rw_builtin_fail_final(struct rw_builtin_job *bj, const char *error);

/* What a running built-in may read (all borrowed, valid until it ends). */
const json_t *rw_builtin_payload(const struct rw_builtin_job *bj);
struct ev_loop *rw_builtin_loop(const struct rw_builtin_job *bj);
const struct rw_config *rw_builtin_config(const struct rw_builtin_job *bj);
/* Seconds the job may run (the task's timeout, else task_timeout). */
int rw_builtin_timeout_s(const struct rw_builtin_job *bj);
/* The worker's shared outgoing HTTP client, created on first use; NULL
 * when it cannot be created. */
struct rw_http_client *rw_builtin_http(struct rw_builtin_job *bj);
/* One pointer of the task's own state while it runs (for abort()). */
void rw_builtin_set_data(struct rw_builtin_job *bj, void *data);
void *rw_builtin_data(const struct rw_builtin_job *bj);

#endif
