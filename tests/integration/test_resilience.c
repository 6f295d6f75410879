/* tests/integration/test_resilience.c - PostgreSQL stopped and restarted
 * under a running worker: 503 + Retry-After meanwhile (never 401), then
 * recovery without restarting the worker. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

Suite *resilience_suite(void)
{
    Suite *s = suite_create("resilience");
    TCase *tc = tcase_create("database");

    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, database_restart_gives_503_then_recovery);
    suite_add_tcase(s, tc);
    return s;
}
