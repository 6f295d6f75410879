/* tests/integration/test_sessions.c - session lifetime (SPEC.md section
 * 4): idle and absolute expiry, last use written at most once a minute,
 * the periodic sweep; and the hash queue's bound (503, never unbounded). */
#include <check.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../lib/harness.h"

#define GOOD_PASSWORD "correct horse battery staple"

static struct harness_worker worker;
static struct harness_response *r;

static void sessions_setup(void)
{
    ck_assert_int_eq(harness_worker_start(&worker, NULL, 1), 0);
}

static void sessions_teardown(void)
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

/* A fresh user and session; the user's name goes to name[64]. */
static void new_session(char *name, char *token, char *header)
{
    harness_username(name, 64, "sess");
    harness_register(worker.port, name, GOOD_PASSWORD);
    ck_assert_int_eq(harness_login(worker.port, name, GOOD_PASSWORD, token, NULL), 200);
    snprintf(header, 80, "Authorization: Bearer %s\r\n", token);
}

static void sql_for_user(const char *name, const char *set)
{
    char sql[512];

    snprintf(sql, sizeof(sql),
             "UPDATE sessions SET %s WHERE user_id = (SELECT id FROM users WHERE username = '%s')", set,
             name);
    harness_sql(sql);
}

/* A worker may keep a valid session for at most 1 s past PostgreSQL's
 * last word (its cache): poll until the answer is `status`. */
static int session_status_within(const char *header, int status, int timeout_ms)
{
    long long deadline = harness_now_ms() + timeout_ms;
    int got;

    do {
        got = harness_request(worker.port, "GET", "/v1/session", header, NULL, r);
        if (got == status)
            break;
        poll(NULL, 0, 50);
    } while (harness_now_ms() < deadline);
    return got;
}

START_TEST(idle_expiry)
{
    char name[64], token[44], header[80];

    new_session(name, token, header);
    ck_assert_int_eq(harness_request(worker.port, "GET", "/v1/session", header, NULL, r), 200);
    sql_for_user(name, "last_used = now() - interval '1801 seconds'");
    ck_assert_int_eq(session_status_within(header, 401, 3000), 401);
}
END_TEST

START_TEST(absolute_expiry)
{
    char name[64], token[44], header[80];

    new_session(name, token, header);
    ck_assert_int_eq(harness_request(worker.port, "GET", "/v1/session", header, NULL, r), 200);
    sql_for_user(name, "expires_abs = now() - interval '1 second'");
    ck_assert_int_eq(session_status_within(header, 401, 3000), 401);
}
END_TEST

START_TEST(last_use_written_at_most_once_a_minute)
{
    char name[64], token[44], header[80], sql[256], *before, *after;

    new_session(name, token, header);
    snprintf(sql, sizeof(sql),
             "SELECT last_used FROM sessions WHERE user_id = (SELECT id FROM users WHERE username = '%s')",
             name);
    before = harness_sql_value(sql);
    ck_assert_int_eq(harness_request(worker.port, "GET", "/v1/session", header, NULL, r), 200);
    after = harness_sql_value(sql);
    ck_assert_str_eq(before, after); /* used seconds ago: no write */
    free(before);
    free(after);

    sql_for_user(name, "last_used = now() - interval '90 seconds'");
    before = harness_sql_value(sql);
    /* Once the cached answer (at most 1 s) is gone, the check reaches
     * PostgreSQL and writes the last use. */
    {
        long long deadline = harness_now_ms() + 3000;
        for (;;) {
            ck_assert_int_eq(harness_request(worker.port, "GET", "/v1/session", header, NULL, r), 200);
            after = harness_sql_value(sql);
            if (strcmp(before, after) != 0 || harness_now_ms() > deadline)
                break;
            free(after);
            poll(NULL, 0, 100);
        }
    }
    ck_assert_str_ne(before, after); /* over a minute old: written */
    free(before);
    free(after);
}
END_TEST

/* Stale sessions checked all at once: their last-use writes share
 * UPDATEs (worker/session_touch.c), yet every check is answered 200 and
 * every session's last use is written. */
START_TEST(last_use_of_many_sessions_at_once)
{
    enum { N = 12 };
    char name[64], tokens[N][44], sql[256], request[N][160], *written;
    int fds[N];

    harness_username(name, sizeof(name), "many");
    harness_register(worker.port, name, GOOD_PASSWORD);
    for (int i = 0; i < N; i++) {
        ck_assert_int_eq(harness_login(worker.port, name, GOOD_PASSWORD, tokens[i], NULL), 200);
        snprintf(request[i], sizeof(request[i]), "GET /v1/session HTTP/1.1\r\nAuthorization: Bearer %.43s\r\n\r\n",
                 tokens[i]);
    }
    sql_for_user(name, "last_used = now() - interval '90 seconds'");
    for (int i = 0; i < N; i++) {
        fds[i] = harness_connect(worker.port);
        ck_assert_int_ge(fds[i], 0);
    }
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(harness_send(fds[i], request[i], strlen(request[i])), 0);
    for (int i = 0; i < N; i++) {
        ck_assert_int_eq(harness_read_response(fds[i], r, 10000), 0);
        ck_assert_int_eq(r->status, 200);
        close(fds[i]);
    }
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM sessions WHERE last_used > now() - interval '60 seconds' "
             "AND user_id = (SELECT id FROM users WHERE username = '%s')", name);
    written = harness_sql_value(sql);
    ck_assert_str_eq(written, "12");
    free(written);
}
END_TEST

