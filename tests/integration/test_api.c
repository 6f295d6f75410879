/* tests/integration/test_api.c - every row of SPEC.md section 4 over real
 * HTTP against one worker: statuses, bodies, headers. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/harness.h"

#define GOOD_PASSWORD "correct horse battery staple"
#define OTHER_PASSWORD "plum tractor violin 42 sunrise"

static struct harness_worker worker;
static struct harness_response *r;

static void api_setup(void)
{
    ck_assert_int_eq(harness_worker_start(&worker, NULL, 1), 0);
}

static void api_teardown(void)
{
    harness_worker_stop(&worker);
}

static void response_setup(void)
{
    r = calloc(1, sizeof(*r));
    ck_assert_ptr_nonnull(r);
}

static void response_teardown(void)
{
    free(r);
}

static void assert_error(int status, const char *code)
{
    char got[64];

    ck_assert_int_eq(r->status, status);
    ck_assert_int_eq(harness_json_string(r, "error", got, sizeof(got)), 0);
    ck_assert_str_eq(got, code);
    ck_assert_int_eq(harness_json_string(r, "message", got, sizeof(got)) == 0 ||
                         strlen(r->body) > 0, 1);
}

START_TEST(health_and_readiness)
{
    ck_assert_int_eq(harness_request(worker.port, "GET", "/healthz", NULL, NULL, r), 200);
    ck_assert_int_eq(harness_request(worker.port, "GET", "/readyz", NULL, NULL, r), 200);
}
END_TEST

START_TEST(register_then_duplicate_regardless_of_case)
{
    char name[64], upper[64], json[256], got[80];

    harness_username(name, sizeof(name), "reg");
    snprintf(json, sizeof(json), "{\"username\":\"%s\",\"password\":\"" GOOD_PASSWORD "\"}", name);
    ck_assert_int_eq(harness_post_json(worker.port, "/v1/users", NULL, json, r), 201);
    ck_assert_int_gt(harness_json_int(r, "user_id"), 0);
    ck_assert_int_eq(harness_json_string(r, "username", got, sizeof(got)), 0);
    ck_assert_str_eq(got, name);

    for (size_t i = 0; name[i] != '\0'; i++)
        upper[i] = (char)(name[i] >= 'a' && name[i] <= 'z' ? name[i] - 32 : name[i]);
    upper[strlen(name)] = '\0';
    snprintf(json, sizeof(json), "{\"username\":\"%s\",\"password\":\"" OTHER_PASSWORD "\"}", upper);
    harness_post_json(worker.port, "/v1/users", NULL, json, r);
    assert_error(409, "username_taken");
}
END_TEST

START_TEST(register_rejects_bad_input)
{
    harness_post_json(worker.port, "/v1/users", NULL,
                      "{\"username\":\"has space\",\"password\":\"" GOOD_PASSWORD "\"}", r);
    assert_error(400, "invalid_request");
    harness_post_json(worker.port, "/v1/users", NULL, "{\"username\":\"weak1\",\"password\":\"short\"}", r);
    assert_error(400, "weak_password");
    harness_post_json(worker.port, "/v1/users", NULL,
                      "{\"username\":\"weak2\",\"password\":\"password12345\"}", r);
    assert_error(400, "weak_password");
    harness_post_json(worker.port, "/v1/users", NULL,
                      "{\"username\":\"zebrafish\",\"password\":\"my zebrafish Q7!x\"}", r);
    assert_error(400, "weak_password");
    harness_post_json(worker.port, "/v1/users", NULL, "{\"username\":7,\"password\":\"x\"}", r);
    assert_error(400, "invalid_request");
    {
        /* Past 1024 characters a password is not weak but invalid. */
        static char json[1200];
        int n = snprintf(json, sizeof(json), "{\"username\":\"longpw\",\"password\":\"");

        memset(json + n, 'q', 1025);
        snprintf(json + n + 1025, sizeof(json) - (size_t)n - 1025, "\"}");
        harness_post_json(worker.port, "/v1/users", NULL, json, r);
        assert_error(400, "invalid_request");
    }
    harness_post_json(worker.port, "/v1/users", NULL, "{\"username\":\"a\"}", r);
    assert_error(400, "invalid_request");
    harness_post_json(worker.port, "/v1/users", NULL, "[1,2]", r);
    assert_error(400, "invalid_request");
    harness_post_json(worker.port, "/v1/users", NULL, "{\"username\":", r);
    assert_error(400, "invalid_request");
    harness_post_json(worker.port, "/v1/users", NULL,
                      "{\"username\":\"dup\",\"username\":\"dup2\",\"password\":\"" GOOD_PASSWORD "\"}", r);
    assert_error(400, "invalid_request");
    harness_post_json(worker.port, "/v1/users", NULL,
                      "{\"username\":\"utf\",\"password\":\"\xff\xfe bad utf8 bytes here\"}", r);
    assert_error(400, "invalid_request");
    harness_request(worker.port, "POST", "/v1/users", "Content-Type: text/plain\r\n",
                    "{\"username\":\"x\",\"password\":\"" GOOD_PASSWORD "\"}", r);
    assert_error(415, "unsupported_media_type");
    harness_request(worker.port, "POST", "/v1/users",
                    "Content-Type: application/x-www-form-urlencoded\r\n", "username=x&password=y", r);
    assert_error(415, "unsupported_media_type");
}
END_TEST

