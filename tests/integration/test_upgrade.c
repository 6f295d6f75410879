/* tests/integration/test_upgrade.c - `verona ctl upgrade` and SIGUSR2
 * (SPEC.md section 6, 10.12) with real processes: the supervisor runs
 * from its own copy of `verona`, which each test replaces the way a
 * package upgrade does. The same pid and the same workers afterwards,
 * counters that do not go back, refusals that change nothing, and a
 * supervisor that still reloads, scales, recycles, replaces a killed
 * worker and stops cleanly (under ASan and UBSan). The load tests are in
 * tests/fault/test_upgrade.c. */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../lib/cluster.h"
#include "../lib/harness.h"

#define ROOMY "memory_soft_limit_mb = 900\nmemory_hard_limit_mb = 1000\n"

static void start_own(struct cluster *c, int workers, const char *extra)
{
    cluster_prepare(c, workers, extra);
    cluster_own_binary(c);
    ck_assert_int_eq(cluster_launch(c, 1), 0);
}

/* The status's "supervisor" object's integer member `name`. */
static long long supervisor_field(const struct cluster *c, const char *name)
{
    json_t *doc = cluster_status(c);
    long long v;

    ck_assert_ptr_nonnull(doc);
    v = json_integer_value(json_object_get(json_object_get(doc, "supervisor"), name));
    json_decref(doc);
    return v;
}

/* The pids of the workers, sorted, into pids[] (n of them). */
static int worker_pids(const struct cluster *c, int *pids, int max)
{
    json_t *doc = cluster_status(c), *workers;
    int n = 0;

    ck_assert_ptr_nonnull(doc);
    workers = json_object_get(doc, "workers");
    for (size_t i = 0; i < json_array_size(workers) && n < max; i++)
        pids[n++] = (int)json_integer_value(json_object_get(json_array_get(workers, i), "pid"));
    json_decref(doc);
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && pids[j - 1] > pids[j]; j--) {
            int t = pids[j];
            pids[j] = pids[j - 1];
            pids[j - 1] = t;
        }
    return n;
}

/* Waits (10 s) until the metrics count at least `n` requests. */
static double wait_requests(const struct cluster *c, double n)
{
    double got = -1;

    for (int i = 0; i < 200 && (got = cluster_metric_sum(c, "verona_requests_total")) < n; i++)
        cluster_pause_ms(50);
    return got;
}

