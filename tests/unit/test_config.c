/* tests/unit/test_config.c - proto/config.c: defaults, parsing, errors. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../proto/config.h"

static char *write_temp(const char *text)
{
    static char path[64];
    int fd;

    strcpy(path, "/tmp/verona-config-XXXXXX");
    fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, text, strlen(text)), (int)strlen(text));
    close(fd);
    return path;
}

START_TEST(defaults_match_spec)
{
    struct config cfg;
    char err[CONFIG_ERROR_MAX];

    config_defaults(&cfg);
    ck_assert_int_eq(config_finish(&cfg, err, sizeof(err)), 0);
    ck_assert_str_eq(cfg.listen, "127.0.0.1:8080");
    ck_assert_int_eq(cfg.health_interval_ms, 500);
    ck_assert_int_eq(cfg.health_timeout_ms, 2000);
    ck_assert_int_eq(cfg.argon2_memlimit_kib, 19456);
    ck_assert_int_eq(cfg.throttle_account_address.count, 5);
    ck_assert_int_eq(cfg.throttle_account_address.seconds, 900);
    ck_assert_int_eq(cfg.throttle_account.seconds, 86400);
    ck_assert_int_eq(cfg.session_ttl_s, 43200);
    ck_assert_int_ge(cfg.workers, 1);
    ck_assert_int_eq(cfg.registration_open, 1);
}
END_TEST

/* Two hash threads a CPU, fewer if half the soft limit cannot hold a
 * running hash a thread. */
START_TEST(hash_threads_follow_cpus_and_memory)
{
    struct config cfg;
    char err[CONFIG_ERROR_MAX];
    int cpus = config_cpus();

    ck_assert_int_ge(cpus, 1);
    config_defaults(&cfg);
    ck_assert_int_eq(config_finish(&cfg, err, sizeof(err)), 0);
    ck_assert_int_eq(cfg.hash_threads, cpus <= 3 ? 2 * cpus : 6); /* 128 MiB / 19 MiB = 6 */
    config_defaults(&cfg);
    ck_assert_int_eq(config_load_string(&cfg, "memory_soft_limit_mb = 40\n", "t", err, sizeof(err)), 0);
    ck_assert_int_eq(config_finish(&cfg, err, sizeof(err)), 0);
    ck_assert_int_eq(cfg.hash_threads, 1);
    config_defaults(&cfg);
    ck_assert_int_eq(config_load_string(&cfg, "argon2_memlimit_kib = 8\nworkers = 4\n", "t", err, sizeof(err)), 0);
    ck_assert_int_eq(config_finish(&cfg, err, sizeof(err)), 0);
    ck_assert_int_eq(cfg.hash_threads, cpus <= 64 ? 2 * cpus : 128); /* not divided by workers */
    config_defaults(&cfg);
    ck_assert_int_eq(config_load_string(&cfg, "hash_threads = 3\n", "t", err, sizeof(err)), 0);
    ck_assert_int_eq(config_finish(&cfg, err, sizeof(err)), 0);
    ck_assert_int_eq(cfg.hash_threads, 3);
}
END_TEST

START_TEST(file_values_and_relative_paths)
{
    struct config cfg;
    char err[CONFIG_ERROR_MAX];
    char *path = write_temp("# comment\nworkers = 3\nadmin_socket = run/v.sock\n"
                            "throttle_address = 7/60\ntrusted_proxies = 10.0.0.0/8, ::1\n"
                            "registration = closed\nlisten = [::1]:9000\n");

    config_defaults(&cfg);
    ck_assert_int_eq(config_load_file(&cfg, path, err, sizeof(err)), 0);
    ck_assert_int_eq(config_finish(&cfg, err, sizeof(err)), 0);
    ck_assert_int_eq(cfg.workers, 3);
    ck_assert_str_eq(cfg.admin_socket, "/tmp/run/v.sock");
    ck_assert_int_eq(cfg.throttle_address.count, 7);
    ck_assert_int_eq(cfg.throttle_address.seconds, 60);
    ck_assert_int_eq(cfg.trusted_proxy_count, 2);
    ck_assert_int_eq(cfg.registration_open, 0);
    ck_assert_str_eq(cfg.listen, "[::1]:9000");
    unlink(path);
}
END_TEST