START_TEST(login_session_logout)
{
    char name[64], token[44], got[80], header[80];

    harness_username(name, sizeof(name), "login");
    harness_register(worker.port, name, GOOD_PASSWORD);
    ck_assert_int_eq(harness_login(worker.port, name, GOOD_PASSWORD, token, NULL), 200);
    ck_assert_int_eq(strlen(token), 43);

    /* The login body itself. */
    {
        char json[256];
        snprintf(json, sizeof(json), "{\"username\":\"%s\",\"password\":\"" GOOD_PASSWORD "\","
                                     "\"extra\":[1,2,3]}", name);
        ck_assert_int_eq(harness_post_json(worker.port, "/v1/login", NULL, json, r), 200);
        ck_assert_int_gt(harness_json_int(r, "user_id"), 0);
        ck_assert_int_eq(harness_json_string(r, "expires_at", got, sizeof(got)), 0);
        ck_assert_int_eq(strlen(got), 20); /* 2026-01-01T00:00:00Z */
        ck_assert_int_eq(got[10], 'T');
        ck_assert_int_eq(got[19], 'Z');
        /* A token is never kept by a cache on the way (ASVS 8.1.1, 8.2.1). */
        ck_assert_int_eq(harness_header(r, "Cache-Control", got, sizeof(got)), 0);
        ck_assert_str_eq(got, "no-store");
    }

    snprintf(header, sizeof(header), "Authorization: Bearer %s\r\n", token);
    ck_assert_int_eq(harness_request(worker.port, "GET", "/v1/session", header, NULL, r), 200);
    ck_assert_int_eq(harness_json_string(r, "username", got, sizeof(got)), 0);
    ck_assert_str_eq(got, name);
    ck_assert_int_eq(harness_header(r, "X-Username", got, sizeof(got)), 0);
    ck_assert_str_eq(got, name);
    ck_assert_int_eq(harness_header(r, "X-User-Id", got, sizeof(got)), 0);
    ck_assert_int_eq(strtoll(got, NULL, 10), harness_json_int(r, "user_id"));

    ck_assert_int_eq(harness_post_json(worker.port, "/v1/logout", token, NULL, r), 204);
    ck_assert_int_eq(r->body_len, 0);
    /* RFC 9110, 8.6: no Content-Length on a 204. */
    ck_assert_int_ne(harness_header(r, "Content-Length", got, sizeof(got)), 0);
    harness_request(worker.port, "GET", "/v1/session", header, NULL, r);
    assert_error(401, "invalid_token");
    ck_assert_int_eq(harness_header(r, "WWW-Authenticate", got, sizeof(got)), 0);
    ck_assert_str_eq(got, "Bearer error=\"invalid_token\"");
    harness_post_json(worker.port, "/v1/logout", token, NULL, r);
    assert_error(401, "invalid_token");
    /* No credentials at all: a challenge without an error code (RFC 6750 3.1). */
    harness_request(worker.port, "GET", "/v1/session", NULL, NULL, r);
    assert_error(401, "invalid_token");
    ck_assert_int_eq(harness_header(r, "WWW-Authenticate", got, sizeof(got)), 0);
    ck_assert_str_eq(got, "Bearer realm=\"verona\"");
}
END_TEST

