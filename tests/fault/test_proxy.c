/* tests/fault/test_proxy.c - deploy/haproxy.cfg with a real HAProxy in
 * front of two Verona nodes: stopping one node under load fails no
 * request. */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../lib/cluster.h"
#include "../lib/harness.h"

#define GOOD_PASSWORD "correct horse battery staple"
#define NODE "memory_soft_limit_mb = 200\nmemory_hard_limit_mb = 400\n"

START_TEST(stopping_one_node_behind_haproxy_fails_nothing)
{
    struct cluster a, b;
    struct wrk_run session, fresh;
    struct harness_response *r = calloc(1, sizeof(*r));
    char cmd[2000], dir[400], name[64], token[44], extra[200];
    int front = harness_free_port();
    long long deadline;
    FILE *f;
    int pid = 0;

    ck_assert_int_eq(cluster_start(&a, 2, NODE, 1), 0);
    ck_assert_int_eq(cluster_start(&b, 2, NODE, 1), 0);
    snprintf(dir, sizeof(dir), "%s/haproxy", a.dir);
    snprintf(cmd, sizeof(cmd),
             "mkdir -p %s && sed -e 's/127.0.0.1:8000/127.0.0.1:%d/' -e 's/127.0.0.1:8080 check/127.0.0.1:%d check/' "
             "-e 's/127.0.0.1:8081 check/127.0.0.1:%d check/' %s/deploy/haproxy.cfg > %s/haproxy.cfg && "
             "haproxy -D -p %s/haproxy.pid -f %s/haproxy.cfg",
             dir, front, a.port, b.port, getenv("VERONA_ROOT"), dir, dir, dir);
    ck_assert_int_eq(system(cmd), 0);
    deadline = harness_now_ms() + 10000;
    while (harness_now_ms() < deadline && harness_request(front, "GET", "/readyz", NULL, NULL, r) != 200)
        cluster_pause_ms(50);
    ck_assert_int_eq(r->status, 200);

    harness_username(name, sizeof(name), "behind");
    harness_register(a.port, name, GOOD_PASSWORD);
    ck_assert_int_eq(harness_login(front, name, GOOD_PASSWORD, token, NULL), 200);
    snprintf(extra, sizeof(extra), "-H 'Authorization: Bearer %s'", token);
    {
        struct cluster via = a;
        via.port = front;
        wrk_start(&session, &via, "/v1/session", 16, 5, extra);
        wrk_start(&fresh, &via, "/healthz", 4, 5, "-H 'Connection: close'");
    }
    cluster_pause_ms(1500);
    cluster_stop(&a); /* graceful: its workers drain, its socket closes */
    wrk_finish(&session);
    wrk_finish(&fresh);
    ck_assert_msg(session.errors == 0 && session.non_2xx == 0, "session: %ld errors, %ld non-2xx of %ld (%s)",
                  session.errors, session.non_2xx, session.requests, session.out_path);
    ck_assert_msg(fresh.errors == 0 && fresh.non_2xx == 0, "new connections: %ld errors, %ld non-2xx of %ld (%s)",
                  fresh.errors, fresh.non_2xx, fresh.requests, fresh.out_path);
    ck_assert_int_gt(session.requests, 1000);
    /* HAProxy also overwrote what a client claims to be. */
    ck_assert_int_eq(harness_request(front, "GET", "/healthz", "X-User-Id: 7\r\n", NULL, r), 200);

    snprintf(cmd, sizeof(cmd), "%s/haproxy.pid", dir);
    f = fopen(cmd, "r");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fscanf(f, "%d", &pid), 1);
    fclose(f);
    /* No node left: HAProxy's own 503 says when to come back. */
    cluster_stop(&b);
    deadline = harness_now_ms() + 10000;
    while (harness_now_ms() < deadline && harness_request(front, "GET", "/healthz", NULL, NULL, r) != 503)
        cluster_pause_ms(50);
    ck_assert_int_eq(r->status, 503);
    ck_assert_int_eq(harness_header(r, "Retry-After", extra, sizeof(extra)), 0);
    ck_assert_str_eq(extra, "1");
    ck_assert_ptr_nonnull(strstr(r->body, "\"unavailable\""));
    kill(pid, SIGTERM);
    free(r);
}
END_TEST

Suite *proxy_suite(void)
{
    Suite *s = suite_create("proxy");
    TCase *tc = tcase_create("haproxy");

    tcase_set_timeout(tc, 90);
    tcase_add_test(tc, stopping_one_node_behind_haproxy_fails_nothing);
    suite_add_tcase(s, tc);
    return s;
}
