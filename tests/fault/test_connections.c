/* tests/fault/test_connections.c - connections per worker (SPEC 5, 10.8):
 * each process raises its open-files limit to fit max_connections, so
 * 10,000 idle keep-alive connections on a 2-worker pool leave room for
 * other clients; and a worker at its cap takes no more until one closes. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "../lib/cluster.h"
#include "../lib/harness.h"

#define GOOD_PASSWORD "correct horse battery staple"
#define HEALTHZ "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n"

/* verona_connections_open from the cluster's /metrics, or -1. */
static long connections_open(const struct cluster *c)
{
    struct harness_response *r = calloc(1, sizeof(*r));
    const char *at;
    long n = -1;

    if (harness_request(cluster_metrics_port(c), "GET", "/metrics", NULL, NULL, r) == 200 &&
        (at = strstr(r->body, "\nverona_connections_open ")) != NULL)
        n = atol(at + strlen("\nverona_connections_open "));
    free(r);
    return n;
}

/* Polls until the pool holds `want` connections (or the deadline). */
static long wait_connections(const struct cluster *c, long want, int timeout_ms)
{
    long long deadline = harness_now_ms() + timeout_ms;
    long n;

    while ((n = connections_open(c)) != want && harness_now_ms() < deadline)
        cluster_pause_ms(100);
    return n;
}

/* `count` connections, each with one request sent and never read. */
static int *open_idle(int port, int count)
{
    int *fds = calloc((size_t)count, sizeof(int));

    ck_assert_ptr_nonnull(fds);
    for (int i = 0; i < count; i++) {
        fds[i] = harness_connect(port);
        ck_assert_msg(fds[i] >= 0, "connection %d of %d failed", i, count);
        ck_assert_int_eq(harness_send(fds[i], HEALTHZ, strlen(HEALTHZ)), 0);
    }
    return fds;
}

static void close_all(int *fds, int from, int to)
{
    for (int i = from; i < to; i++)
        close(fds[i]);
}

START_TEST(ten_thousand_idle_connections_leave_room_for_others)
{
    struct cluster c;
    struct rlimit rl;
    char name[64];
    struct harness_response *r = calloc(1, sizeof(*r));
    int *fds;
    long held;

    ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
    ck_assert_msg(rl.rlim_max >= 10300, "this machine allows only %lu open files", (unsigned long)rl.rlim_max);
    /* Started with the usual soft limit of 1024 (a shell's, systemd's
     * default): the processes must raise it themselves. */
    rl.rlim_cur = 1024;
    ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
    ck_assert_int_eq(cluster_start(&c, 2, NULL, 1), 0);
    rl.rlim_cur = rl.rlim_max; /* this test's own 10,000 */
    ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
    harness_username(name, sizeof(name), "crowd");
    harness_register(c.port, name, GOOD_PASSWORD);

    fds = open_idle(c.port, 10000);
    held = wait_connections(&c, 10000, 30000);
    ck_assert_msg(held == 10000, "the pool holds %ld of 10000 connections", held);
    ck_assert_int_eq(harness_request(c.port, "GET", "/healthz", NULL, NULL, r), 200);
    ck_assert_int_eq(harness_login(c.port, name, GOOD_PASSWORD, NULL, NULL), 200);
    ck_assert_int_eq(cluster_count(&c, "ready"), 2);
    close_all(fds, 0, 10000);
    free(fds);
    cluster_stop(&c);
    free(r);
}
END_TEST

START_TEST(at_the_cap_a_worker_takes_no_more_until_one_closes)
{
    struct cluster c;
    struct harness_response *r = calloc(1, sizeof(*r));
    int *fds;
    long held;

    ck_assert_int_eq(cluster_start(&c, 1, "max_connections = 50\n", 1), 0);
    fds = open_idle(c.port, 80);
    held = wait_connections(&c, 50, 10000);
    ck_assert_msg(held == 50, "the worker holds %ld connections, its cap is 50", held);
    cluster_pause_ms(1000); /* and it stays at the cap */
    ck_assert_int_eq(connections_open(&c), 50);
    /* The last one waited in the backlog: it is answered once room is made. */
    ck_assert_int_eq(harness_read_response(fds[79], r, 300), -1);
    close_all(fds, 0, 40);
    ck_assert_int_eq(harness_read_response(fds[79], r, 10000), 0);
    ck_assert_int_eq(r->status, 200);
    held = wait_connections(&c, 40, 10000);
    ck_assert_msg(held == 40, "after 40 closed, the worker holds %ld (the 40 left)", held);
    close_all(fds, 40, 80);
    free(fds);
    cluster_stop(&c);
    free(r);
}
END_TEST

Suite *connections_suite(void)
{
    Suite *s = suite_create("connections");
    TCase *tc = tcase_create("connections");

    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, at_the_cap_a_worker_takes_no_more_until_one_closes);
    tcase_add_test(tc, ten_thousand_idle_connections_leave_room_for_others);
    suite_add_tcase(s, tc);
    return s;
}