START_TEST(upgrade_keeps_the_pid_the_workers_and_the_counts)
{
    struct cluster c;
    struct harness_response *r = calloc(1, sizeof(*r));
    int before[8], after[8], n;
    double served;
    char out[512], args[64];
    json_t *doc;

    start_own(&c, 2, ROOMY);
    for (int i = 0; i < 30; i++)
        ck_assert_int_eq(harness_request(c.port, "GET", "/healthz", NULL, NULL, r), 200);
    served = wait_requests(&c, 30);
    ck_assert(served >= 30);
    n = worker_pids(&c, before, 8);
    ck_assert_int_eq(n, 2);

    ck_assert_int_eq(cluster_ctl(&c, "upgrade", out, sizeof(out)), 0);
    ck_assert_ptr_nonnull(strstr(out, "upgraded"));
    ck_assert_int_eq(supervisor_field(&c, "pid"), c.pid);
    ck_assert_int_eq(supervisor_field(&c, "upgrades"), 1);
    ck_assert_int_eq(worker_pids(&c, after, 8), 2);
    ck_assert_mem_eq(before, after, sizeof(int) * 2);
    /* Totals carried over, not restarted from zero. */
    ck_assert(cluster_metric_sum(&c, "verona_requests_total") >= served);
    ck_assert(cluster_metric_sum(&c, "verona_supervisor_upgrades_total") == 1);
    ck_assert(cluster_log_contains(&c, "\"supervisor_upgrade\""));
    doc = cluster_status(&c);
    ck_assert_ptr_nonnull(json_string_value(json_object_get(json_object_get(doc, "supervisor"), "upgraded_at")));
    json_decref(doc);
    ck_assert_int_eq(harness_request(c.port, "GET", "/healthz", NULL, NULL, r), 200);

    /* SIGUSR2 does the same. */
    kill(c.pid, SIGUSR2);
    for (int i = 0; i < 200 && supervisor_field(&c, "upgrades") < 2; i++)
        cluster_pause_ms(50);
    ck_assert_int_eq(supervisor_field(&c, "upgrades"), 2);
    ck_assert_int_eq(worker_pids(&c, after, 8), 2);
    ck_assert_mem_eq(before, after, sizeof(int) * 2);

    /* The adopted workers are still the supervisor's: a killed one is
     * reaped and replaced, a recycled one drains and is replaced. */
    kill(before[0], SIGKILL);
    for (int i = 0; i < 200 && cluster_restarts(&c, "crash") < 1; i++)
        cluster_pause_ms(50);
    ck_assert_int_eq(cluster_restarts(&c, "crash"), 1);
    ck_assert_int_eq(cluster_wait_workers(&c, 2, 2, 20000), 0);
    snprintf(args, sizeof(args), "recycle %d", before[1]);
    ck_assert_int_eq(cluster_ctl(&c, args, out, sizeof(out)), 0);
    for (int i = 0; i < 400 && kill(before[1], 0) == 0; i++)
        cluster_pause_ms(50);
    ck_assert_int_ne(kill(before[1], 0), 0); /* reaped, not a zombie */
    ck_assert_int_eq(cluster_restarts(&c, "recycle"), 1);
    ck_assert_int_eq(cluster_wait_workers(&c, 2, 2, 20000), 0);
    ck_assert_int_eq(cluster_ctl(&c, "scale 3", out, sizeof(out)), 0);
    ck_assert_int_eq(cluster_wait_workers(&c, 3, 3, 20000), 0);
    ck_assert_int_eq(cluster_ctl(&c, "reload --wait", out, sizeof(out)), 0);
    ck_assert_int_eq(harness_request(c.port, "GET", "/healthz", NULL, NULL, r), 200);
    cluster_stop(&c); /* a clean exit: every worker drained and reaped */
    free(r);
}
END_TEST

/* One refused upgrade: ctl says why (exit 1), and nothing changed. */
static void assert_refused(const struct cluster *c, const int *pids, const char *why)
{
    char out[1024];
    int now[8];

    ck_assert_int_eq(cluster_ctl(c, "upgrade", out, sizeof(out)), 1);
    ck_assert_msg(strstr(out, "upgrade refused") != NULL && strstr(out, why) != NULL, "expected '%s' in: %s", why,
                  out);
    ck_assert_int_eq(supervisor_field(c, "upgrades"), 0);
    ck_assert_int_eq(supervisor_field(c, "pid"), c->pid);
    ck_assert_int_eq(worker_pids(c, now, 8), 2);
    ck_assert_mem_eq(pids, now, sizeof(int) * 2);
}

START_TEST(binaries_that_cannot_take_over_are_refused)
{
    struct cluster c;
    struct harness_response *r = calloc(1, sizeof(*r));
    char source[320], body[600], out[512];
    int pids[8];

    snprintf(source, sizeof(source), "%s/verona", getenv("VERONA_BIN_DIR"));
    start_own(&c, 2, ROOMY);
    ck_assert_int_eq(worker_pids(&c, pids, 8), 2);

    cluster_replace_binary_script(&c, "exit 0");
    assert_refused(&c, pids, "it said nothing");
    cluster_replace_binary_script(&c, "echo 'ok but not really'; exit 3");
    assert_refused(&c, pids, "exit status 3");
    cluster_replace_binary_script(&c, "kill -SEGV $$");
    assert_refused(&c, pids, "crashed (signal 11)");
    cluster_replace_binary(&c, source, 0644);
    assert_refused(&c, pids, "permission denied");
    /* A build whose state format is another version. */
    snprintf(body, sizeof(body), "VERONA_TEST_STATE_VERSION=999 exec '%s' \"$@\"", source);
    cluster_replace_binary_script(&c, body);
    assert_refused(&c, pids, "state version 1, this build reads version 999");
    ck_assert_int_eq(unlink(c.verona), 0);
    assert_refused(&c, pids, "no such file or directory");
    ck_assert(cluster_log_contains(&c, "\"supervisor_upgrade_refused\""));
    ck_assert_int_eq(harness_request(c.port, "GET", "/healthz", NULL, NULL, r), 200);

    /* The real binary back: the upgrade goes through. */
    cluster_replace_binary(&c, source, 0755);
    ck_assert_int_eq(cluster_ctl(&c, "upgrade", out, sizeof(out)), 0);
    ck_assert_int_eq(supervisor_field(&c, "upgrades"), 1);
    cluster_stop(&c);
    free(r);
}
END_TEST

