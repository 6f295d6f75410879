/* tests/integration/test_cli.c - `verona migrate` and `verona user`
 * against the real database: idempotent migrations, passwords from stdin,
 * lock and passwd ending sessions, clear errors and exit codes. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "../lib/harness.h"

#define GOOD_PASSWORD "correct horse battery staple"

/* Runs `PROGRAM ARGS` (a program of the build under test, after any
 * environment assignments in `env`) with `input` on stdin; returns the
 * exit code and the combined output in out. */
static int run(const char *env, const char *program, const char *args, const char *input, char *out,
               size_t size)
{
    char cmd[1024];
    FILE *p;
    size_t n;
    int status;

    snprintf(cmd, sizeof(cmd), "printf '%%s' '%s' | %s %s/%s %s 2>&1", input != NULL ? input : "", env,
             getenv("VERONA_BIN_DIR"), program, args);
    p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    n = fread(out, 1, size - 1, p);
    out[n] = '\0';
    status = pclose(p);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static int verona(const char *args, const char *input, char *out, size_t size)
{
    return run("", "verona", args, input, out, size);
}

START_TEST(migrate_is_idempotent)
{
    char out[4096];

    ck_assert_int_eq(verona("migrate", NULL, out, sizeof(out)), 0);
    ck_assert_ptr_nonnull(strstr(out, "0 applied now"));
}
END_TEST

START_TEST(user_lifecycle)
{
    struct harness_worker w;
    char name[64], args[128], out[4096], token[44], header[80];
    struct harness_response *r = calloc(1, sizeof(*r));

    harness_username(name, sizeof(name), "cli");
    snprintf(args, sizeof(args), "user add %s", name);
    ck_assert_int_eq(verona(args, GOOD_PASSWORD "\n", out, sizeof(out)), 0);
    ck_assert_int_eq(verona(args, GOOD_PASSWORD "\n", out, sizeof(out)), 1); /* exists */
    ck_assert_ptr_nonnull(strstr(out, "exists"));
    ck_assert_ptr_null(strstr(out, GOOD_PASSWORD));

    ck_assert_int_eq(harness_worker_start(&w, NULL, 1), 0);
    ck_assert_int_eq(harness_login(w.port, name, GOOD_PASSWORD, token, NULL), 200);
    snprintf(header, sizeof(header), "Authorization: Bearer %s\r\n", token);

    snprintf(args, sizeof(args), "user lock %s", name);
    ck_assert_int_eq(verona(args, NULL, out, sizeof(out)), 0);
    ck_assert_int_eq(harness_request(w.port, "GET", "/v1/session", header, NULL, r), 401);
    ck_assert_int_eq(harness_login(w.port, name, GOOD_PASSWORD, NULL, NULL), 401);
    snprintf(args, sizeof(args), "user unlock %s", name);
    ck_assert_int_eq(verona(args, NULL, out, sizeof(out)), 0);
    ck_assert_int_eq(harness_login(w.port, name, GOOD_PASSWORD, token, NULL), 200);

    snprintf(args, sizeof(args), "user passwd %s", name);
    ck_assert_int_eq(verona(args, "short\n", out, sizeof(out)), 2);
    ck_assert_ptr_nonnull(strstr(out, "weak password"));
    ck_assert_int_eq(verona(args, "plum tractor violin 42 sunrise\n", out, sizeof(out)), 0);
    snprintf(header, sizeof(header), "Authorization: Bearer %s\r\n", token);
    ck_assert_int_eq(harness_request(w.port, "GET", "/v1/session", header, NULL, r), 401);
    ck_assert_int_eq(harness_login(w.port, name, "plum tractor violin 42 sunrise", NULL, NULL), 200);
    harness_worker_stop(&w);
    free(r);
}
END_TEST

START_TEST(bad_usage_exits_2)
{
    char out[4096];

    ck_assert_int_eq(verona("frobnicate", NULL, out, sizeof(out)), 2);
    ck_assert_ptr_nonnull(strstr(out, "unknown command"));
    ck_assert_int_eq(verona("user add 'bad name'", NULL, out, sizeof(out)), 2);
    ck_assert_int_eq(verona("user explode alice", NULL, out, sizeof(out)), 2);
    ck_assert_int_eq(verona("user lock nobody_at_all_here", NULL, out, sizeof(out)), 1);
    ck_assert_ptr_nonnull(strstr(out, "no user"));
    ck_assert_int_eq(verona("migrate -c /nonexistent/verona.conf", NULL, out, sizeof(out)), 2);
    ck_assert_ptr_nonnull(strstr(out, "/nonexistent/verona.conf"));
    ck_assert_int_eq(verona("migrate -c /tmp", NULL, out, sizeof(out)), 2);
    ck_assert_ptr_nonnull(strstr(out, "/tmp: not a regular file"));
    ck_assert_int_eq(verona("config-example extra", NULL, out, sizeof(out)), 2);
    ck_assert_ptr_nonnull(strstr(out, "config-example takes no arguments"));
    /* One line that says what is wrong, not the whole usage. */
    {
        static const struct {
            const char *args, *says;
        } bad[] = {
            { "", "verona: missing command" },
            { "serve -x", "verona serve: unknown option '-x'" },
            { "serve -c", "verona serve: -c needs a FILE" },
            { "migrate --frob", "verona migrate: unknown option '--frob'" },
            { "user", "verona user: missing action" },
            { "user add", "verona user add: missing NAME" },
            { "user add bob -z", "verona user: unknown option '-z'" },
        };

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
            ck_assert_int_eq(verona(bad[i].args, NULL, out, sizeof(out)), 2);
            ck_assert_msg(strncmp(out, bad[i].says, strlen(bad[i].says)) == 0 && strchr(out, '\n') == out + strlen(out) - 1,
                          "verona %s: %s", bad[i].args, out);
        }
        /* A username may start with '-': it is still a NAME. */
        ck_assert_int_eq(verona("user lock -nobody_at_all_here", NULL, out, sizeof(out)), 1);
        ck_assert_ptr_nonnull(strstr(out, "no user"));
        ck_assert_int_eq(verona("user lock -- -nobody_at_all_here", NULL, out, sizeof(out)), 1);
        ck_assert_ptr_nonnull(strstr(out, "no user"));
        ck_assert_int_eq(verona("user --help", NULL, out, sizeof(out)), 0);
        ck_assert_ptr_nonnull(strstr(out, "usage: verona user"));
    }
}
END_TEST

