/* tests/fault/test_fault.c - SPEC.md section 6 under load: each test
 * drives wrk against the session and login endpoints (and /healthz) of a
 * real cluster, injects a fault, and asserts counts from wrk's summary and
 * from `ctl status`. */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sem.h>
#include <unistd.h>

#include "../lib/cluster.h"
#include "../lib/harness.h"

#define GOOD_PASSWORD "correct horse battery staple"
#define FAST "memory_soft_limit_mb = 200\nmemory_hard_limit_mb = 400\n"

#define load cluster_load
#define load_start cluster_load_start
#define load_finish cluster_load_finish
#define assert_no_failures cluster_load_assert_no_failures

/* Polls (10 s) until every slot of the gate is free again. */
static int gate_wait_free(int gate, int slots)
{
    for (int i = 0; i < 500 && semctl(gate, 0, GETVAL) != slots; i++)
        cluster_pause_ms(20);
    return semctl(gate, 0, GETVAL);
}

START_TEST(sigkill_fails_only_what_the_worker_held)
{
    struct cluster c;
    struct wrk_run fresh;
    struct load l = { 0 };
    int victim, gate;

    ck_assert_int_eq(cluster_start(&c, 3, FAST, 1), 0);
    load_start(&l, &c, 5, 1);
    /* New connections (Connection: close) must never fail. */
    wrk_start(&fresh, &c, "/healthz", 8, 5, "-H 'Connection: close'");
    cluster_pause_ms(1500);
    victim = cluster_worker_pid(&c, "ready", 1);
    ck_assert_int_gt(victim, 0);
    gate = cluster_worker_gate(victim);
    ck_assert_int_ge(gate, 0);
    kill(victim, SIGKILL); /* most likely mid-hash, holding a slot of the gate */
    load_finish(&l);
    wrk_finish(&fresh);
    /* At most what the victim held: each wrk connection has one request in flight. */
    ck_assert_msg(l.session.errors + l.session.non_2xx <= 16, "session: %ld errors", l.session.errors);
    ck_assert_msg(l.login.errors + l.login.non_2xx <= 4, "login: %ld errors", l.login.errors);
    ck_assert_msg(fresh.errors <= 8 && fresh.non_2xx == 0, "new connections: %ld errors", fresh.errors);
    ck_assert_int_eq(cluster_wait_workers(&c, 3, 3, 15000), 0);
    ck_assert_int_eq(cluster_restarts(&c, "crash"), 1);
    /* The killed worker's slot came back: the whole machine hashes again. */
    ck_assert_int_eq(gate_wait_free(gate, (int)sysconf(_SC_NPROCESSORS_ONLN)), (int)sysconf(_SC_NPROCESSORS_ONLN));
    ck_assert_int_eq(cluster_worker_gate(cluster_worker_pid(&c, "ready", 0)), gate);
    cluster_stop(&c);
    ck_assert_int_eq(semctl(gate, 0, GETVAL), -1); /* the supervisor removed it */
}
END_TEST

START_TEST(sigstop_is_replaced_and_others_keep_serving)
{
    struct cluster c;
    struct wrk_run fresh;
    int victim;
    long long start, deadline;

    ck_assert_int_eq(cluster_start(&c, 3, FAST, 1), 0);
    wrk_start(&fresh, &c, "/healthz", 8, 6, "-H 'Connection: close'");
    cluster_pause_ms(1000);
    victim = cluster_worker_pid(&c, "ready", 0);
    kill(victim, SIGSTOP);
    start = harness_now_ms();
    deadline = start + 10000;
    while (harness_now_ms() < deadline && cluster_restarts(&c, "hang") < 1)
        cluster_pause_ms(20);
    ck_assert_int_eq(cluster_restarts(&c, "hang"), 1);
    /* health_timeout 1000 ms + one 100 ms interval, with slack for a loaded machine */
    ck_assert_int_le(harness_now_ms() - start, 1100 + 1500);
    wrk_finish(&fresh);
    /* Only connections the stopped worker had taken can fail. */
    ck_assert_msg(fresh.errors <= 8 && fresh.non_2xx == 0, "%ld errors of %ld", fresh.errors, fresh.requests);
    ck_assert_int_gt(fresh.requests, 1000);
    ck_assert_int_eq(cluster_wait_workers(&c, 3, 3, 15000), 0);
    cluster_stop(&c);
}
END_TEST

/* A worker that really leaks (16 KiB a request) passes its soft limit
 * again and again under load: each time it is replaced gracefully. */
