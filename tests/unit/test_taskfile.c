/* Task files: header keys, statement splitting, :name rewriting, refused
 * statements, scope: subject and parameter binding. Loading a directory of
 * them into the registry is test_registry.c's. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jobs/task/taskfile.h"

#define PATH "tasks/t.sql"
#define N(a) (sizeof(a) / sizeof((a)[0]))

static struct rw_task *parse_ok(const char *text)
{
    struct rw_task *t = NULL;
    char err[512] = "";

    if (rw_task_parse(PATH, text, &t, err, sizeof err) != 0)
        fail_msg("unexpected error for <<%s>>: %s", text, err);
    assert_non_null(t);
    return t;
}

/* ---------------------------------------------------------------- rewriting */

struct rewrite_case {
    const char *text;
    int nstmts;
    const char *sql0;      /* first statement after rewriting */
    const char *params0;   /* its parameter names, comma-separated */
    int line0;
};

static const struct rewrite_case rewrite_cases[] = {
    { "select :id::bigint", 1, "select $1::bigint", "id", 1 },
    { "select :a, :b, :a", 1, "select $1, $2, $1", "a,b", 1 },
    { "select ':x', \":y\" from t where c = :v", 1,
      "select ':x', \":y\" from t where c = $1", "v", 1 },
    { "select $$ :z ; $$, $t$ :w ; $$ ; $t$, :v", 1,
      "select $$ :z ; $$, $t$ :w ; $$ ; $t$, $1", "v", 1 },
    { "select E'it\\'s :x ;', :y", 1, "select E'it\\'s :x ;', $1", "y", 1 },
    { "select 'it''s :x ;', :y", 1, "select 'it''s :x ;', $1", "y", 1 },
    { "select 1 -- :x ; more\n, :y", 1, "select 1 \n, $1", "y", 1 },
    { "select /* :x ; /* nested ; */ still ; */ 1", 1, "select   1", "", 1 },
    { "select arr[1:2], arr[lo : hi] from t", 1, "select arr[1:2], arr[lo : hi] from t", "", 1 },
    { "select arr[lo:hi] from t", 1, "select arr[lo $1] from t", "hi", 1 },
    { "select f(a := :b)", 1, "select f(a := $1)", "b", 1 },
    { "select :\"x\", a$1 from t", 1, "select :\"x\", a$1 from t", "", 1 },
    { ";; select 1 ;;  ; ", 1, "select 1", "", 1 },
    { "\n\nselect 1;\n\nselect 2", 2, "select 1", "", 3 },
    { "select :a; select :b, :a", 2, "select $1", "a", 1 },
    { "do $$ begin perform 1; end $$; select :a", 2, "do $$ begin perform 1; end $$", "", 1 },
    { "-- task: x\r\nselect :a\r\n", 1, "select $1", "a", 2 },
    { "-- task: x\n\n-- a comment\nselect\n  :a::text[]", 1, "select\n  $1::text[]", "a", 4 },
    { "select \"odd\"\"name:x\", U&'d\\0061t:a' from t", 1,
      "select \"odd\"\"name:x\", U&'d\\0061t:a' from t", "", 1 },
    { "select x::int, y::timestamptz at time zone :tz", 1,
      "select x::int, y::timestamptz at time zone $1", "tz", 1 },
};

static void join_params(const struct rw_sql_stmt *s, char *out, size_t outlen)
{
    out[0] = '\0';
    for (int i = 0; i < s->nparams; i++) {
        if (i)
            strncat(out, ",", outlen - strlen(out) - 1);
        strncat(out, s->param_names[i], outlen - strlen(out) - 1);
    }
}

static void test_rewrite(void **state)
{
    for (size_t i = 0; i < N(rewrite_cases); i++) {
        const struct rewrite_case *c = &rewrite_cases[i];
        struct rw_task *t = parse_ok(c->text);
        char params[256];

        assert_int_equal(t->nstmts, c->nstmts);
        assert_string_equal(t->stmts[0].sql, c->sql0);
        join_params(&t->stmts[0], params, sizeof params);
        assert_string_equal(params, c->params0);
        assert_int_equal(t->stmts[0].line, c->line0);
        assert_string_equal(t->stmts[0].task, t->name);
        rw_task_free(&t);
        assert_null(t);
    }
}

