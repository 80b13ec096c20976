/* The options table: defaults, bounds, file syntax, precedence, flags. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "worker/base/config.h"

static char *write_file(const char *text)
{
    static char path[64];
    snprintf(path, sizeof path, "/tmp/rw_test_config_%d.conf", (int)getpid());
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    return path;
}

static void test_every_option_has_a_valid_default_and_doc(void **state)
{
    struct rw_config cfg;
    assert_int_equal(rw_config_init(&cfg), 0);
    for (int i = 0; i < rw_options_count; i++) {
        const struct rw_option *o = &rw_options[i];
        assert_non_null(o->doc);
        assert_true(strlen(o->doc) > 10);
        if (o->type == RW_OPT_INT) {
            int v = *(int *)((char *)&cfg + o->offset);
            assert_non_null(o->def);
            assert_true(v >= o->min && v <= o->max);
        }
    }
    assert_int_equal(cfg.concurrency, 10);
    assert_string_equal(cfg.tasks_dir, "./tasks");
    assert_null(cfg.database_url);
    rw_config_free(&cfg);
}

static void test_set_checks_values(void **state)
{
    static const struct { const char *name, *value; int ok; const char *msg; } cases[] = {
        {"concurrency", "50", 0, NULL},
        {"concurrency", "0", -1, "between 1 and 1000"},
        {"concurrency", "1001", -1, "between 1 and 1000"},
        {"concurrency", "ten", -1, "needs a whole number"},
        {"concurrency", "10x", -1, "needs a whole number"},
        {"concurrency", "", -1, "needs a whole number"},
        {"lock-timeout", "30", 0, NULL},
        {"lock_timeout", "1", -1, "between 2 and 3600"},
        {"no_such_thing", "1", -1, "unknown option \"no_such_thing\""},
        {"role.moderator_backend", "postgres://m@h/db", 0, NULL},
        {"role.bad name", "x", -1, "not a plain identifier"},
        {"webhook.stripe.secret", "whsec_abc", 0, NULL},
        {"webhook.stripe.task", "stripe_event", 0, NULL},
        {"webhook.stripe.color", "red", -1, "webhook.<source>.secret"},
        {"tasks", "/srv/tasks", 0, NULL},
        {"log_level", "$RW_TEST_UNSET_VAR", -1, "not set"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct rw_config cfg;
        char err[256] = "";
        rw_config_init(&cfg);
        int rc = rw_config_set(&cfg, cases[i].name, cases[i].value, err, sizeof err);
        if (rc != cases[i].ok || (cases[i].msg && !strstr(err, cases[i].msg)))
            fail_msg("case %zu (%s=%s): rc %d, err \"%s\"", i, cases[i].name, cases[i].value,
                     rc, err);
        rw_config_free(&cfg);
    }
}

static void test_file_errors_name_the_line(void **state)
{
    struct rw_config cfg;
    char err[512];
    const char *path = write_file("# comment\n\nconcurrency = 4\npoll_interval: 5\n");

    rw_config_init(&cfg);
    assert_int_equal(rw_config_load_file(&cfg, path, err, sizeof err), -1);
    assert_non_null(strstr(err, ":4: expected \"key = value\""));
    rw_config_free(&cfg);

    path = write_file("concurrency = 4\n  claim_batch = 0 \n");
    rw_config_init(&cfg);
    assert_int_equal(rw_config_load_file(&cfg, path, err, sizeof err), -1);
    assert_non_null(strstr(err, ":2: option \"claim_batch\" must be between 1 and 1000"));
    rw_config_free(&cfg);

    path = write_file("concurrency = 4\nrole.admin_backend = $RW_TEST_URL\n");
    setenv("RW_TEST_URL", "postgres://a@h/d", 1);
    rw_config_init(&cfg);
    assert_int_equal(rw_config_load_file(&cfg, path, err, sizeof err), 0);
    assert_int_equal(cfg.concurrency, 4);
    assert_string_equal(rw_config_role_url(&cfg, "admin_backend"), "postgres://a@h/d");
    rw_config_free(&cfg);
    unlink(path);
}

static void test_precedence_file_env_flag(void **state)
{
    struct rw_config cfg;
    char err[512];
    const char *path = write_file("concurrency = 4\nclaim_batch = 7\npool_size = 3\n");
    char *argv[] = {"run", "--config", (char *)path, "--concurrency", "9", "--once",
                    "--claim-batch=8", "--role", "x_backend=postgres://x@h/d", NULL};
    int argc = 9;

    setenv("RLSWORKER_CLAIM_BATCH", "6", 1);
    setenv("RLSWORKER_POOL_SIZE", "5", 1);
    assert_int_equal(rw_config_from_args(&cfg, &argc, argv, err, sizeof err), 0);
    assert_int_equal(cfg.concurrency, 9);      /* flag over file */
    assert_int_equal(cfg.claim_batch, 8);      /* flag over env over file */
    assert_int_equal(cfg.pool_size, 5);        /* env over file */
    assert_string_equal(rw_config_role_url(&cfg, "x_backend"), "postgres://x@h/d");
    assert_int_equal(argc, 2);                 /* only the subcommand's own flag left */
    assert_string_equal(argv[1], "--once");
    rw_config_free(&cfg);
    unsetenv("RLSWORKER_CLAIM_BATCH");
    unsetenv("RLSWORKER_POOL_SIZE");
    unlink(path);

    char *bad[] = {"run", "--concurrency", NULL};
    argc = 2;
    assert_int_equal(rw_config_from_args(&cfg, &argc, bad, err, sizeof err), -2);
    assert_non_null(strstr(err, "--concurrency needs a value"));
    rw_config_free(&cfg);
}

