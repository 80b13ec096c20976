/* The registry: every *.sql file of the tasks directory (sorted by file
 * name, not recursive, hidden files skipped) plus the built-ins, kept sorted
 * by task name for bsearch. Loading is all or nothing. */
#include "jobs/task/taskfile.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct rw_registry {
    struct rw_task **tasks;   /* owned, sorted by name */
    int n;
};

static int add_task(struct rw_registry *reg, struct rw_task *t)
{
    struct rw_task **p = realloc(reg->tasks, (size_t)(reg->n + 1) * sizeof *p);

    if (!p)
        return -1;
    reg->tasks = p;
    reg->tasks[reg->n++] = t;
    return 0;
}

/* Reads a whole task file (at most RW_TASK_MAX_BYTES) into a new string. */
static char *read_task_file(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    char *text = NULL;
    size_t n = 0;

    if (!f) {
        snprintf(err, errlen, "could not open task file %s: %s", path, strerror(errno));
        return NULL;
    }
    if (!(text = malloc(RW_TASK_MAX_BYTES + 2))) {
        snprintf(err, errlen, "out of memory reading %s", path);
    } else if ((n = fread(text, 1, RW_TASK_MAX_BYTES + 1, f)) > RW_TASK_MAX_BYTES) {
        snprintf(err, errlen, "%s: larger than %d bytes; split the task", path, RW_TASK_MAX_BYTES);
    } else if (ferror(f)) {
        snprintf(err, errlen, "could not read task file %s", path);
    } else if (memchr(text, '\0', n)) {
        snprintf(err, errlen, "%s: contains a NUL byte; task files are text", path);
    } else {
        text[n] = '\0';
        fclose(f);
        return text;
    }
    free(text);
    fclose(f);
    return NULL;
}

static int is_task_file(const struct dirent *d)
{
    size_t n = strlen(d->d_name);

    return d->d_name[0] != '.' && n > 4 && strcmp(d->d_name + n - 4, ".sql") == 0;
}

static int by_file_name(const struct dirent **a, const struct dirent **b)
{
    return strcmp((*a)->d_name, (*b)->d_name);
}

static int load_file(struct rw_registry *reg, const char *dir, const char *name,
                     char *err, size_t errlen)
{
    char path[4096];
    struct stat st;
    struct rw_task *t;
    char *text;
    int rc;

    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, name) >= sizeof path) {
        snprintf(err, errlen, "task file path %s/%s is too long", dir, name);
        return -1;
    }
    if (stat(path, &st) < 0 || !S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "%s: not a regular file; a task file must be a plain file", path);
        return -1;
    }
    if (!(text = read_task_file(path, err, errlen)))
        return -1;
    rc = rw_task_parse(path, text, &t, err, errlen);
    free(text);
    if (rc == 0 && add_task(reg, t) < 0) {
        rw_task_free(&t);
        snprintf(err, errlen, "out of memory loading %s", path);
        rc = -1;
    }
    return rc;
}

static int load_dir(struct rw_registry *reg, const char *dir, char *err, size_t errlen)
{
    struct dirent **names;
    int n = scandir(dir, &names, is_task_file, by_file_name);
    int rc = 0;

    if (n < 0) {
        if (errno == ENOENT || errno == ENOTDIR)
            snprintf(err, errlen, "tasks directory \"%s\" %s; create it or pass --tasks DIR",
                     dir, errno == ENOENT ? "does not exist" : "is not a directory");
        else
            snprintf(err, errlen, "could not read tasks directory \"%s\": %s", dir,
                     strerror(errno));
        return -1;
    }
    for (int i = 0; i < n; i++) {
        if (rc == 0)
            rc = load_file(reg, dir, names[i]->d_name, err, errlen);
        free(names[i]);
    }
    free(names);
    return rc;
}

/* Built-ins are system tasks; a subject-scoped one reaches the database only
 * through the scoped query API, which always binds the job's subject. */
