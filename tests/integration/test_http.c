/* tests/integration/test_http.c - the HTTP layer against a real worker:
 * keep-alive, pipelining, chunked bodies, 100-continue, limits, malformed
 * input and slow clients; after each, the worker still serves. */
#include <check.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../lib/harness.h"

static struct harness_worker worker;
static struct harness_response *r;

static void http_setup(void)
{
    ck_assert_int_eq(harness_worker_start(&worker, NULL, 1), 0);
}

static void http_teardown(void)
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
    /* Whatever the test did, the worker must still answer. */
    ck_assert_int_eq(harness_request(worker.port, "GET", "/healthz", NULL, NULL, r), 200);
    free(r);
}

/* Sends raw bytes on a new connection and reads one answer. */
static int raw_exchange(const char *data, size_t len)
{
    int fd = harness_connect(worker.port);

    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(harness_send(fd, data, len), 0);
    if (harness_read_response(fd, r, 15000) != 0)
        r->status = r->status > 0 ? r->status : 0;
    close(fd);
    return r->status;
}

START_TEST(keep_alive_and_pipelining_answer_in_order)
{
    const char *three = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
                        "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n"
                        "GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n";
    int fd = harness_connect(worker.port);

    ck_assert_int_eq(harness_send(fd, three, strlen(three)), 0);
    ck_assert_int_eq(harness_read_response(fd, r, 10000), 0);
    ck_assert_int_eq(r->status, 200);
    ck_assert_ptr_nonnull(strstr(r->body, "ok"));
    ck_assert_int_eq(harness_read_response(fd, r, 10000), 0);
    ck_assert_int_eq(r->status, 404);
    ck_assert_int_eq(harness_read_response(fd, r, 10000), 0);
    ck_assert_int_eq(r->status, 200);
    ck_assert_ptr_nonnull(strstr(r->body, "ready"));
    ck_assert_int_eq(r->closed, 0);
    /* The same connection keeps serving. */
    ck_assert_int_eq(harness_send(fd, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 35), 0);
    ck_assert_int_eq(harness_read_response(fd, r, 10000), 0);
    ck_assert_int_eq(r->status, 200);
    close(fd);
}
END_TEST

/* HEAD answers as GET would, without the body, so the next answer on the
 * connection starts right after its head; HEAD on a POST route is a 405,
 * bodiless too. */
START_TEST(head_answers_like_get_without_a_body)
{
    const char *reqs = "HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
                       "HEAD /v1/login HTTP/1.1\r\nHost: x\r\n\r\n"
                       "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    char all[4096], *get, *login, *end;
    size_t n = 0;
    ssize_t got;
    int fd = harness_connect(worker.port);
    long head_length, get_length;

    ck_assert_int_eq(harness_send(fd, reqs, strlen(reqs)), 0);
    while (n < sizeof(all) - 1 && (got = recv(fd, all + n, sizeof(all) - 1 - n, 0)) > 0)
        n += (size_t)got;
    all[n] = '\0';
    close(fd);
    ck_assert_msg(strncmp(all, "HTTP/1.1 200 ", 13) == 0, "got: %s", all);
    end = strstr(all, "\r\n\r\n");
    ck_assert_ptr_nonnull(end);
    login = end + 4;
    ck_assert_msg(strncmp(login, "HTTP/1.1 405 ", 13) == 0, "after the HEAD head: %s", login);
    ck_assert_ptr_nonnull(strstr(login, "Allow: POST\r\n"));
    end = strstr(login, "\r\n\r\n");
    ck_assert_ptr_nonnull(end);
    get = end + 4;
    ck_assert_msg(strncmp(get, "HTTP/1.1 200 ", 13) == 0, "after the 405 head: %s", get);
    ck_assert(sscanf(strstr(all, "Content-Length: "), "Content-Length: %ld", &head_length) == 1);
    ck_assert(sscanf(strstr(get, "Content-Length: "), "Content-Length: %ld", &get_length) == 1);
    ck_assert_int_gt(get_length, 0);
    ck_assert_int_eq(head_length, get_length);
    end = strstr(get, "\r\n\r\n");
    ck_assert_ptr_nonnull(end);
    ck_assert_int_eq((long)strlen(end + 4), get_length);
}
END_TEST