static void expect_error(const char *text, const char *fragment)
{
    struct config cfg, before;
    char err[CONFIG_ERROR_MAX] = "";
    char *path = write_temp(text);

    config_defaults(&cfg);
    before = cfg;
    ck_assert_int_eq(config_load_file(&cfg, path, err, sizeof(err)), -1);
    ck_assert_msg(strstr(err, fragment) != NULL, "error '%s' lacks '%s'", err, fragment);
    ck_assert_msg(strstr(err, path) != NULL, "error '%s' lacks the file name", err);
    (void)before;
    unlink(path);
}

START_TEST(errors_name_file_and_line)
{
    expect_error("workers = 2\nbogus = 1\n", ":2: unknown key 'bogus'");
    expect_error("workers = 129\n", ":1: workers");
    expect_error("session_idle_s = 60\n", ":1: session_idle_s");
    expect_error("\n\nworkers = two\n", ":3:");
    expect_error("listen = localhost:80\n", ":1: listen");
    expect_error("throttle_address = 5\n", "COUNT/SECONDS");
    expect_error("trusted_proxies = 10.0.0.0/33\n", "trusted_proxies");
    expect_error("registration = maybe\n", "registration");
    expect_error("[other]\nworkers = 1\n", "unknown section");
    expect_error("this is not ini\n", ":1:");
    /* Several bad lines: the first one's number with its own message. */
    expect_error("workers = 2\nfoo = 1\nworkers = abc\n", ":2: unknown key 'foo'");
    expect_error("workers = abc\nfoo = 1\n", ":1: workers");
}
END_TEST

/* Set twice, the last one wins: a file of defaults with overrides below. */
START_TEST(the_last_setting_of_a_key_wins)
{
    struct config cfg;
    char err[CONFIG_ERROR_MAX] = "";
    char *path = write_temp("workers = 2\nlisten = 127.0.0.1:1\nworkers = 3\n");

    config_defaults(&cfg);
    ck_assert_msg(config_load_file(&cfg, path, err, sizeof(err)) == 0, "%s", err);
    ck_assert_int_eq(cfg.workers, 3);
    unlink(path);
}
END_TEST

/* A network list longer than a line: the key repeats and its lines add
 * up, and the settings a worker gets split it the same way. */
START_TEST(trusted_proxies_may_span_lines)
{
    struct config a, b;
    char err[CONFIG_ERROR_MAX] = "", text[4096] = "", *path, *rendered;
    int len = 0;

    for (int line = 0; line < 4; line++) {
        len += snprintf(text + len, sizeof(text) - (size_t)len, "trusted_proxies = ");
        for (int i = 0; i < 8; i++)
            len += snprintf(text + len, sizeof(text) - (size_t)len, "%s2001:db8:%x:%x::/64", i ? ", " : "",
                            line, i);
        len += snprintf(text + len, sizeof(text) - (size_t)len, "\n");
    }
    path = write_temp(text);
    config_defaults(&a);
    ck_assert_msg(config_load_file(&a, path, err, sizeof(err)) == 0, "%s", err);
    unlink(path);
    ck_assert_int_eq(a.trusted_proxy_count, 32);
    ck_assert_int_eq(config_finish(&a, err, sizeof(err)), 0);
    rendered = config_render(&a);
    ck_assert_ptr_nonnull(rendered);
    for (const char *p = rendered; *p != '\0'; p = strchr(p, '\n') + 1)
        ck_assert_int_le(strcspn(p, "\n"), 198);
    config_defaults(&b);
    ck_assert_msg(config_load_string(&b, rendered, "settings", err, sizeof(err)) == 0, "%s", err);
    ck_assert_int_eq(b.trusted_proxy_count, 32);
    ck_assert_int_eq(memcmp(a.trusted_proxy, b.trusted_proxy, sizeof(a.trusted_proxy)), 0);
    free(rendered);
    /* One network more is refused by name. */
    snprintf(text + len, sizeof(text) - (size_t)len, "trusted_proxies = 10.0.0.0/8\n");
    expect_error(text, ":5: trusted_proxies: more than 32 networks");
}
END_TEST