static void test_second_statement(void **state)
{
    struct rw_task *t = parse_ok("select :a;\n\n  select :b, :a;\n");
    char params[64];

    assert_int_equal(t->nstmts, 2);
    assert_string_equal(t->stmts[1].sql, "select $1, $2");
    join_params(&t->stmts[1], params, sizeof params);
    assert_string_equal(params, "b,a");
    assert_int_equal(t->stmts[1].line, 3);
    rw_task_free(&t);
}

/* ------------------------------------------------------------------ header */

static void test_header_defaults(void **state)
{
    struct rw_task *t = parse_ok("select 1");

    assert_string_equal(t->name, "t");
    assert_string_equal(t->path, PATH);
    assert_int_equal(t->run_as, RW_RUN_AS_USER);
    assert_null(t->role);
    assert_int_equal(t->scope, RW_SCOPE_NONE);
    assert_int_equal(t->max_attempts, 0);
    assert_int_equal(t->timeout_s, 0);
    assert_int_equal(t->claims_max_age_s, 0);
    assert_false(t->chain);
    assert_false(t->http_enqueue);
    assert_null(t->builtin);
    rw_task_free(&t);
}

static void test_header_all_user_keys(void **state)
{
    struct rw_task *t = parse_ok(
        "-- Sends the welcome mail. Note: prose comments are fine.\n"
        "-- see https://example.com/docs\n"
        "\n"
        "--task:   app.welcome-mail:v2  \n"
        "-- run_as: moderator_backend\n"
        "-- scope: subject\n"
        "-- max_attempts: 1000\n"
        "-- timeout: 5m\n"
        "-- claims_max_age: 2d\n"
        "-- chain: allow\n"
        "-- enqueue: user\n"
        "select :subject");

    assert_string_equal(t->name, "app.welcome-mail:v2");
    assert_int_equal(t->run_as, RW_RUN_AS_ROLE);
    assert_string_equal(t->role, "moderator_backend");
    assert_int_equal(t->scope, RW_SCOPE_SUBJECT);
    assert_int_equal(t->max_attempts, 1000);
    assert_int_equal(t->timeout_s, 300);
    assert_int_equal(t->claims_max_age_s, 2 * 86400);
    assert_true(t->chain);
    assert_true(t->http_enqueue);
    assert_int_equal(t->stmts[0].line, 12);
    rw_task_free(&t);
}

struct duration_case {
    const char *value;
    int seconds;
};

static void test_header_durations(void **state)
{
    static const struct duration_case cases[] = {
        { "1", 1 }, { "45", 45 }, { "30s", 30 }, { "5m", 300 }, { "1h", 3600 },
        { "24h", 86400 }, { "1d", 86400 },
    };
    char text[128];

    for (size_t i = 0; i < N(cases); i++) {
        struct rw_task *t;

        snprintf(text, sizeof text, "-- timeout: %s\n-- chain: deny\n-- enqueue: admin\nselect 1",
                 cases[i].value);
        t = parse_ok(text);
        assert_int_equal(t->timeout_s, cases[i].seconds);
        assert_false(t->chain);
        assert_false(t->http_enqueue);
        rw_task_free(&t);
    }
}

static void test_header_system_scopes(void **state)
{
    struct rw_task *t = parse_ok("-- run_as: system\n-- scope: global\ndelete from t");

    assert_int_equal(t->run_as, RW_RUN_AS_SYSTEM);
    assert_int_equal(t->scope, RW_SCOPE_GLOBAL);
    rw_task_free(&t);
    t = parse_ok("-- run_as: system\n-- scope: subject\n"
                 "update t set n = n + 1 where owner = :subject;\n"
                 "insert into log (who, what) values (:subject, :what)");
    assert_int_equal(t->scope, RW_SCOPE_SUBJECT);
    assert_int_equal(t->nstmts, 2);
    rw_task_free(&t);
}

/* A key-looking comment after the SQL has started is part of the body. */
static void test_header_ends_at_sql(void **state)
{
    struct rw_task *t = parse_ok("select 1;\n-- run_as: system\nselect 2");

    assert_int_equal(t->run_as, RW_RUN_AS_USER);
    assert_int_equal(t->nstmts, 2);
    rw_task_free(&t);
}

/* ------------------------------------------------------------------ errors */

struct error_case {
    const char *text;
    const char *error;   /* expected substring of the message */
};