START_TEST(upgrade_waits_for_no_rollout_and_no_starting_worker)
{
    struct cluster c;
    char out[512];

    /* Workers that never report ready (a test switch) stay starting. */
    cluster_prepare(&c, 2, ROOMY "ready_timeout_ms = 60000\n");
    cluster_own_binary(&c);
    setenv("VERONA_TEST_NEVER_READY", "1", 1);
    ck_assert_int_eq(cluster_launch(&c, 0), 0);
    unsetenv("VERONA_TEST_NEVER_READY");
    for (int i = 0; i < 400 && (cluster_count(&c, NULL) != 2 || cluster_count(&c, "starting") < 1); i++)
        cluster_pause_ms(50);
    ck_assert_int_ge(cluster_count(&c, "starting"), 1);
    ck_assert_int_eq(cluster_ctl(&c, "upgrade", out, sizeof(out)), 1);
    ck_assert_ptr_nonnull(strstr(out, "a worker is starting"));
    ck_assert_int_eq(supervisor_field(&c, "upgrades"), 0);
    cluster_stop(&c);

    start_own(&c, 2, ROOMY "probation_ms = 60000\n");
    /* A rollout holds its canary on probation for a minute. */
    ck_assert_int_eq(cluster_ctl(&c, "reload", out, sizeof(out)), 0);
    ck_assert_int_eq(cluster_ctl(&c, "upgrade", out, sizeof(out)), 1);
    ck_assert_ptr_nonnull(strstr(out, "rollout in progress"));
    ck_assert_int_eq(supervisor_field(&c, "upgrades"), 0);
    /* Bad requests change nothing either. */
    ck_assert_int_eq(cluster_ctl(&c, "upgrade now", out, sizeof(out)), 2);
    cluster_stop(&c);
}
END_TEST

/* A signal whose default action ends the process (here SIGPIPE, handled
 * by the supervisor) arriving between the exec and the new image's
 * handlers waits for them: a storm of them through five upgrades. */
START_TEST(signals_during_the_hand_over_wait_for_the_new_image)
{
    struct cluster c;
    char out[512];
    pid_t storm;

    start_own(&c, 1, ROOMY);
    storm = fork();
    ck_assert_int_ge(storm, 0);
    if (storm == 0) {
        while (kill(c.pid, SIGPIPE) == 0)
            usleep(50);
        _exit(0);
    }
    for (int i = 1; i <= 5; i++) {
        ck_assert_int_eq(cluster_ctl(&c, "upgrade", out, sizeof(out)), 0);
        ck_assert_int_eq(supervisor_field(&c, "upgrades"), i);
    }
    kill(storm, SIGKILL);
    waitpid(storm, NULL, 0);
    cluster_stop(&c);
}
END_TEST

Suite *upgrade_suite(void)
{
    Suite *s = suite_create("upgrade");
    TCase *tc = tcase_create("upgrade");

    tcase_set_timeout(tc, 180);
    tcase_add_test(tc, upgrade_keeps_the_pid_the_workers_and_the_counts);
    tcase_add_test(tc, binaries_that_cannot_take_over_are_refused);
    tcase_add_test(tc, upgrade_waits_for_no_rollout_and_no_starting_worker);
    tcase_add_test(tc, signals_during_the_hand_over_wait_for_the_new_image);
    suite_add_tcase(s, tc);
    return s;
}
