/* `scope: subject` on a system task (issue 9, hole 7): each statement's rows
 * must be bounded by `column = :subject` joined with AND at the top of its
 * WHERE; a :subject only in a cast, IS NOT NULL, OR or a call is refused.
 * What the check proves and what not: docs/security.md. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "jobs/task/taskfile.h"

#define HEADER "-- run_as: system\n-- scope: subject\n"
#define N(a) (sizeof (a) / sizeof (a)[0])

static const char *const accepted[] = {
    "delete from todos where user_id = :subject and is_complete",
    "delete from todos where is_complete and user_id = :subject",
    "delete from todos where :subject = user_id",
    "delete from todos t where t.user_id = :subject",
    "delete from public.todos t where t.\"user_id\" = :subject::text",
    "delete from todos where user_id = :subject::pg_catalog.text and (a or b)",
    "update todos set n = n + 1 where owner = :subject",
    "update todos set n = 1 where id between 1 and 5 and owner = :subject",
    "update todos set n = 1 where owner = :subject and id in (select id from x where y or z)",
    "select count(*) from todos where user_id = :subject group by 1 order by 1",
    "select * from todos where user_id = :subject for update",
    "select 1 from a where u = :subject union all select 2 from b where b.u = :subject",
    "insert into log (who, what) values (:subject, 'x')",
    "insert into log (who) values (:subject) on conflict do nothing",
    "insert into log (who) select u from t where u = :subject",
    "insert into log (who) values (:subject) on conflict (who) do update set n = log.n + 1 "
    "where log.who = :subject",
    "with d as (delete from t where u = :subject returning id) "
    "select count(*) from d where owner = :subject",
    "delete from todos -- where nothing\n where user_id = :subject",
};

static const struct { const char *sql, *why; } refused[] = {
    /* the example: every user's rows */
    {"delete from todos where :subject::text is not null", "no `column = :subject`"},
    {"delete from todos where user_id = :subject or true", "OR at the top level"},
    {"delete from todos where true or user_id = :subject", "OR at the top level"},
    {"delete from todos where user_id <> :subject", "no `column = :subject`"},
    {"delete from todos where user_id >= :subject", "no `column = :subject`"},
    {"delete from todos where length(:subject) > 0", "no `column = :subject`"},
    {"delete from todos where (user_id = :subject or true)", "no `column = :subject`"},
    {"delete from todos where not user_id = :subject", "no `column = :subject`"},
    {"delete from todos where user_id = :subject is not null", "no `column = :subject`"},
    {"delete from todos where null = :subject", "no `column = :subject`"},
    {"delete from todos where current_user = :subject", "no `column = :subject`"},
    {"delete from todos where 'x' = :subject", "no `column = :subject`"},
    {"delete from todos where :subject = :subject", "no `column = :subject`"},
    {"delete from todos where user_id = coalesce(:subject, user_id)", "no `column = :subject`"},
    {"select :subject", "has no WHERE"},
    {"select pg_notify('c', :subject)", "has no WHERE"},
    {"update todos set owner = :subject", "has no WHERE"},
    {"update todos set owner = :subject where true", "no `column = :subject`"},
    {"select 1 from a where u = :subject union select 2 from b", "a branch of its UNION"},
    {"insert into log (who) select :subject from t", "has no WHERE"},
    {"insert into log (who) values (:subject) on conflict (who) do update set n = 1",
     "has no WHERE"},
    {"with d as (delete from todos) select 1 from t where u = :subject", "has no WHERE"},
    {"with d as (delete from todos where :subject is not null returning 1) "
     "select 1 from t where u = :subject", "no `column = :subject`"},
    {"delete from todos where user_id = ':subject' and :subject::int > 0", "no `column = :subject`"},
};

static void test_accepted(void **state)
{
    char text[512], err[512];

    for (size_t i = 0; i < N(accepted); i++) {
        struct rw_task *t = NULL;
        snprintf(text, sizeof text, HEADER "%s", accepted[i]);
        if (rw_task_parse("t.sql", text, &t, err, sizeof err) < 0)
            fail_msg("case %zu (%s): refused: %s", i, accepted[i], err);
        rw_task_free(&t);
    }
}

static void test_refused(void **state)
{
    char text[512], err[512];

    for (size_t i = 0; i < N(refused); i++) {
        struct rw_task *t = NULL;
        snprintf(text, sizeof text, HEADER "%s", refused[i].sql);
        if (rw_task_parse("t.sql", text, &t, err, sizeof err) == 0) {
            rw_task_free(&t);
            fail_msg("case %zu (%s): accepted", i, refused[i].sql);
        }
        if (!strstr(err, refused[i].why) || !strstr(err, "t.sql:3: ") ||
            !strstr(err, "scope: global"))
            fail_msg("case %zu (%s): error \"%s\" lacks \"%s\"", i, refused[i].sql, err,
                     refused[i].why);
    }
}

/* The error names the line of the offending statement in a longer file. */
static void test_line_of_the_statement(void **state)
{
    struct rw_task *t = NULL;
    char err[512];

    assert_int_equal(rw_task_parse("t.sql", HEADER "delete from a where u = :subject;\n\n"
                                   "delete from b\n  where :subject::text is not null;\n",
                                   &t, err, sizeof err), -1);
    assert_non_null(strstr(err, "t.sql:6: statement is not bounded by :subject"));
}

/* User and role tasks keep the spelling check: row-level security bounds them. */
static void test_only_system_tasks_need_the_filter(void **state)
{
    struct rw_task *t = NULL;
    char err[512];

    assert_int_equal(rw_task_parse("t.sql", "-- run_as: user\n-- scope: subject\nselect :subject",
                                   &t, err, sizeof err), 0);
    rw_task_free(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accepted),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_line_of_the_statement),
        cmocka_unit_test(test_only_system_tasks_need_the_filter),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