/* ctl checks its command line before it looks for a supervisor: one line
 * that says what is wrong, exit 2. */
START_TEST(ctl_usage_errors_say_what_is_wrong)
{
    static const struct {
        const char *args, *says;
    } cases[] = {
        { "ctl", "missing command" },
        { "ctl frobnicate", "unknown command 'frobnicate'" },
        { "ctl scale", "scale takes one argument" },
        { "ctl scale 0", "'0' is not a worker count 1-128" },
        { "ctl scale 129", "'129' is not a worker count" },
        { "ctl scale 2x", "'2x' is not a worker count" },
        { "ctl recycle -5", "'-5' is not a worker's pid" },
        { "ctl status --yaml", "unexpected argument '--yaml' (only --json)" },
        { "ctl reload --now", "unexpected argument '--now' (only --wait)" },
        { "ctl -x status", "unknown option '-x'" },
        { "ctl -s", "-s needs a value" },
        { "ctl status --json extra", "unexpected argument 'extra' (only --json)" },
        { "ctl stop now", "stop: unexpected argument 'now'" },
        { "ctl --socket x status", "unknown option '--socket'" },
    };
    char out[4096];

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ck_assert_int_eq(verona(cases[i].args, NULL, out, sizeof(out)), 2);
        ck_assert_msg(strstr(out, cases[i].says) != NULL && strchr(out, '\n') == out + strlen(out) - 1,
                      "verona %s said: %s", cases[i].args, out);
    }
    ck_assert_int_eq(verona("ctl --help", NULL, out, sizeof(out)), 0);
    ck_assert_ptr_nonnull(strstr(out, "usage: verona ctl"));
}
END_TEST

/* verona-worker alone needs -c; under the supervisor it needs a real
 * control socket, and says so instead of aborting inside libuv. */
START_TEST(worker_bad_usage_exits_2)
{
    char out[4096];

    ck_assert_int_eq(run("", "verona-worker", "--help", NULL, out, sizeof(out)), 0);
    ck_assert_ptr_nonnull(strstr(out, "usage: verona-worker -c FILE"));
    ck_assert_int_eq(run("", "verona-worker", "", NULL, out, sizeof(out)), 2);
    ck_assert_ptr_nonnull(strstr(out, "usage: verona-worker -c FILE"));
    ck_assert_int_eq(run("", "verona-worker", "-c /nonexistent/verona.conf", NULL, out, sizeof(out)), 2);
    ck_assert_ptr_nonnull(strstr(out, "/nonexistent/verona.conf"));
    ck_assert_int_eq(run("VERONA_CONTROL_FD=abc", "verona-worker", "", NULL, out, sizeof(out)), 2);
    ck_assert_ptr_nonnull(strstr(out, "VERONA_CONTROL_FD=abc is not an open socket"));
    ck_assert_int_eq(run("VERONA_CONTROL_FD=0", "verona-worker", "", NULL, out, sizeof(out)), 2);
    ck_assert_ptr_nonnull(strstr(out, "VERONA_CONTROL_FD=0 is not"));
    ck_assert_int_eq(run("VERONA_CONTROL_FD=9", "verona-worker", "9</dev/null", NULL, out, sizeof(out)), 2);
    ck_assert_ptr_nonnull(strstr(out, "VERONA_CONTROL_FD=9 is not"));
}
END_TEST