START_TEST(logout_all_ends_every_session)
{
    char name[64], t1[44], t2[44], header[80];

    harness_username(name, sizeof(name), "all");
    harness_register(worker.port, name, GOOD_PASSWORD);
    ck_assert_int_eq(harness_login(worker.port, name, GOOD_PASSWORD, t1, NULL), 200);
    ck_assert_int_eq(harness_login(worker.port, name, GOOD_PASSWORD, t2, NULL), 200);
    snprintf(header, sizeof(header), "Authorization: Bearer %s\r\n", t2);
    ck_assert_int_eq(harness_request(worker.port, "GET", "/v1/session", header, NULL, r), 200); /* cached */
    harness_post_json(worker.port, "/v1/logout", t1, "{\"all\": \"yes\"}", r);
    assert_error(400, "invalid_request");
    ck_assert_int_eq(harness_post_json(worker.port, "/v1/logout", t1, "{\"all\": true}", r), 204);
    snprintf(header, sizeof(header), "Authorization: Bearer %s\r\n", t2);
    ck_assert_int_eq(harness_request(worker.port, "GET", "/v1/session", header, NULL, r), 401);
}
END_TEST

START_TEST(bad_tokens)
{
    harness_request(worker.port, "GET", "/v1/session", NULL, NULL, r);
    assert_error(401, "invalid_token");
    harness_request(worker.port, "GET", "/v1/session", "Authorization: Basic YTpi\r\n", NULL, r);
    assert_error(401, "invalid_token");
    harness_request(worker.port, "GET", "/v1/session",
                    "Authorization: Bearer aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n", NULL, r);
    assert_error(401, "invalid_token");
    harness_request(worker.port, "GET", "/v1/session", "Authorization: Bearer short\r\n", NULL, r);
    assert_error(401, "invalid_token");
}
END_TEST

START_TEST(wrong_password_and_unknown_user_look_the_same)
{
    char name[64], json[256], body_wrong[256];

    harness_username(name, sizeof(name), "same");
    harness_register(worker.port, name, GOOD_PASSWORD);
    snprintf(json, sizeof(json), "{\"username\":\"%s\",\"password\":\"not it at all\"}", name);
    ck_assert_int_eq(harness_post_json(worker.port, "/v1/login", NULL, json, r), 401);
    ck_assert_int_lt(r->body_len, sizeof(body_wrong));
    memcpy(body_wrong, r->body, r->body_len + 1);
    ck_assert_int_eq(harness_post_json(worker.port, "/v1/login", NULL,
                                       "{\"username\":\"nobody_here_ever\",\"password\":\"not it at all\"}", r),
                     401);
    ck_assert_str_eq(r->body, body_wrong);
    assert_error(401, "invalid_credentials");
}
END_TEST

START_TEST(password_change)
{
    char name[64], t1[44], t2[44], json[256], header[80];

    harness_username(name, sizeof(name), "pw");
    harness_register(worker.port, name, GOOD_PASSWORD);
    ck_assert_int_eq(harness_login(worker.port, name, GOOD_PASSWORD, t1, NULL), 200);
    ck_assert_int_eq(harness_login(worker.port, name, GOOD_PASSWORD, t2, NULL), 200);
    /* t2 is checked once, so this worker holds it in its session cache. */
    snprintf(header, sizeof(header), "Authorization: Bearer %s\r\n", t2);
    ck_assert_int_eq(harness_request(worker.port, "GET", "/v1/session", header, NULL, r), 200);

    harness_post_json(worker.port, "/v1/password", t1,
                      "{\"old_password\":\"wrong wrong wrong\",\"new_password\":\"" OTHER_PASSWORD "\"}", r);
    assert_error(401, "invalid_credentials");
    harness_post_json(worker.port, "/v1/password", t1,
                      "{\"old_password\":\"" GOOD_PASSWORD "\",\"new_password\":\"short\"}", r);
    assert_error(400, "weak_password");
    snprintf(json, sizeof(json), "{\"old_password\":\"" GOOD_PASSWORD "\",\"new_password\":\"%s is me 9Q!\"}",
             name);
    harness_post_json(worker.port, "/v1/password", t1, json, r);
    assert_error(400, "weak_password");
    harness_post_json(worker.port, "/v1/password", t1, "{\"old_password\":1}", r);
    assert_error(400, "invalid_request");
    harness_post_json(worker.port, "/v1/password", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                      "{\"old_password\":\"" GOOD_PASSWORD "\",\"new_password\":\"" OTHER_PASSWORD "\"}", r);
    assert_error(401, "invalid_token");

    ck_assert_int_eq(harness_post_json(worker.port, "/v1/password", t1,
                                       "{\"old_password\":\"" GOOD_PASSWORD "\",\"new_password\":\"" OTHER_PASSWORD "\"}", r),
                     204);
    /* This session lives on; every other one is gone at once. */
    snprintf(header, sizeof(header), "Authorization: Bearer %s\r\n", t1);
    ck_assert_int_eq(harness_request(worker.port, "GET", "/v1/session", header, NULL, r), 200);
    snprintf(header, sizeof(header), "Authorization: Bearer %s\r\n", t2);
    ck_assert_int_eq(harness_request(worker.port, "GET", "/v1/session", header, NULL, r), 401);
    ck_assert_int_eq(harness_login(worker.port, name, GOOD_PASSWORD, NULL, NULL), 401);
    ck_assert_int_eq(harness_login(worker.port, name, OTHER_PASSWORD, NULL, NULL), 200);
}
END_TEST