START_TEST(pipelined_database_requests_keep_order)
{
    char req[4096] = "";
    int fd = harness_connect(worker.port);

    for (int i = 0; i < 10; i++)
        strcat(req, i % 2 == 0 ? "GET /v1/session HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                                 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n"
                               : "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    ck_assert_int_eq(harness_send(fd, req, strlen(req)), 0);
    for (int i = 0; i < 10; i++) {
        ck_assert_int_eq(harness_read_response(fd, r, 10000), 0);
        ck_assert_int_eq(r->status, i % 2 == 0 ? 401 : 200);
    }
    close(fd);
}
END_TEST

START_TEST(connection_close_is_honoured)
{
    int fd = harness_connect(worker.port);
    char byte;

    ck_assert_int_eq(harness_send(fd, "GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n", 44), 0);
    ck_assert_int_eq(harness_read_response(fd, r, 10000), 0);
    ck_assert_int_eq(r->closed, 1);
    ck_assert_int_le(read(fd, &byte, 1), 0);
    close(fd);
}
END_TEST

START_TEST(chunked_body_and_expect_continue)
{
    const char *part1 = "{\"username\":\"nob", *part2 = "ody\",\"password\":\"nothing\"}";
    char chunked[512];
    const char *head = "POST /v1/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                       "Expect: 100-continue\r\nContent-Length: 42\r\n\r\n";
    int fd;
    char interim[64];
    ssize_t n;

    snprintf(chunked, sizeof(chunked),
             "POST /v1/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
             "Transfer-Encoding: chunked\r\n\r\n%zx\r\n%s\r\n%zx\r\n%s\r\n0\r\n\r\n",
             strlen(part1), part1, strlen(part2), part2);
    ck_assert_int_eq(raw_exchange(chunked, strlen(chunked)), 401);

    fd = harness_connect(worker.port);
    ck_assert_int_eq(harness_send(fd, head, strlen(head)), 0);
    n = recv(fd, interim, sizeof(interim) - 1, 0);
    ck_assert_int_gt(n, 0);
    interim[n] = '\0';
    ck_assert_ptr_nonnull(strstr(interim, "HTTP/1.1 100 Continue"));
    ck_assert_int_eq(harness_send(fd, "{\"username\":\"nobody\",\"password\":\"nothing\"}", 42), 0);
    ck_assert_int_eq(harness_read_response(fd, r, 15000), 0);
    ck_assert_int_eq(r->status, 401);
    close(fd);
}
END_TEST

START_TEST(oversized_headers_get_431)
{
    char *big = malloc(20000);

    strcpy(big, "GET /healthz HTTP/1.1\r\nX-Big: ");
    memset(big + strlen(big), 'a', 9000);
    strcpy(big + 31 + 9000 - 1, "\r\n\r\n");
    ck_assert_int_eq(raw_exchange(big, strlen(big)), 431);
    ck_assert_ptr_nonnull(strstr(r->body, "headers_too_large"));
    /* Many fields of 92 bytes a line each: 80 of them (7.2 KiB) pass, 90
     * (8.1 KiB, their separators counted) do not. */
    for (int fields = 80; fields <= 90; fields += 10) {
        size_t n = (size_t)sprintf(big, "GET /healthz HTTP/1.1\r\n");

        for (int i = 0; i < fields; i++)
            n += (size_t)sprintf(big + n, "X-Pad-%02d: %080d\r\n", i, 0);
        strcpy(big + n, "\r\n");
        ck_assert_int_eq(raw_exchange(big, strlen(big)), fields == 80 ? 200 : 431);
    }
    free(big);
}
END_TEST

START_TEST(oversized_body_gets_413)
{
    char head[256];

    snprintf(head, sizeof(head), "POST /v1/login HTTP/1.1\r\nContent-Type: application/json\r\n"
                                 "Content-Length: 17000\r\n\r\n");
    ck_assert_int_eq(raw_exchange(head, strlen(head)), 413);
    ck_assert_ptr_nonnull(strstr(r->body, "body_too_large"));
    /* Chunked bodies are counted as they come. */
    {
        char *chunked = malloc(20000);
        int n = snprintf(chunked, 20000, "POST /v1/login HTTP/1.1\r\nContent-Type: application/json\r\n"
                                         "Transfer-Encoding: chunked\r\n\r\n4268\r\n");
        memset(chunked + n, 'x', 17000);
        memcpy(chunked + n + 17000, "\r\n0\r\n\r\n", 8);
        ck_assert_int_eq(raw_exchange(chunked, (size_t)n + 17007), 413);
        free(chunked);
    }
}
END_TEST

START_TEST(malformed_requests_get_400)
{
    const char *bad[] = {
        "GARBAGE\r\n\r\n",
        "GET / HTTP/9.9\r\n\r\n",
        "GET /healthz HTTP/1.1\r\nBad Header\r\n\r\n",
        "GET /healthz HTTP/1.1\r\nHost : x\r\n\r\n", /* space before the colon */
        "POST /v1/login HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
        "POST /v1/login HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        "\x01\x02\x03\x04\r\n\r\n",
    };

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ck_assert_int_eq(raw_exchange(bad[i], strlen(bad[i])), 400);
        ck_assert_ptr_nonnull(strstr(r->body, "invalid_request"));
    }
}
END_TEST

