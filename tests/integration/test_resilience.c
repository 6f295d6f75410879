/* tests/integration/test_resilience.c - PostgreSQL stopped and restarted
 * under a running worker: 503 + Retry-After meanwhile (never 401), then
 * recovery without restarting the worker. A worker started on a database
 * that lacks its migrations says so and waits for `verona migrate`. */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../lib/harness.h"

#define GOOD_PASSWORD "correct horse battery staple"

START_TEST(database_restart_gives_503_then_recovery)
{
    struct harness_worker w;
    struct harness_response *r = calloc(1, sizeof(*r));
    char name[64], token[44], header[80], retry[16];
    long long deadline;
    int status = 0;

    ck_assert_int_eq(harness_worker_start(&w, NULL, 1), 0);
    harness_username(name, sizeof(name), "pgdown");
    harness_register(w.port, name, GOOD_PASSWORD);
    ck_assert_int_eq(harness_login(w.port, name, GOOD_PASSWORD, token, NULL), 200);
    snprintf(header, sizeof(header), "Authorization: Bearer %s\r\n", token);

    ck_assert_int_eq(harness_pg_stop(), 0);
    ck_assert_int_eq(harness_request(w.port, "GET", "/v1/session", header, NULL, r), 503);
    ck_assert_ptr_nonnull(strstr(r->body, "unavailable"));
    ck_assert_int_eq(harness_header(r, "Retry-After", retry, sizeof(retry)), 0);
    ck_assert_str_eq(retry, "1");
    ck_assert_int_eq(harness_login(w.port, name, GOOD_PASSWORD, NULL, NULL), 503);
    ck_assert_int_eq(harness_request(w.port, "GET", "/readyz", NULL, NULL, r), 503);
    ck_assert_int_eq(harness_request(w.port, "GET", "/healthz", NULL, NULL, r), 200);

    ck_assert_int_eq(harness_pg_start(), 0);
    deadline = harness_now_ms() + 30000;
    while (harness_now_ms() < deadline &&
           (status = harness_request(w.port, "GET", "/readyz", NULL, NULL, r)) != 200)
        ;
    ck_assert_int_eq(status, 200);
    ck_assert_int_eq(harness_request(w.port, "GET", "/v1/session", header, NULL, r), 200);
    ck_assert_int_eq(harness_login(w.port, name, GOOD_PASSWORD, NULL, NULL), 200);
    ck_assert_int_eq(harness_worker_alive(&w), 1);
    harness_worker_stop(&w);
    free(r);
}
END_TEST

/* A server that stops answering with its connections open (frozen,
 * swapping, a network partition that drops silently) is no more ready than
 * one that is down: once it has been silent for db_failover_wait_ms
 * (SPEC 10.3; 1 s here), /readyz says 503, without waiting for a user's
 * query to time out, and 200 again once it answers. */
START_TEST(frozen_database_is_not_ready)
{
    struct harness_worker w;
    struct harness_response *r = calloc(1, sizeof(*r));
    long long deadline;
    int frozen_status = 0, healthz = 0, status = 0, thawed, timed_out;

    ck_assert_int_eq(harness_worker_start(&w, "db_failover_wait_ms = 1000\n", 1), 0);
    ck_assert_int_eq(harness_request(w.port, "GET", "/readyz", NULL, NULL, r), 200);
    ck_assert_int_gt(harness_pg_signal(SIGSTOP), 0);
    deadline = harness_now_ms() + 15000;
    while (harness_now_ms() < deadline &&
           (frozen_status = harness_request(w.port, "GET", "/readyz", NULL, NULL, r)) == 200)
        usleep(50 * 1000);
    healthz = harness_request(w.port, "GET", "/healthz", NULL, NULL, r);
    /* Seen before any query timed out (DB_DEADLINE_MS, 5 s): the readiness
     * is PostgreSQL's silence, not a casualty of some user's request. */
    timed_out = harness_file_contains(w.log_path, "timed out");
    thawed = harness_pg_signal(SIGCONT); /* before any assertion can end the test */
    ck_assert_int_gt(thawed, 0);
    ck_assert_int_eq(frozen_status, 503);
    ck_assert_int_eq(timed_out, 0);
    ck_assert_int_eq(healthz, 200);
    deadline = harness_now_ms() + 30000;
    while (harness_now_ms() < deadline &&
           (status = harness_request(w.port, "GET", "/readyz", NULL, NULL, r)) != 200)
        usleep(50 * 1000);
    ck_assert_int_eq(status, 200);
    ck_assert_int_eq(harness_worker_alive(&w), 1);
    harness_worker_stop(&w);
    free(r);
}
END_TEST

/* Makes the database of VERONA_DATABASE_URL one migration behind this
 * build: the newest migration's row deleted and what it made dropped, as
 * before it ran (009_hash_params.sql: keep this in step with the last
 * file of sql/). */
static void make_database_one_migration_behind(void)
{
    ck_assert_int_eq(system("\"$VERONA_BIN_DIR/verona\" migrate >/dev/null"), 0);
    harness_sql("DELETE FROM schema_migrations WHERE version = (SELECT max(version) FROM schema_migrations)");
    harness_sql("DROP FUNCTION verona_hash_params");
    harness_sql("DROP TABLE verona_secrets");
}