/* claim_settings takes one of its values; http_sign.<host> keeps a secret
 * per normalized host and never echoes a bad one. */
static void test_choices_and_http_sign(void **state)
{
    struct rw_config cfg;
    char err[256];

    assert_int_equal(rw_config_init(&cfg), 0);
    assert_string_equal(cfg.claim_settings, "off");
    assert_int_equal(rw_config_set(&cfg, "claim_settings", "all", err, sizeof err), 0);
    assert_string_equal(cfg.claim_settings, "all");
    assert_int_equal(rw_config_set(&cfg, "claim_settings", "ALL", err, sizeof err), -1);
    assert_string_equal(err, "option \"claim_settings\" must be one of off, sub, all, "
                        "got \"ALL\"");
    assert_string_equal(cfg.claim_settings, "all");

    assert_int_equal(rw_config_set(&cfg, "http_sign.Hooks.Example.COM.",
                                   "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", err, sizeof err), 0);
    assert_int_equal(rw_config_set(&cfg, "http_sign.[::1]", "raw-secret-bytes", err,
                                   sizeof err), 0);
    assert_string_equal(rw_config_http_sign_secret(&cfg, "hooks.example.com"),
                        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
    assert_string_equal(rw_config_http_sign_secret(&cfg, "HOOKS.example.com."),
                        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
    assert_string_equal(rw_config_http_sign_secret(&cfg, "[::1]"), "raw-secret-bytes");
    assert_string_equal(rw_config_http_sign_secret(&cfg, "::1"), "raw-secret-bytes");
    assert_null(rw_config_http_sign_secret(&cfg, "example.com"));
    assert_null(rw_config_http_sign_secret(&cfg, "evil.hooks.example.com"));
    assert_int_equal(rw_config_set(&cfg, "http_sign.a.test", "whsec_###secret###", err,
                                   sizeof err), -1);
    assert_non_null(strstr(err, "http_sign.a.test: the secret must be whsec_"));
    assert_null(strstr(err, "###secret###"));
    assert_int_equal(rw_config_set(&cfg, "http_sign.a b", "x", err, sizeof err), -1);
    assert_int_equal(rw_config_set(&cfg, "http_sign.", "x", err, sizeof err), -1);
    assert_int_equal(rw_config_set(&cfg, "http_sign.a.test", "", err, sizeof err), -1);
    assert_int_equal(cfg.nhttp_sign, 2);
    rw_config_free(&cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_option_has_a_valid_default_and_doc),
        cmocka_unit_test(test_set_checks_values),
        cmocka_unit_test(test_file_errors_name_the_line),
        cmocka_unit_test(test_precedence_file_env_flag),
        cmocka_unit_test(test_choices_and_http_sign),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