/* An Expect the worker cannot meet is refused before the body is read. */
START_TEST(unmet_expectation_gets_417)
{
    const char *req = "POST /v1/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      "Expect: 200-ok\r\nContent-Length: 2\r\n\r\n{}";

    const char *second = "POST /v1/login HTTP/1.1\r\nContent-Type: application/json\r\n"
                         "Expect: 100-continue\r\nExpect: 200-ok\r\nContent-Length: 2\r\n\r\n{}";
    const char *blanks = "POST /v1/login HTTP/1.1\r\nContent-Type: application/json\r\n"
                         "Expect: 100-CONTINUE \t\r\nContent-Length: 2\r\n\r\n{}";

    ck_assert_int_eq(raw_exchange(req, strlen(req)), 417);
    ck_assert_ptr_nonnull(strstr(r->body, "expectation_failed"));
    /* Every Expect line counts, not only the first. */
    ck_assert_int_eq(raw_exchange(second, strlen(second)), 417);
    /* Trailing blanks are not part of the value; case does not matter
     * (the body {} then fails validation: 400, not 417). */
    ck_assert_int_eq(raw_exchange(blanks, strlen(blanks)), 400);
}
END_TEST

/* A method http_parser does not know is still a method: 405 with Allow on
 * a route, 404 elsewhere, as for any method a route does not take (and
 * the connection closes: the rest of such a request cannot be framed). */
START_TEST(unknown_methods_get_405_or_404)
{
    const char *brew = "BREW /v1/login HTTP/1.1\r\nHost: x\r\n\r\n";
    const char *lower = "get /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    const char *nowhere = "BREW /nowhere?pot=1 HTTP/1.1\r\n\r\n";
    const char *not_a_token = "BR@W /v1/login HTTP/1.1\r\n\r\n";
    const char *bad_version = "BREW /v1/login HTTP/1.1x\r\n\r\n";
    char allow[32];

    ck_assert_int_eq(raw_exchange(brew, strlen(brew)), 405);
    ck_assert_ptr_nonnull(strstr(r->body, "method_not_allowed"));
    ck_assert_int_eq(harness_header(r, "Allow", allow, sizeof(allow)), 0);
    ck_assert_str_eq(allow, "POST");
    ck_assert_int_eq(r->closed, 1);
    ck_assert_int_eq(raw_exchange(lower, strlen(lower)), 405);
    ck_assert_int_eq(harness_header(r, "Allow", allow, sizeof(allow)), 0);
    ck_assert_str_eq(allow, "GET, HEAD");
    ck_assert_int_eq(raw_exchange(nowhere, strlen(nowhere)), 404);
    ck_assert_int_eq(raw_exchange(not_a_token, strlen(not_a_token)), 400);
    ck_assert_int_eq(raw_exchange(bad_version, strlen(bad_version)), 400);
}
END_TEST

/* Two Authorization lines are not one token: refused even when the first
 * is valid. */