static const struct error_case error_cases[] = {
    /* header */
    { "-- foo: bar\nselect 1", PATH ":1: unknown header key \"foo\"; known keys: task," },
    { "-- task: a\n-- task: b\nselect 1",
      PATH ":2: duplicate header key task (first given at line 1)" },
    { "-- Run_as: system\nselect 1", PATH ":1: header key \"Run_as\" must be written in lower case" },
    { "-- run_as:\nselect 1", PATH ":1: empty value for run_as; allowed: user, system" },
    { "-- run_as: pg_read_all_data\nselect 1", ":1: bad value \"pg_read_all_data\" for run_as" },
    { "-- run_as: 9lives\nselect 1", ":1: bad value \"9lives\" for run_as; allowed:" },
    { "-- run_as: public\nselect 1", ":1: bad value \"public\" for run_as" },
    { "-- run_as: a-b\nselect 1", ":1: bad value \"a-b\" for run_as" },
    { "-- run_as: system\n-- scope: all\nselect 1", ":2: bad value \"all\" for scope; allowed: subject or global" },
    { "-- max_attempts: 0\nselect 1", ":1: bad value \"0\" for max_attempts; allowed: a whole number from 1 to 1000" },
    { "-- max_attempts: 1001\nselect 1", "bad value \"1001\" for max_attempts" },
    { "-- max_attempts: -1\nselect 1", "bad value \"-1\" for max_attempts" },
    { "-- max_attempts: 5x\nselect 1", "bad value \"5x\" for max_attempts" },
    { "-- timeout: 0s\nselect 1", ":1: bad value \"0s\" for timeout; allowed: a duration from 1s to 24h" },
    { "-- timeout: 25h\nselect 1", "bad value \"25h\" for timeout" },
    { "-- timeout: 1.5h\nselect 1", "bad value \"1.5h\" for timeout" },
    { "-- timeout: 5 m\nselect 1", "bad value \"5 m\" for timeout" },
    { "-- timeout: 5ms\nselect 1", "bad value \"5ms\" for timeout" },
    { "-- timeout: 99999999999999999999\nselect 1", "for timeout" },
    { "-- claims_max_age: 31d\nselect 1", "bad value \"31d\" for claims_max_age; allowed: a duration from 1s to 30d" },
    { "-- chain: yes\nselect 1", ":1: bad value \"yes\" for chain; allowed: allow or deny" },
    { "-- enqueue: anyone\nselect 1", "bad value \"anyone\" for enqueue; allowed: user" },
    { "-- task: a b\nselect 1", "bad value \"a b\" for task; allowed: letters, digits" },
    { "-- run_as: system\nselect 1", PATH ":1: run_as: system needs a declared scope" },
    { "-- scope: global\nselect 1", PATH ":1: scope: global is only for run_as: system tasks" },
    { "-- run_as: system\n-- scope: global\n-- chain: allow\nselect 1",
      PATH ":3: chain applies only to user and role tasks" },
    { "-- run_as: system\n-- scope: global\n-- enqueue: user\nselect 1", ":3: enqueue applies only" },
    { "-- run_as: system\n-- scope: global\n-- claims_max_age: 1h\nselect 1", ":3: claims_max_age applies only" },
    /* body */
    { "-- task: x\n", PATH ":2: no SQL statement after the header" },
    { "-- task: x\n/* only a comment */ ;\n", "no SQL statement" },
    { "select 1;\nselect 'abc", PATH ":2: unterminated quoted string" },
    { "select E'abc\\'", PATH ":1: unterminated quoted string" },
    { "select \"abc", PATH ":1: unterminated quoted identifier" },
    { "select $x$ abc $y$", PATH ":1: unterminated dollar-quoted string" },
    { "select 1 /* a /* b */", PATH ":1: unterminated /* comment" },
    { "select * from t where id = $1", PATH ":1: positional parameters like $1 are not allowed; use :name" },
    { "select :aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
      "parameter name is longer than 63 characters" },
    /* refused statements */
    { "begin;\nselect 1", PATH ":1: a task runs inside the one transaction" },
    { "select 1;\n\n  BEGIN", PATH ":3: a task runs inside" },
    { "/* note */ start transaction", "a task runs inside" },
    { "select 1; commit", PATH ":1: the worker commits" },
    { "select 1;\nend", PATH ":2: the worker commits" },
    { "rollback", "the worker commits" },
    { "rollback to savepoint s", "the worker commits" },
    { "abort", "the worker commits" },
    { "prepare transaction 'x'", "prepared statements and prepared transactions" },
    { "prepare q as select 1", "prepared statements" },
    { "commit prepared 'x'", "the worker commits" },
    { "deallocate all", "the worker's prepared statements" },
    { "set search_path = app", "changes the session of a pooled connection that later jobs reuse; use SET LOCAL" },
    { "set session statement_timeout = 0", "use SET LOCAL" },
    { "set session authorization admin", "changing the role inside a task" },
    { "set role admin", "changing the role inside a task" },
    { "set local role admin", "changing the role inside a task" },
    { "set local request.jwt.claims = '{}'", "request.* settings carry the job's claims" },
    { "set local \"request.jwt.claims\" to '{}'", "request.* settings" },
    { "set local rlsworker.chain_token = 'x'", "rlsworker.* settings (such as the chain token)" },
    { "SET LOCAL \"RLSWORKER\".\"CHAIN_TOKEN\" TO 'x'", "rlsworker.* settings" },
    { "reset all", "use SET LOCAL" },
    { "discard all", "use SET LOCAL" },
    { "listen ch", "a LISTEN outlives the job" },
    { "unlisten *", "remove it" },
    { "load 'auto_explain'", "LOAD changes" },
    { "vacuum t", "cannot run inside a transaction block" },
    { "create database x", "cannot run inside a transaction block" },
    { "drop tablespace x", "cannot run inside a transaction block" },
    { "alter system set work_mem = '1GB'", "cannot run inside a transaction block" },
    { "create unique index concurrently i on t (a)", "cannot run inside a transaction block" },
    { "copy t from stdin", "COPY protocol" },
    { "create temp table x (a int)", "ON COMMIT DROP" },
    { "create or replace temporary view v as select 1", "ON COMMIT DROP" },
    { "select 1 into temp x", "a temporary object outlives the job" },
    { "declare c cursor with hold for select 1", "WITH HOLD cursor" },
    { "select set_config('request.jwt.claims', :c, true)", "set_config() is refused" },
    { "select pg_catalog.SET_CONFIG ('a', 'b', true)", "set_config() is refused" },
    { "do $$ begin perform set_config('x', 'y', true); end $$", "set_config() is refused" },
    /* spellings the server resolves to the same names: quotes, U& escapes
     * (with UESCAPE), mixed case, comments between tokens */
    { "set local \"role\" = 'admin'", "changing the role inside a task" },
    { "SET LOCAL \"ROLE\" TO admin", "changing the role inside a task" },
    { "set local U&\"r\\006fle\" = admin", "changing the role inside a task" },
    { "set local \"session_authorization\" = 'admin'", "changing the role inside a task" },
    { "set local u&\"session\\005Fauthorization\" = 'admin'", "changing the role inside a task" },
    { "select 1;\n\nset /* a */ local -- b\n \"Role\" = admin", PATH ":3: changing the role" },
    { "select U&\"set\\005fconfig\"('request.jwt.claims', :c, true)", "set_config() is refused" },
    { "select\n  u&\"SET\\005FCONFIG\" ('a', 'b', true)", PATH ":1: set_config() is refused" },
    { "select pg_catalog.U&\"set!005fconfig\" UESCAPE '!' ('a', 'b', true)",
      "set_config() is refused" },
    { "select U&\"se!0074_config\" /* c */ uescape '!'('a', 'b', true)", "set_config() is refused" },
    { "select \"set_config\"('a', 'b', true)", "set_config() is refused" },
    { "select U&\"\\+000073et_config\"('a', 'b', true)", "set_config() is refused" },
    { "set local U&\"request.jwt.claims\" = '{}'", "request.* settings carry the job's claims" },
    { "set local U&\"request\\002ejwt\\002eclaims\" = '{}'", "request.* settings" },
    { "set local U&\"\\0052EQUEST\".jwt.\"claims\" = '{}'", "request.* settings" },
    { "set local U&\"req#0075est.jwt.claims\" uescape '#' = '{}'", "request.* settings" },
    { "SeT lOcAl /* x */ \"Request\" /* y */ . \"JWT\" . claims to '{}'", "request.* settings" },
    { "set local U&\"rlsworker\\002echain_token\" = 'x'", "rlsworker.* settings" },
    /* scope: subject */
    { "-- run_as: system\n-- scope: subject\nupdate t set x = 1 where u = :subject;\ndelete from t;",
      PATH ":4: statement does not use :subject, but the task declares scope: subject" },
    { "-- run_as: system\n-- scope: subject\nselect ':subject' -- :subject\n",
      PATH ":3: statement does not use :subject" },
};