static int add_builtins(struct rw_registry *reg, const struct rw_registry_builtin *b, int n)
{
    for (int i = 0; i < n; i++) {
        struct rw_task *t = calloc(1, sizeof *t);

        if (!t || !(t->name = strdup(b[i].name)) || add_task(reg, t) < 0) {
            rw_task_free(&t);
            return -1;
        }
        t->run_as = RW_RUN_AS_SYSTEM;
        t->scope = b[i].scope;
        t->builtin = b[i].impl;
    }
    return 0;
}

static int by_task_name(const void *a, const void *b)
{
    return strcmp((*(struct rw_task *const *)a)->name, (*(struct rw_task *const *)b)->name);
}

static int check_duplicates(const struct rw_registry *reg, char *err, size_t errlen)
{
    for (int i = 1; i < reg->n; i++) {
        const struct rw_task *a = reg->tasks[i - 1], *b = reg->tasks[i];

        if (strcmp(a->name, b->name) != 0)
            continue;
        if (!a->path || !b->path)
            snprintf(err, errlen, "%s: task \"%s\" has the name of a built-in task; "
                     "give it another `-- task:` name", a->path ? a->path : b->path, a->name);
        else
            snprintf(err, errlen, "task \"%s\" is defined twice, in %s and in %s; give one "
                     "of them another `-- task:` name", a->name, a->path, b->path);
        return -1;
    }
    return 0;
}

int rw_registry_load(const char *dir, const struct rw_registry_builtin *builtins,
                     int nbuiltins, struct rw_registry **out, char *err, size_t errlen)
{
    struct rw_registry *reg = calloc(1, sizeof *reg);

    *out = NULL;
    if (!reg) {
        snprintf(err, errlen, "out of memory loading tasks");
        return -1;
    }
    if (!dir || !*dir) {
        snprintf(err, errlen, "no tasks directory given; pass --tasks DIR");
    } else if (load_dir(reg, dir, err, errlen) == 0) {
        if (add_builtins(reg, builtins, nbuiltins) < 0) {
            snprintf(err, errlen, "out of memory loading built-in tasks");
        } else {
            qsort(reg->tasks, (size_t)reg->n, sizeof *reg->tasks, by_task_name);
            if (check_duplicates(reg, err, errlen) == 0) {
                *out = reg;
                return 0;
            }
        }
    }
    rw_registry_free(&reg);
    return -1;
}

const struct rw_task *rw_registry_find(const struct rw_registry *reg, const char *name)
{
    struct rw_task key = { .name = (char *)name };
    struct rw_task *kp = &key, **hit;

    if (!reg || !name || reg->n == 0)
        return NULL;
    hit = bsearch(&kp, reg->tasks, (size_t)reg->n, sizeof *reg->tasks, by_task_name);
    return hit ? *hit : NULL;
}

int rw_registry_count(const struct rw_registry *reg)
{
    return reg ? reg->n : 0;
}

const struct rw_task *rw_registry_at(const struct rw_registry *reg, int i)
{
    return reg && i >= 0 && i < reg->n ? reg->tasks[i] : NULL;
}

int rw_registry_check_roles(const struct rw_registry *reg,
                            bool (*role_ok)(void *arg, const char *role, char *why, size_t n),
                            void *arg, char *err, size_t errlen)
{
    char why[600];

    for (int i = 0; reg && i < reg->n; i++) {
        const struct rw_task *t = reg->tasks[i];

        if (t->run_as != RW_RUN_AS_ROLE || role_ok(arg, t->role, why, sizeof why))
            continue;
        snprintf(err, errlen, "%s:%d: %s", t->path ? t->path : t->name, t->role_line, why);
        return -1;
    }
    return 0;
}

void rw_registry_free(struct rw_registry **reg)
{
    struct rw_registry *r = reg ? *reg : NULL;

    if (!r)
        return;
    for (int i = 0; i < r->n; i++)
        rw_task_free(&r->tasks[i]);
    free(r->tasks);
    free(r);
    *reg = NULL;
}
