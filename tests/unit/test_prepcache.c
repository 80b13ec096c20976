/* The statements a group prepares (jobs/exec/prepcache.c): one entry per
 * distinct SQL text, named once, and names never repeat within a process
 * (a statement a transaction pooler left on a server session must not
 * collide with a later group's). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "jobs/exec/prepcache.h"

static void test_one_entry_per_text(void **state)
{
    (void)state;
    struct rw_prepcache c = {0};
    char sql[64];

    int a = rw_prepcache_get(&c, "savepoint j");
    int b = rw_prepcache_get(&c, "insert into todos (task) values ($1)");
    assert_int_equal(a, 0);
    assert_int_equal(b, 1);
    /* the same text, even from another buffer, is the same entry */
    snprintf(sql, sizeof sql, "%s", "savepoint j");
    assert_int_equal(rw_prepcache_get(&c, sql), a);
    assert_false(c.v[a].ready);
    assert_false(c.v[a].sending);
    assert_string_not_equal(c.v[a].name, c.v[b].name);
    assert_int_equal(strncmp(c.v[a].name, "rlsworker_", 10), 0);
    /* more texts than the first allocation holds */
    for (int i = 0; i < 40; i++) {
        snprintf(sql, sizeof sql, "select %d", i);
        assert_int_equal(rw_prepcache_get(&c, sql), 2 + i);
    }
    assert_int_equal(c.n, 42);
    assert_string_equal(c.v[a].sql, "savepoint j");
    rw_prepcache_free(&c);
    assert_int_equal(c.n, 0);
    assert_null(c.v);
}

static void test_names_never_repeat_across_groups(void **state)
{
    (void)state;
    struct rw_prepcache g1 = {0}, g2 = {0};

    rw_prepcache_get(&g1, "reset all");
    rw_prepcache_get(&g2, "reset all");
    assert_string_not_equal(g1.v[0].name, g2.v[0].name);
    rw_prepcache_free(&g1);
    rw_prepcache_free(&g2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_entry_per_text),
        cmocka_unit_test(test_names_never_repeat_across_groups),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