static void test_errors(void **state)
{
    for (size_t i = 0; i < N(error_cases); i++) {
        const struct error_case *c = &error_cases[i];
        struct rw_task *t = (struct rw_task *)1;
        char err[512] = "";

        if (rw_task_parse(PATH, c->text, &t, err, sizeof err) == 0)
            fail_msg("case %zu <<%s>> parsed but should fail with \"%s\"", i, c->text, c->error);
        assert_null(t);
        if (!strstr(err, c->error))
            fail_msg("case %zu <<%s>>: got \"%s\", want \"%s\"", i, c->text, err, c->error);
        if (strncmp(err, PATH ":", strlen(PATH) + 1) != 0)
            fail_msg("case %zu: error does not name the file: %s", i, err);
    }
}

/* Statements that look close to refused ones but are fine in a transaction. */
static void test_allowed_statements(void **state)
{
    static const char *const ok[] = {
        "savepoint s", "release savepoint s", "set local statement_timeout = '5s'",
        "SET LOCAL search_path TO app, public", "set constraints all deferred",
        "set transaction isolation level serializable",
        "create temp table x (a int) on commit drop", "select temp from weather",
        "notify ch, 'x'", "declare c cursor for select 1",
        "refresh materialized view concurrently mv",
        "select current_setting('request.jwt.claims', true)", "call app.tidy(:n)",
        "with moved as (delete from a returning *) insert into b select * from moved",
        "select 'begin' ; select 'commit'", "select beginning from ends",
        "set local \"search_path\" = app", "set local U&\"st\\0061tement_timeout\" = '5s'",
        "select U&\"set\\005fconfigs\" from t", "select \"set_config_log\" from t",
        "set local \"Rolex\" = 'x'",
    };

    for (size_t i = 0; i < N(ok); i++) {
        struct rw_task *t = parse_ok(ok[i]);

        rw_task_free(&t);
    }
}

