/* Task definitions: SQL task files and built-in C tasks.
 *
 * A SQL task file is a header of `-- key: value` lines followed by a body of
 * one or more SQL statements. `:name` in the body binds from the job's
 * payload as a bind parameter ($1, $2, ...), never spliced into the SQL;
 * `::` casts keep working (`:id::bigint`). Reserved names: `:subject` (the
 * job's subject), `:job_id`, `:attempt`, `:payload` (the whole payload as
 * JSON text). See README.md "Writing a task" for the header keys.
 *
 * Ownership: a struct rw_task and everything it points to is owned by the
 * registry that loaded it (or by the caller of rw_task_parse). */
#ifndef RW_TASKFILE_H
#define RW_TASKFILE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

enum rw_run_as { RW_RUN_AS_USER, RW_RUN_AS_SYSTEM, RW_RUN_AS_ROLE };
enum rw_scope { RW_SCOPE_NONE, RW_SCOPE_SUBJECT, RW_SCOPE_GLOBAL };

struct rw_sql_stmt {
    char *sql;            /* the statement with :name rewritten to $n */
    int nparams;
    char **param_names;   /* param_names[i] binds $(i+1) */
    int line;             /* line of the task file where it starts */
    const char *task;     /* borrowed: the owning task's name (for errors) */
};

struct rw_builtin;        /* jobs/builtin/builtin.h; opaque here */

struct rw_task {
    char *name;
    char *path;                 /* task file, or NULL for a built-in */
    enum rw_run_as run_as;
    char *role;                 /* RW_RUN_AS_ROLE: the restricted role name */
    int role_line;              /* line of `-- run_as:` in the file, 0 if none */
    enum rw_scope scope;        /* required for system tasks */
    int max_attempts;           /* 0: the configured default */
    int timeout_s;              /* 0: the configured default */
    int claims_max_age_s;       /* 0: claims never too old */
    bool chain;                 /* `-- chain: allow`: may enqueue follow-ups with its claims */
    bool chained;               /* `-- chained: allow`: other jobs may chain to it */
    bool http_enqueue;          /* `-- enqueue: user`: POST /v1/jobs may enqueue it */
    bool no_group;              /* `-- group: off`: never shares a transaction (group commit) */
    struct rw_sql_stmt *stmts;
    int nstmts;
    const struct rw_builtin *builtin;  /* non-NULL for built-in C tasks */
};

#define RW_TASK_MAX_BYTES (1024 * 1024)   /* largest task file */

/* Parses one task file's text. `path` is used for the default task name
 * (file name without .sql) and in errors, which read "PATH:LINE: what".
 * Returns 0 or -1. */
int rw_task_parse(const char *path, const char *text, struct rw_task **out,
                  char *err, size_t errlen) __attribute__((warn_unused_result));
void rw_task_free(struct rw_task **task);

/* Binds one statement's parameters for a job. values[i] receives the text of
 * $(i+1) or NULL for SQL NULL; strings that had to be made are appended to
 * `owned` (caller frees each and the array with rw_task_bind_free).
 * A payload key the statement needs but the payload lacks is an error
 * naming the key. JSON strings bind as their text, numbers and booleans as
 * their literal, null as SQL NULL, objects and arrays as JSON text.
 * values[] may borrow from `payload` and `subject`: keep both alive until
 * the query has been sent. On error nothing needs freeing. */
struct rw_bind {
    const char **values;
    char **owned;
    int nowned;
};
int rw_task_bind(const struct rw_sql_stmt *stmt, json_t *payload,
                 const char *subject, long long job_id, int attempt,
                 struct rw_bind *out, char *err, size_t errlen)
    __attribute__((warn_unused_result));
void rw_task_bind_free(struct rw_bind *b);

/* A built-in C task as the registry lists it. The table is given by the
 * caller (jobs/builtin/builtin.h: rw_builtin_registry_load), so this layer
 * never includes the built-ins' header. All borrowed, static. */
struct rw_registry_builtin {
    const char *name;
    enum rw_scope scope;
    const struct rw_builtin *impl;
};

/* The set of tasks a worker knows: every *.sql file of a directory plus the
 * given built-ins. Loading fails as a whole (nothing swapped in) when any
 * file is bad or two files name the same task; the error names the file. */
struct rw_registry;
int rw_registry_load(const char *dir, const struct rw_registry_builtin *builtins,
                     int nbuiltins, struct rw_registry **out, char *err,
                     size_t errlen) __attribute__((warn_unused_result));
const struct rw_task *rw_registry_find(const struct rw_registry *reg, const char *name);
int rw_registry_count(const struct rw_registry *reg);
const struct rw_task *rw_registry_at(const struct rw_registry *reg, int i);
void rw_registry_free(struct rw_registry **reg);

/* Checks every task file's `run_as: <role>` with `role_ok` (the worker's
 * table of configured restricted roles). On a refusal, err reads
 * "PATH:LINE: " and what role_ok wrote. Returns 0 or -1. */
int rw_registry_check_roles(const struct rw_registry *reg,
                            bool (*role_ok)(void *arg, const char *role, char *why, size_t n),
                            void *arg, char *err, size_t errlen)
    __attribute__((warn_unused_result));

#endif