START_TEST(lines_past_inih_buffer_are_refused_by_number)
{
    char text[400];

    /* 198 bytes before the newline fit; 199 do not. */
    snprintf(text, sizeof(text), "workers = 2\ndatabase_url = postgresql:///%0*d\n", 198 - 29, 0);
    {
        struct config cfg;
        char err[CONFIG_ERROR_MAX] = "";
        char *path = write_temp(text);

        config_defaults(&cfg);
        ck_assert_msg(config_load_file(&cfg, path, err, sizeof(err)) == 0, "%s", err);
        ck_assert_uint_eq(strlen(cfg.database_url), 198 - strlen("database_url = "));
        unlink(path);
    }
    snprintf(text, sizeof(text), "workers = 2\ndatabase_url = postgresql:///%0*d\n", 199 - 29, 0);
    expect_error(text, ":2: database_url: the line is 199 bytes long");
}
END_TEST

START_TEST(a_directory_is_not_a_config_file)
{
    struct config cfg;
    char err[CONFIG_ERROR_MAX] = "";

    config_defaults(&cfg);
    ck_assert_int_eq(config_load_file(&cfg, "/tmp", err, sizeof(err)), -1);
    ck_assert_str_eq(err, "/tmp: not a regular file");
}
END_TEST

/* What a worker could not read back from its settings is refused where the
 * supervisor validates, and an empty database URL too. */
START_TEST(settings_must_fit_a_line_and_name_a_database)
{
    struct config cfg;
    char err[CONFIG_ERROR_MAX] = "", url[400];

    snprintf(url, sizeof(url), "postgresql://u:p@127.0.0.1/verona?application_name=%0200d", 0);
    setenv("VERONA_DATABASE_URL", url, 1);
    config_defaults(&cfg);
    ck_assert_int_eq(config_finish(&cfg, err, sizeof(err)), -1);
    ck_assert_msg(strstr(err, "database_url: 251 bytes long") != NULL, "%s", err);
    unsetenv("VERONA_DATABASE_URL");
    config_defaults(&cfg);
    ck_assert_int_eq(config_set(&cfg, "database_url", "", err, sizeof(err)), 0);
    ck_assert_int_eq(config_finish(&cfg, err, sizeof(err)), -1);
    ck_assert_ptr_nonnull(strstr(err, "database_url is not set"));
}
END_TEST

START_TEST(cross_key_checks)
{
    struct config cfg;
    char err[CONFIG_ERROR_MAX];

    config_defaults(&cfg);
    ck_assert_int_eq(config_set(&cfg, "memory_soft_limit_mb", "600", err, sizeof(err)), 0);
    ck_assert_int_eq(config_finish(&cfg, err, sizeof(err)), -1);
    ck_assert_ptr_nonnull(strstr(err, "memory_hard_limit_mb"));
    config_defaults(&cfg);
    ck_assert_int_eq(config_set(&cfg, "metrics_listen", cfg.listen, err, sizeof(err)), 0);
    ck_assert_int_eq(config_finish(&cfg, err, sizeof(err)), -1);
    ck_assert_ptr_nonnull(strstr(err, "metrics_listen (127.0.0.1:8080) is the address of listen"));
    /* Read from a file, the message says where: the later of the two
     * keys' lines, or the one line that set either. */
    config_defaults(&cfg);
    ck_assert_int_eq(config_load_string(&cfg, "workers = 2\nmemory_hard_limit_mb = 100\n\n"
                                              "memory_soft_limit_mb = 200\n", "v.conf", err, sizeof(err)), 0);
    ck_assert_int_eq(config_finish(&cfg, err, sizeof(err)), -1);
    ck_assert_msg(strncmp(err, "v.conf:4: memory_hard_limit_mb (100)", 36) == 0, "%s", err);
    config_defaults(&cfg);
    ck_assert_int_eq(config_load_string(&cfg, "# timings\n  health_timeout_ms = 60\n", "v.conf", err, sizeof(err)), 0);
    ck_assert_int_eq(config_finish(&cfg, err, sizeof(err)), -1);
    ck_assert_msg(strncmp(err, "v.conf:2: health_timeout_ms (60)", 32) == 0, "%s", err);
}
END_TEST

START_TEST(render_round_trip)
{
    struct config a, b;
    char err[CONFIG_ERROR_MAX];
    char *text;

    config_defaults(&a);
    ck_assert_int_eq(config_set(&a, "trusted_proxies", "127.0.0.1/32", err, sizeof(err)), 0);
    ck_assert_int_eq(config_set(&a, "throttle_account", "9/99", err, sizeof(err)), 0);
    text = config_render(&a);
    ck_assert_ptr_nonnull(text);
    config_defaults(&b);
    ck_assert_int_eq(config_load_string(&b, text, "settings", err, sizeof(err)), 0);
    ck_assert_int_eq(b.throttle_account.count, 9);
    ck_assert_int_eq(b.trusted_proxy_count, 1);
    ck_assert_str_eq(b.listen, a.listen);
    free(text);
}
END_TEST