static void test_bad_file_name(void **state)
{
    struct rw_task *t = NULL;
    char err[512];

    assert_int_equal(rw_task_parse("tasks/my task.sql", "select 1", &t, err, sizeof err), -1);
    assert_non_null(strstr(err, "tasks/my task.sql:1: the file name \"my task.sql\" is not a valid task name"));
    assert_int_equal(rw_task_parse("tasks/my task.sql", "-- task: mine\nselect 1", &t, err, sizeof err), 0);
    assert_string_equal(t->name, "mine");
    rw_task_free(&t);
    t = parse_ok("select 1");
    rw_task_free(&t);
}

static void test_too_large(void **state)
{
    char *text = malloc(RW_TASK_MAX_BYTES + 2);
    struct rw_task *t = NULL;
    char err[256];

    memset(text, ' ', RW_TASK_MAX_BYTES + 1);
    memcpy(text, "select 1", 8);
    text[RW_TASK_MAX_BYTES + 1] = '\0';
    assert_int_equal(rw_task_parse(PATH, text, &t, err, sizeof err), -1);
    assert_non_null(strstr(err, "larger than"));
    text[RW_TASK_MAX_BYTES] = '\0';
    assert_int_equal(rw_task_parse(PATH, text, &t, err, sizeof err), 0);
    rw_task_free(&t);
    free(text);
}

/* ----------------------------------------------------------------- binding */

struct bind_expect {
    const char *name;
    const char *value;   /* NULL: SQL NULL */
};

static void check_binds(const char *sql, const char *payload_json, const char *subject,
                        const struct bind_expect *want, int nwant)
{
    struct rw_task *t = parse_ok(sql);
    json_t *payload = payload_json ? json_loads(payload_json, JSON_ALLOW_NUL, NULL) : NULL;
    struct rw_bind b;
    char err[256] = "";

    assert_int_equal(t->stmts[0].nparams, nwant);
    if (rw_task_bind(&t->stmts[0], payload, subject, 77, 3, &b, err, sizeof err) != 0)
        fail_msg("bind failed: %s", err);
    for (int i = 0; i < nwant; i++) {
        assert_string_equal(t->stmts[0].param_names[i], want[i].name);
        if (!want[i].value)
            assert_null(b.values[i]);
        else if (!b.values[i])
            fail_msg("%s bound NULL, want %s", want[i].name, want[i].value);
        else
            assert_string_equal(b.values[i], want[i].value);
    }
    rw_task_bind_free(&b);
    assert_null(b.values);
    json_decref(payload);
    rw_task_free(&t);
}