START_TEST(sweep_removes_expired_rows)
{
    char name[64], token[44], header[80], sql[256], *count;
    long long deadline;

    new_session(name, token, header);
    sql_for_user(name, "expires_abs = now() - interval '1 second'");
    harness_sql("INSERT INTO login_audit (username, address, result, at) "
                "VALUES ('ancient', '192.0.2.1', 'bad_password', now() - interval '91 days')");
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM sessions WHERE user_id = (SELECT id FROM users WHERE username = '%s')"
             " OR 0 < (SELECT count(*) FROM login_audit WHERE username = 'ancient')",
             name);
    /* A fresh worker sweeps a second after start, then every minute. */
    {
        struct harness_worker sweeper;
        ck_assert_int_eq(harness_worker_start(&sweeper, NULL, 1), 0);
        deadline = harness_now_ms() + 20000;
        for (;;) {
            count = harness_sql_value(sql);
            if (strcmp(count, "0") == 0 || harness_now_ms() > deadline)
                break;
            free(count);
            poll(NULL, 0, 100);
        }
        harness_worker_stop(&sweeper);
    }
    ck_assert_str_eq(count, "0");
    free(count);
}
END_TEST

START_TEST(full_hash_queue_answers_503)
{
    enum { CLIENTS = 12 };
    struct harness_worker small;
    int fds[CLIENTS], unavailable = 0, answered = 0;
    char name[64], request[512], json[160];

    ck_assert_int_eq(harness_worker_start(&small,
                                          "hash_threads = 1\nhash_queue_max = 2\n"
                                          "argon2_memlimit_kib = 19456\nargon2_opslimit = 3",
                                          1),
                     0);
    harness_username(name, sizeof(name), "busy");
    snprintf(json, sizeof(json), "{\"username\":\"%s\",\"password\":\"whatever it is\"}", name);
    for (int i = 0; i < CLIENTS; i++) {
        /* Each from its own address, so only the queue can refuse them. */
        snprintf(request, sizeof(request),
                 "POST /v1/login HTTP/1.1\r\nContent-Type: application/json\r\nX-Forwarded-For: 198.51.%d.%d\r\n"
                 "Content-Length: %zu\r\n\r\n%s",
                 100 + i, getpid() % 250, strlen(json), json);
        fds[i] = harness_connect(small.port);
        ck_assert_int_ge(fds[i], 0);
        ck_assert_int_eq(harness_send(fds[i], request, strlen(request)), 0);
    }
    for (int i = 0; i < CLIENTS; i++) {
        char retry[8];
        ck_assert_int_eq(harness_read_response(fds[i], r, 30000), 0);
        answered++;
        if (r->status == 503) {
            unavailable++;
            ck_assert_int_eq(harness_header(r, "Retry-After", retry, sizeof(retry)), 0);
            ck_assert_str_eq(retry, "1");
        } else {
            ck_assert_int_eq(r->status, 401);
        }
        close(fds[i]);
    }
    harness_worker_stop(&small);
    ck_assert_int_eq(answered, CLIENTS);
    ck_assert_int_gt(unavailable, 0);
    ck_assert_int_lt(unavailable, CLIENTS);
    /* Turned away before its password was judged, an attempt is no
     * failure: only the 401s count toward the throttle. */
    {
        char sql[256], *count, expect[16];

        snprintf(sql, sizeof(sql), "SELECT count(*) FROM login_failures WHERE username_lower = lower('%s')", name);
        count = harness_sql_value(sql);
        snprintf(expect, sizeof(expect), "%d", CLIENTS - unavailable);
        ck_assert_str_eq(count, expect);
        free(count);
        /* Every attempt is audited, the 503s as 'unavailable'. */
        snprintf(sql, sizeof(sql),
                 "SELECT count(*) FILTER (WHERE result = 'unavailable') || '/' || count(*) FROM login_audit "
                 "WHERE username = '%s'", name);
        count = harness_sql_value(sql);
        snprintf(expect, sizeof(expect), "%d/%d", unavailable, CLIENTS);
        ck_assert_str_eq(count, expect);
        free(count);
    }
}
END_TEST

START_TEST(revocation_elsewhere_is_seen_within_a_second)
{
    struct harness_worker other;
    char name[64], token[44], header[80];
    long long revoked_at, seen_at;

    new_session(name, token, header);
    ck_assert_int_eq(harness_worker_start(&other, NULL, 1), 0);
    /* This worker now holds the session in its cache. */
    ck_assert_int_eq(harness_request(worker.port, "GET", "/v1/session", header, NULL, r), 200);
    ck_assert_int_eq(harness_post_json(other.port, "/v1/logout", token, NULL, r), 204);
    revoked_at = harness_now_ms();
    ck_assert_int_eq(session_status_within(header, 401, 5000), 401);
    seen_at = harness_now_ms();
    harness_worker_stop(&other);
    /* 1 s of cache, plus generous slack for a loaded machine. */
    ck_assert_int_le(seen_at - revoked_at, 2500);
}
END_TEST

Suite *sessions_suite(void)
{
    Suite *s = suite_create("sessions");
    TCase *tc = tcase_create("lifetime");

    tcase_add_unchecked_fixture(tc, sessions_setup, sessions_teardown);
    tcase_add_checked_fixture(tc, response_setup, response_teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, idle_expiry);
    tcase_add_test(tc, absolute_expiry);
    tcase_add_test(tc, last_use_written_at_most_once_a_minute);
    tcase_add_test(tc, last_use_of_many_sessions_at_once);
    tcase_add_test(tc, sweep_removes_expired_rows);
    tcase_add_test(tc, revocation_elsewhere_is_seen_within_a_second);
    tcase_add_test(tc, full_hash_queue_answers_503);
    suite_add_tcase(s, tc);
    return s;
}