START_TEST(environment_overrides_database_url)
{
    struct config cfg;
    char err[CONFIG_ERROR_MAX];

    setenv("VERONA_DATABASE_URL", "postgresql:///from_env", 1);
    config_defaults(&cfg);
    ck_assert_int_eq(config_finish(&cfg, err, sizeof(err)), 0);
    ck_assert_str_eq(cfg.database_url, "postgresql:///from_env");
    unsetenv("VERONA_DATABASE_URL");
}
END_TEST

/* A value the workers' settings would read back cut short or split (found
 * by the config fuzzer: "database_url=;/" loads from a file, but its
 * rendering "database_url = ;/" reads back as a comment) is refused where
 * the supervisor validates. A password may hold ';' but not after a space. */
START_TEST(values_that_would_not_read_back_are_refused)
{
    static const char *const bad[] = {
        "host=/tmp password='a ;b'", "host=/tmp password='a\t;b'", "host=/tmp\nport=5432", " host=/tmp", "host=/tmp ",
    };
    struct config cfg, back;
    char err[CONFIG_ERROR_MAX];
    char *text;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        setenv("VERONA_DATABASE_URL", bad[i], 1);
        config_defaults(&cfg);
        ck_assert_int_eq(config_finish(&cfg, err, sizeof(err)), -1);
        ck_assert_msg(strstr(err, "database_url: a value cannot") != NULL, "%zu: %s", i, err);
    }
    unsetenv("VERONA_DATABASE_URL");
    config_defaults(&cfg);
    ck_assert_int_eq(config_set(&cfg, "user", ";root", err, sizeof(err)), 0);
    ck_assert_int_eq(config_finish(&cfg, err, sizeof(err)), -1);
    ck_assert_msg(strstr(err, "user: a value cannot") != NULL, "%s", err);
    /* ';' inside a value is fine, and reads back whole. */
    setenv("VERONA_DATABASE_URL", "host=/tmp password=a;b", 1);
    config_defaults(&cfg);
    ck_assert_int_eq(config_finish(&cfg, err, sizeof(err)), 0);
    unsetenv("VERONA_DATABASE_URL");
    text = config_render(&cfg);
    ck_assert_ptr_nonnull(text);
    config_defaults(&back);
    ck_assert_int_eq(config_load_string(&back, text, "settings", err, sizeof(err)), 0);
    ck_assert_str_eq(back.database_url, "host=/tmp password=a;b");
    free(text);
}
END_TEST

START_TEST(cidr_contains)
{
    struct config_cidr net;
    unsigned char in[4] = { 10, 1, 2, 3 }, out[4] = { 11, 1, 2, 3 };

    ck_assert_int_eq(config_cidr_parse("10.0.0.0/8", &net), 0);
    ck_assert_int_eq(config_cidr_contains(&net, 2 /* AF_INET */, in), 1);
    ck_assert_int_eq(config_cidr_contains(&net, 2, out), 0);
    ck_assert_int_eq(config_cidr_parse("nonsense", &net), -1);
    ck_assert_int_eq(config_cidr_parse("::/129", &net), -1);
}
END_TEST

Suite *config_suite(void)
{
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("core");

    tcase_add_test(tc, defaults_match_spec);
    tcase_add_test(tc, hash_threads_follow_cpus_and_memory);
    tcase_add_test(tc, file_values_and_relative_paths);
    tcase_add_test(tc, errors_name_file_and_line);
    tcase_add_test(tc, trusted_proxies_may_span_lines);
    tcase_add_test(tc, the_last_setting_of_a_key_wins);
    tcase_add_test(tc, lines_past_inih_buffer_are_refused_by_number);
    tcase_add_test(tc, a_directory_is_not_a_config_file);
    tcase_add_test(tc, settings_must_fit_a_line_and_name_a_database);
    tcase_add_test(tc, cross_key_checks);
    tcase_add_test(tc, render_round_trip);
    tcase_add_test(tc, environment_overrides_database_url);
    tcase_add_test(tc, values_that_would_not_read_back_are_refused);
    tcase_add_test(tc, cidr_contains);
    suite_add_tcase(s, tc);
    return s;
}