static void test_bind_json_types(void **state)
{
    static const struct bind_expect want[] = {
        { "s", "text; drop table x" }, { "i", "42" }, { "big", "9007199254740993" },
        { "neg", "-7" }, { "r", "0.1" }, { "r2", "1e+300" }, { "r3", "0.30000000000000004" },
        { "t", "true" }, { "f", "false" }, { "n", NULL }, { "o", "{\"a\":[1,2]}" },
        { "arr", "[1,\"x\"]" }, { "empty", "" },
    };

    check_binds("select :s, :i, :big, :neg, :r, :r2, :r3, :t, :f, :n, :o, :arr, :empty",
                "{\"s\":\"text; drop table x\",\"i\":42,\"big\":9007199254740993,\"neg\":-7,"
                "\"r\":0.1,\"r2\":1e300,\"r3\":0.30000000000000004,\"t\":true,\"f\":false,"
                "\"n\":null,\"o\":{\"a\":[1,2]},\"arr\":[1,\"x\"],\"empty\":\"\"}",
                "u1", want, (int)N(want));
}

/* Reserved names come from the job, never from the payload, even when the
 * payload has keys of the same names. */
static void test_bind_reserved(void **state)
{
    static const struct bind_expect want[] = {
        { "subject", "user-1" }, { "job_id", "77" }, { "attempt", "3" },
        { "payload", "{\"subject\":\"evil\",\"job_id\":1}" },
    };
    static const struct bind_expect want_null[] = { { "subject", NULL }, { "payload", "{}" } };

    check_binds("select :subject, :job_id, :attempt, :payload",
                "{\"subject\":\"evil\",\"job_id\":1}", "user-1", want, (int)N(want));
    check_binds("select :subject, :payload", NULL, NULL, want_null, (int)N(want_null));
}

static void bind_error(const char *sql, const char *payload_json, const char *want)
{
    struct rw_task *t = parse_ok(sql);
    json_t *payload = payload_json ? json_loads(payload_json, JSON_ALLOW_NUL, NULL) : NULL;
    struct rw_bind b;
    char err[256] = "";

    assert_int_equal(rw_task_bind(&t->stmts[t->nstmts - 1], payload, "u", 1, 1, &b, err,
                                  sizeof err), -1);
    if (!strstr(err, want))
        fail_msg("got \"%s\", want \"%s\"", err, want);
    assert_null(b.values);
    assert_null(b.owned);
    json_decref(payload);
    rw_task_free(&t);
}

static void test_bind_errors(void **state)
{
    bind_error("select 1;\nselect :a, :missing", "{\"a\":1}",
               "payload has no \"missing\" (needed by task t, line 2)");
    bind_error("select 1;\nselect :a", NULL, "payload has no \"a\" (needed by task t, line 2)");
    bind_error("select 1;\nselect :a", "{\"a\":\"x\\u0000y\"}", "contains a NUL character");
}

/* Only the second statement's parameters are bound when binding it. */
static void test_bind_second_statement(void **state)
{
    struct rw_task *t = parse_ok("select :gone; select :b::int + :b");
    json_t *payload = json_pack("{s:i}", "b", 5);
    struct rw_bind b;
    char err[256];

    assert_int_equal(rw_task_bind(&t->stmts[1], payload, NULL, 1, 1, &b, err, sizeof err), 0);
    assert_int_equal(t->stmts[1].nparams, 1);
    assert_string_equal(b.values[0], "5");
    rw_task_bind_free(&b);
    json_decref(payload);
    rw_task_free(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rewrite),
        cmocka_unit_test(test_second_statement),
        cmocka_unit_test(test_header_defaults),
        cmocka_unit_test(test_header_all_user_keys),
        cmocka_unit_test(test_header_durations),
        cmocka_unit_test(test_header_system_scopes),
        cmocka_unit_test(test_header_ends_at_sql),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_allowed_statements),
        cmocka_unit_test(test_bad_file_name),
        cmocka_unit_test(test_too_large),
        cmocka_unit_test(test_bind_json_types),
        cmocka_unit_test(test_bind_reserved),
        cmocka_unit_test(test_bind_errors),
        cmocka_unit_test(test_bind_second_statement),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