/* A database that cannot be reached: exit 1 and one line on stderr, even
 * though libpq's message spans several. */
START_TEST(database_errors_are_one_line)
{
    char out[4096], saved[1024];

    snprintf(saved, sizeof(saved), "%s", getenv("VERONA_DATABASE_URL"));
    setenv("VERONA_DATABASE_URL", "postgresql://127.0.0.1:1/verona?connect_timeout=5", 1);
    ck_assert_int_eq(verona("migrate", NULL, out, sizeof(out)), 1);
    ck_assert_msg(strstr(out, "cannot connect") != NULL && strchr(out, '\n') == out + strlen(out) - 1, "got: %s",
                  out);
    ck_assert_int_eq(verona("user lock alice", NULL, out, sizeof(out)), 1);
    ck_assert_msg(strstr(out, "cannot connect") != NULL && strchr(out, '\n') == out + strlen(out) - 1, "got: %s",
                  out);
    setenv("VERONA_DATABASE_URL", saved, 1);
}
END_TEST

/* The packaged config leaves database_url empty until the operator sets
 * it: serve and migrate refuse with exit 2 and say so (the unit does not
 * restart on 2), while ctl, which needs only the admin socket, still reads
 * the file. */
START_TEST(unset_database_url_stops_serve_not_ctl)
{
    char out[4096], conf[512], args[600];
    FILE *f;

    snprintf(conf, sizeof(conf), "%s/unset-url.conf", getenv("VERONA_TEST_TMP"));
    f = fopen(conf, "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f, "listen = 127.0.0.1:1\ndatabase_url =\nadmin_socket = %s/unset-url.sock\n", getenv("VERONA_TEST_TMP"));
    fclose(f);
    snprintf(args, sizeof(args), "serve -c %s", conf);
    ck_assert_int_eq(run("env -u VERONA_DATABASE_URL -u DATABASE_URL", "verona", args, NULL, out, sizeof(out)), 2);
    ck_assert_msg(strstr(out, "unset-url.conf:2: database_url is not set") != NULL &&
                      strchr(out, '\n') == out + strlen(out) - 1, "got: %s", out);
    snprintf(args, sizeof(args), "migrate -c %s", conf);
    ck_assert_int_eq(run("env -u VERONA_DATABASE_URL -u DATABASE_URL", "verona", args, NULL, out, sizeof(out)), 2);
    ck_assert_msg(strstr(out, "database_url is not set") != NULL, "got: %s", out);
    snprintf(args, sizeof(args), "ctl -c %s status", conf);
    ck_assert_int_eq(run("env -u VERONA_DATABASE_URL -u DATABASE_URL", "verona", args, NULL, out, sizeof(out)), 1);
    ck_assert_msg(strstr(out, "unset-url.sock") != NULL, "got: %s", out);
}
END_TEST

/* A database URL libpq cannot parse is refused before anything connects,
 * and the refusal never repeats it: libpq's own message quotes it whole,
 * password and all (issue 19 finding 6). Both shapes that did. */
START_TEST(a_bad_database_url_never_reaches_the_output)
{
    static const char *const urls[] = {
        "postgresql://verona:S3cretPw@[::1/verona",
        "postgresql://verona:S3cretPw%zz@localhost/verona",
    };
    char out[4096], env[256];

    for (size_t i = 0; i < sizeof(urls) / sizeof(urls[0]); i++) {
        snprintf(env, sizeof(env), "VERONA_DATABASE_URL='%s'", urls[i]);
        ck_assert_int_eq(run(env, "verona", "migrate", NULL, out, sizeof(out)), 2);
        ck_assert_msg(strstr(out, "database_url cannot be parsed") != NULL, "got: %s", out);
        ck_assert_msg(strstr(out, "S3cret") == NULL, "the password reached the output: %s", out);
        ck_assert_int_eq(run(env, "verona", "serve", NULL, out, sizeof(out)), 2);
        ck_assert_msg(strstr(out, "S3cret") == NULL, "the password reached the output: %s", out);
    }
}
END_TEST

Suite *cli_suite(void)
{
    Suite *s = suite_create("cli");
    TCase *tc = tcase_create("verona");

    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, migrate_is_idempotent);
    tcase_add_test(tc, database_errors_are_one_line);
    tcase_add_test(tc, user_lifecycle);
    tcase_add_test(tc, bad_usage_exits_2);
    tcase_add_test(tc, worker_bad_usage_exits_2);
    tcase_add_test(tc, ctl_usage_errors_say_what_is_wrong);
    tcase_add_test(tc, unset_database_url_stops_serve_not_ctl);
    tcase_add_test(tc, a_bad_database_url_never_reaches_the_output);
    suite_add_tcase(s, tc);
    return s;
}