START_TEST(older_schema_waits_for_migrate)
{
    struct harness_worker w;
    struct harness_response *r = calloc(1, sizeof(*r));
    char base[1024], db[64], url[1200], sql[128], name[64];
    const char *at;
    long long deadline;
    int status = 0;

    snprintf(base, sizeof(base), "%s", getenv("VERONA_DATABASE_URL"));
    at = strstr(base, "/verona?");
    ck_assert_ptr_nonnull(at);
    snprintf(db, sizeof(db), "verona_behind_%d", (int)getpid());
    snprintf(url, sizeof(url), "%.*s/%s%s", (int)(at - base), base, db, at + strlen("/verona"));
    snprintf(sql, sizeof(sql), "CREATE DATABASE %s", db);
    harness_sql(sql);
    /* This test process (and the worker it starts) use the new database. */
    ck_assert_int_eq(setenv("VERONA_DATABASE_URL", url, 1), 0);
    make_database_one_migration_behind();
    ck_assert_int_eq(harness_worker_start(&w, NULL, 0), 0);
    deadline = harness_now_ms() + 15000;
    while (harness_now_ms() < deadline && !harness_file_contains(w.log_path, "\"schema_too_old\""))
        ck_assert_int_eq(harness_request(w.port, "GET", "/healthz", NULL, NULL, r), 200);
    ck_assert(harness_file_contains(w.log_path, "\"schema_too_old\""));
    ck_assert(harness_file_contains(w.log_path, "run `verona migrate`"));
    ck_assert_int_eq(harness_request(w.port, "GET", "/readyz", NULL, NULL, r), 503);
    ck_assert_ptr_nonnull(strstr(r->body, "verona migrate"));
    ck_assert_int_eq(harness_post_json(w.port, "/v1/login", NULL,
                                       "{\"username\":\"someone\",\"password\":\"anything at all\"}", r),
                     503);

    ck_assert_int_eq(system("\"$VERONA_BIN_DIR/verona\" migrate >/dev/null"), 0);
    deadline = harness_now_ms() + 30000;
    while (harness_now_ms() < deadline &&
           (status = harness_request(w.port, "GET", "/readyz", NULL, NULL, r)) != 200)
        ;
    ck_assert_int_eq(status, 200);
    harness_username(name, sizeof(name), "behind");
    harness_register(w.port, name, GOOD_PASSWORD);
    ck_assert_int_eq(harness_login(w.port, name, GOOD_PASSWORD, NULL, NULL), 200);
    ck_assert_int_eq(harness_worker_alive(&w), 1);
    harness_worker_stop(&w);

    ck_assert_int_eq(setenv("VERONA_DATABASE_URL", base, 1), 0);
    snprintf(sql, sizeof(sql), "DROP DATABASE %s WITH (FORCE)", db);
    harness_sql(sql);
    free(r);
}
END_TEST

/* A write the worker sends again after losing the answer to its commit (a
 * failover) lands once and answers as the first try did (008, SPEC 10.2):
 * a login's session, a registration, a password change. */
START_TEST(writes_sent_twice_land_once)
{
    char name[64], sql[1024], *v, *hash, *first;
    static const char token[] = "'\\x6661696c6f766572207477696365207477696365207477696365207477696365'::bytea";

    harness_username(name, sizeof(name), "twice");
    /* Registration: the second try finds its own (salted) hash. */
    snprintf(sql, sizeof(sql), "SELECT verona_register_user_once('%s', 'hash-one-%s')", name, name);
    first = harness_sql_value(sql);
    ck_assert_ptr_nonnull(first);
    ck_assert_str_ne(first, "");
    v = harness_sql_value(sql);
    ck_assert_str_eq(v, first);
    free(v);
    snprintf(sql, sizeof(sql), "SELECT coalesce(verona_register_user_once('%s', 'another'), -1)", name);
    v = harness_sql_value(sql); /* someone else's registration of the name: taken */
    ck_assert_str_eq(v, "-1");
    free(v);

    /* A login's success: one session, the same expiry both times. */
    snprintf(sql, sizeof(sql),
             "SELECT verona_attempt_succeeded_once(0, %s, '%s', '198.18.0.1', %s, 3600, 1800, NULL, 'hash-one-%s')",
             first, name, token, name);
    v = harness_sql_value(sql);
    ck_assert_str_ne(v, "");
    hash = harness_sql_value(sql);
    ck_assert_str_eq(hash, v);
    free(v);
    free(hash);
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM sessions WHERE token_hash = %s", token);
    v = harness_sql_value(sql);
    ck_assert_str_eq(v, "1");
    free(v);

    /* A password change: true both times, the new hash in place. */
    snprintf(sql, sizeof(sql),
             "SELECT verona_password_attempt_set_once(0, %s, %s, 'hash-two-%s', 'hash-one-%s')", first, token, name,
             name);
    v = harness_sql_value(sql);
    ck_assert_str_eq(v, "t");
    free(v);
    v = harness_sql_value(sql);
    ck_assert_str_eq(v, "t");
    free(v);
    snprintf(sql, sizeof(sql), "SELECT password_hash FROM users WHERE id = %s", first);
    v = harness_sql_value(sql);
    snprintf(sql, sizeof(sql), "hash-two-%s", name);
    ck_assert_str_eq(v, sql);
    free(v);
    free(first);
}
END_TEST

Suite *resilience_suite(void)
{
    Suite *s = suite_create("resilience");
    TCase *tc = tcase_create("database");

    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, database_restart_gives_503_then_recovery);
    tcase_add_test(tc, frozen_database_is_not_ready);
    tcase_add_test(tc, older_schema_waits_for_migrate);
    tcase_add_test(tc, writes_sent_twice_land_once);
    suite_add_tcase(s, tc);
    return s;
}
