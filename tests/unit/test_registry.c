/* The registry: loading a tasks directory (sorted, hidden and non-.sql
 * files skipped, no recursion), its errors, and the built-ins beside the
 * task files. Parsing and binding one task file is test_taskfile.c's. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "jobs/builtin/builtin.h"
#include "jobs/task/taskfile.h"

/* A fake host for built-ins (the executor is the real one): records done. */
static int done_calls;
static const char *done_error = "not called";
static void fake_done(struct rw_builtin_job *bj, const char *error, bool final)
{
    done_calls++;
    done_error = error;
}
static const struct rw_builtin_host fake_host = {fake_done, NULL, NULL};

/* ---------------------------------------------------------------- registry */

static void write_file(const char *dir, const char *name, const char *text, size_t len)
{
    char path[512];
    FILE *f;

    snprintf(path, sizeof path, "%s/%s", dir, name);
    f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, len, f), len);
    fclose(f);
}

static void put(const char *dir, const char *name, const char *text)
{
    write_file(dir, name, text, strlen(text));
}

static void make_dir(char *tmpl)
{
    strcpy(tmpl, "/tmp/rw_taskfile_XXXXXX");
    assert_non_null(mkdtemp(tmpl));
}

static void remove_dir(const char *dir)
{
    char cmd[600];

    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

static void load_fails(const char *dir, const char *want1, const char *want2)
{
    struct rw_registry *reg = (struct rw_registry *)1;
    char err[1024] = "";

    assert_int_equal(rw_builtin_registry_load(dir, &reg, err, sizeof err), -1);
    assert_null(reg);
    if (!strstr(err, want1) || (want2 && !strstr(err, want2)))
        fail_msg("got \"%s\", want \"%s\" and \"%s\"", err, want1, want2 ? want2 : "");
}

static void test_registry_missing_dir(void **state)
{
    load_fails("/tmp/rw_no_such_tasks_dir", "tasks directory \"/tmp/rw_no_such_tasks_dir\" does not exist",
               "--tasks");
}

static void test_registry_empty_dir_has_builtins(void **state)
{
    struct rw_registry *reg = NULL;
    const struct rw_task *noop;
    char dir[64], err[512];

    make_dir(dir);
    assert_int_equal(rw_builtin_registry_load(dir, &reg, err, sizeof err), 0);
    assert_int_equal(rw_registry_count(reg), rw_builtin_count());
    noop = rw_registry_find(reg, "noop");
    assert_non_null(noop);
    assert_non_null(noop->builtin);
    assert_null(noop->path);
    assert_int_equal(noop->run_as, RW_RUN_AS_SYSTEM);
    done_calls = 0;
    struct rw_builtin_job bj = {.host = &fake_host, .task = "noop"};
    noop->builtin->start(&bj);
    assert_int_equal(done_calls, 1);
    assert_null(done_error);
    rw_registry_free(&reg);
    assert_null(reg);
    remove_dir(dir);
}

static void test_registry_loads_sorted(void **state)
{
    struct rw_registry *reg = NULL;
    char dir[64], sub[128], err[512], path[128];

    make_dir(dir);
    put(dir, "b.sql", "-- task: a_named_in_b\nselect 1");
    put(dir, "c.sql", "select :x");
    put(dir, "README.md", "not a task");
    put(dir, ".hidden.sql", "this is not sql (");
    put(dir, "notes.sql~", "begin");
    snprintf(sub, sizeof sub, "%s/sub", dir);
    assert_int_equal(mkdir(sub, 0700), 0);
    put(sub, "deep.sql", "select 1");
    assert_int_equal(rw_builtin_registry_load(dir, &reg, err, sizeof err), 0);
    assert_int_equal(rw_registry_count(reg), 2 + rw_builtin_count());
    assert_string_equal(rw_registry_at(reg, 0)->name, "a_named_in_b");
    assert_string_equal(rw_registry_at(reg, 1)->name, "c");
    assert_string_equal(rw_registry_at(reg, 2)->name, "http");
    assert_string_equal(rw_registry_at(reg, 3)->name, "noop");
    assert_string_equal(rw_registry_at(reg, 4)->name, "purge_dead_jobs");
    assert_null(rw_registry_at(reg, 5));
    snprintf(path, sizeof path, "%s/c.sql", dir);
    assert_string_equal(rw_registry_find(reg, "c")->path, path);
    assert_null(rw_registry_find(reg, "b"));
    assert_null(rw_registry_find(reg, "deep"));
    assert_null(rw_registry_find(reg, "zzz"));
    rw_registry_free(&reg);
    remove_dir(dir);
}

static void test_registry_errors(void **state)
{
    char dir[64], want1[128], want2[128];
    char *big;

    make_dir(dir);
    put(dir, "a.sql", "-- task: same\nselect 1");
    put(dir, "b.sql", "-- task: same\nselect 2");
    snprintf(want1, sizeof want1, "task \"same\" is defined twice, in %s/a.sql", dir);
    snprintf(want2, sizeof want2, "and in %s/b.sql", dir);
    load_fails(dir, want1, want2);
    put(dir, "b.sql", "-- task: noop\nselect 2");
    snprintf(want1, sizeof want1, "%s/b.sql: task \"noop\" has the name of a built-in task", dir);
    load_fails(dir, want1, NULL);
    put(dir, "b.sql", "select 1;\n-- fine\ncommit;");
    snprintf(want1, sizeof want1, "%s/b.sql:3: the worker commits", dir);
    load_fails(dir, want1, NULL);
    write_file(dir, "b.sql", "select 1\0;", 10);
    snprintf(want1, sizeof want1, "%s/b.sql: contains a NUL byte", dir);
    load_fails(dir, want1, NULL);
    big = calloc(1, RW_TASK_MAX_BYTES + 1);
    memset(big, ' ', RW_TASK_MAX_BYTES + 1);
    write_file(dir, "b.sql", big, RW_TASK_MAX_BYTES + 1);
    free(big);
    snprintf(want1, sizeof want1, "%s/b.sql: larger than", dir);
    load_fails(dir, want1, NULL);
    remove_dir(dir);
    put("/tmp", "rw_taskfile_not_a_dir", "x");
    load_fails("/tmp/rw_taskfile_not_a_dir", "is not a directory", "--tasks");
    unlink("/tmp/rw_taskfile_not_a_dir");
}
int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_registry_missing_dir),
        cmocka_unit_test(test_registry_empty_dir_has_builtins),
        cmocka_unit_test(test_registry_loads_sorted),
        cmocka_unit_test(test_registry_errors),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