static void leak_recycled_under_load(int keep_alive)
{
    struct cluster c;
    struct load l = { 0 };

    setenv("VERONA_TEST_LEAK_KB", "16", 1);
    ck_assert_int_eq(cluster_start(&c, 2, "memory_soft_limit_mb = 48\nmemory_hard_limit_mb = 400\n", 1), 0);
    unsetenv("VERONA_TEST_LEAK_KB");
    load_start(&l, &c, 6, keep_alive);
    load_finish(&l);
    assert_no_failures(&l);
    ck_assert_int_ge(cluster_restarts(&c, "memory"), 1);
    ck_assert_int_eq(cluster_restarts(&c, "crash"), 0);
    ck_assert(cluster_log_contains(&c, "\"event\":\"worker_replace\""));
    cluster_stop(&c);
}

START_TEST(leaking_worker_is_recycled_with_zero_failures)
{
    leak_recycled_under_load(1);
}
END_TEST

START_TEST(leaking_worker_without_keep_alive_is_recycled_with_zero_failures)
{
    leak_recycled_under_load(0);
}
END_TEST

START_TEST(hard_limit_kills_at_once)
{
    struct cluster c;
    struct wrk_run run;
    long long deadline;

    setenv("VERONA_TEST_LEAK_KB", "4096", 1);
    ck_assert_int_eq(cluster_start(&c, 2, "memory_soft_limit_mb = 40\nmemory_hard_limit_mb = 60\n", 1), 0);
    unsetenv("VERONA_TEST_LEAK_KB");
    wrk_start(&run, &c, "/healthz", 4, 3, NULL);
    deadline = harness_now_ms() + 10000;
    while (harness_now_ms() < deadline && !cluster_log_contains(&c, "over 60 MiB"))
        cluster_pause_ms(50);
    wrk_finish(&run);
    ck_assert(cluster_log_contains(&c, "\"event\":\"worker_kill\""));
    ck_assert(cluster_log_contains(&c, "over 60 MiB"));
    ck_assert_int_ge(cluster_restarts(&c, "memory"), 1);
    ck_assert_int_eq(kill(c.pid, 0), 0);
    cluster_stop(&c);
}
END_TEST

START_TEST(scale_up_and_down_under_load_fails_nothing)
{
    struct cluster c;
    struct load l = { 0 };
    char out[256];

    ck_assert_int_eq(cluster_start(&c, 2, FAST, 1), 0);
    load_start(&l, &c, 7, 1);
    cluster_pause_ms(1000);
    ck_assert_int_eq(cluster_ctl(&c, "scale 6", out, sizeof(out)), 0);
    ck_assert_int_eq(cluster_wait_workers(&c, 6, 6, 15000), 0);
    ck_assert_int_eq(cluster_ctl(&c, "scale 1", out, sizeof(out)), 0);
    ck_assert_int_eq(cluster_wait_workers(&c, 1, 1, 15000), 0);
    load_finish(&l);
    assert_no_failures(&l);
    ck_assert_int_eq(cluster_restarts(&c, "scale"), 5);
    ck_assert_int_eq(cluster_restarts(&c, "crash"), 0);
    cluster_stop(&c);
}
END_TEST

static void recycle_under_load(int keep_alive)
{
    struct cluster c;
    struct load l = { 0 };
    char out[256], args[64];

    ck_assert_int_eq(cluster_start(&c, 2, FAST, 1), 0);
    load_start(&l, &c, 6, keep_alive);
    for (int i = 0; i < 3; i++) {
        int pid;
        cluster_pause_ms(800);
        pid = cluster_worker_pid(&c, "ready", 0);
        snprintf(args, sizeof(args), "recycle %d", pid);
        ck_assert_int_eq(cluster_ctl(&c, args, out, sizeof(out)), 0);
        ck_assert_int_eq(cluster_wait_workers(&c, 2, 2, 15000), 0);
    }
    load_finish(&l);
    assert_no_failures(&l);
    ck_assert_int_eq(cluster_restarts(&c, "recycle"), 3);
    cluster_stop(&c);
}

START_TEST(recycle_with_keep_alive_fails_nothing)
{
    recycle_under_load(1);
}
END_TEST

START_TEST(recycle_without_keep_alive_fails_nothing)
{
    recycle_under_load(0);
}
END_TEST

Suite *fault_suite(void)
{
    Suite *s = suite_create("fault");
    TCase *tc = tcase_create("load");

    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, sigkill_fails_only_what_the_worker_held);
    tcase_add_test(tc, sigstop_is_replaced_and_others_keep_serving);
    tcase_add_test(tc, leaking_worker_is_recycled_with_zero_failures);
    tcase_add_test(tc, leaking_worker_without_keep_alive_is_recycled_with_zero_failures);
    tcase_add_test(tc, hard_limit_kills_at_once);
    tcase_add_test(tc, scale_up_and_down_under_load_fails_nothing);
    tcase_add_test(tc, recycle_with_keep_alive_fails_nothing);
    tcase_add_test(tc, recycle_without_keep_alive_fails_nothing);
    suite_add_tcase(s, tc);
    return s;
}