START_TEST(not_found_and_method_not_allowed)
{
    char allow[32];

    harness_request(worker.port, "GET", "/nope", NULL, NULL, r);
    assert_error(404, "not_found");
    harness_request(worker.port, "GET", "/v1/login", NULL, NULL, r);
    assert_error(405, "method_not_allowed");
    ck_assert_int_eq(harness_header(r, "Allow", allow, sizeof(allow)), 0);
    ck_assert_str_eq(allow, "POST");
    harness_request(worker.port, "DELETE", "/v1/session", NULL, NULL, r);
    assert_error(405, "method_not_allowed");
    ck_assert_int_eq(harness_header(r, "Allow", allow, sizeof(allow)), 0);
    ck_assert_str_eq(allow, "GET, HEAD");
    /* A query string does not change the route. */
    ck_assert_int_eq(harness_request(worker.port, "GET", "/healthz?x=1", NULL, NULL, r), 200);
}
END_TEST

START_TEST(registration_closed)
{
    struct harness_worker closed;

    ck_assert_int_eq(harness_worker_start(&closed, "registration = closed", 1), 0);
    harness_post_json(closed.port, "/v1/users", NULL,
                      "{\"username\":\"closed1\",\"password\":\"" GOOD_PASSWORD "\"}", r);
    harness_worker_stop(&closed);
    assert_error(403, "registration_closed");
}
END_TEST

START_TEST(audit_row_per_attempt)
{
    char name[64], sql[256], *count;

    harness_username(name, sizeof(name), "audit");
    harness_register(worker.port, name, GOOD_PASSWORD);
    ck_assert_int_eq(harness_login(worker.port, name, GOOD_PASSWORD, NULL, NULL), 200);
    ck_assert_int_eq(harness_login(worker.port, name, "nope nope nope", NULL, NULL), 401);
    snprintf(sql, sizeof(sql),
             "SELECT string_agg(result, ',' ORDER BY id) FROM login_audit WHERE username = '%s'", name);
    count = harness_sql_value(sql);
    ck_assert_ptr_nonnull(count);
    ck_assert_str_eq(count, "success,bad_password");
    free(count);
}
END_TEST

Suite *api_suite(void)
{
    Suite *s = suite_create("api");
    TCase *tc = tcase_create("endpoints");

    tcase_add_unchecked_fixture(tc, api_setup, api_teardown);
    tcase_add_checked_fixture(tc, response_setup, response_teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, health_and_readiness);
    tcase_add_test(tc, register_then_duplicate_regardless_of_case);
    tcase_add_test(tc, register_rejects_bad_input);
    tcase_add_test(tc, login_session_logout);
    tcase_add_test(tc, logout_all_ends_every_session);
    tcase_add_test(tc, bad_tokens);
    tcase_add_test(tc, wrong_password_and_unknown_user_look_the_same);
    tcase_add_test(tc, password_change);
    tcase_add_test(tc, not_found_and_method_not_allowed);
    tcase_add_test(tc, registration_closed);
    tcase_add_test(tc, audit_row_per_attempt);
    suite_add_tcase(s, tc);
    return s;
}