START_TEST(a_second_authorization_header_is_refused)
{
    char name[64], token[44], req[400];

    harness_username(name, sizeof(name), "twoauth");
    harness_register(worker.port, name, "violet mango harbour 1912");
    ck_assert_int_eq(harness_login(worker.port, name, "violet mango harbour 1912", token, NULL), 200);
    snprintf(req, sizeof(req), "GET /v1/session HTTP/1.1\r\nAuthorization: Bearer %s\r\n\r\n", token);
    ck_assert_int_eq(raw_exchange(req, strlen(req)), 200);
    /* Blanks after a field value are not part of it (RFC 9110 5.5). */
    snprintf(req, sizeof(req), "GET /v1/session HTTP/1.1\r\nAuthorization: Bearer %s \t \r\n\r\n", token);
    ck_assert_int_eq(raw_exchange(req, strlen(req)), 200);
    snprintf(req, sizeof(req),
             "GET /v1/session HTTP/1.1\r\nAuthorization: Bearer %s\r\nAuthorization: Bearer %s\r\n\r\n", token,
             token);
    ck_assert_int_eq(raw_exchange(req, strlen(req)), 401);
}
END_TEST

/* \u0000 is valid JSON, but no username or password holds it: 400 that
 * says so, not "not valid JSON". */
START_TEST(nul_in_a_credential_is_refused_by_name)
{
    const char *json = "{\"username\":\"someone\",\"password\":\"long enough\\u0000password\"}";

    ck_assert_int_eq(harness_post_json(worker.port, "/v1/login", NULL, json, r), 400);
    ck_assert_msg(strstr(r->body, "password\\\" must be a string without U+0000") != NULL, "%s", r->body);
}
END_TEST

/* Valid JSON is read as JSON: a number past 64 bits in a member the
 * endpoint ignores does not make the body invalid. */
START_TEST(huge_numbers_in_ignored_members_are_valid_json)
{
    const char *body = "{\"username\":\"nobody_here\",\"password\":\"whatever it is\","
                       "\"n\":123456789012345678901234567890}";

    ck_assert_int_eq(harness_post_json(worker.port, "/v1/login", NULL, body, r), 401);
}
END_TEST

START_TEST(slow_client_is_cut_off_and_others_are_served)
{
    int slow = harness_connect(worker.port), silent = harness_connect(worker.port);
    long long start = harness_now_ms();
    struct pollfd pfd = { .fd = silent, .events = POLLIN };
    char byte;

    /* Half a request head, then nothing. */
    ck_assert_int_eq(harness_send(slow, "GET /healthz HTTP/1.1\r\nHost:", 28), 0);
    ck_assert_int_eq(harness_request(worker.port, "GET", "/healthz", NULL, NULL, r), 200);
    ck_assert_int_eq(harness_read_response(slow, r, 20000), 0);
    ck_assert_int_eq(r->status, 408);
    ck_assert_int_ge(harness_now_ms() - start, 9000);
    close(slow);
    /* A connection that never sent a byte is closed by the same timeout,
     * without an answer. */
    ck_assert_int_eq(poll(&pfd, 1, 10000), 1);
    ck_assert_int_eq(recv(silent, &byte, 1, 0), 0);
    close(silent);
}
END_TEST

Suite *http_suite(void)
{
    Suite *s = suite_create("http");
    TCase *tc = tcase_create("protocol");

    tcase_add_unchecked_fixture(tc, http_setup, http_teardown);
    tcase_add_checked_fixture(tc, response_setup, response_teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, keep_alive_and_pipelining_answer_in_order);
    tcase_add_test(tc, head_answers_like_get_without_a_body);
    tcase_add_test(tc, pipelined_database_requests_keep_order);
    tcase_add_test(tc, connection_close_is_honoured);
    tcase_add_test(tc, chunked_body_and_expect_continue);
    tcase_add_test(tc, oversized_headers_get_431);
    tcase_add_test(tc, oversized_body_gets_413);
    tcase_add_test(tc, malformed_requests_get_400);
    tcase_add_test(tc, unmet_expectation_gets_417);
    tcase_add_test(tc, unknown_methods_get_405_or_404);
    tcase_add_test(tc, a_second_authorization_header_is_refused);
    tcase_add_test(tc, huge_numbers_in_ignored_members_are_valid_json);
    tcase_add_test(tc, nul_in_a_credential_is_refused_by_name);
    tcase_add_test(tc, slow_client_is_cut_off_and_others_are_served);
    suite_add_tcase(s, tc);
    return s;
}
