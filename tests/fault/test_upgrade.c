/* tests/fault/test_upgrade.c - `verona ctl upgrade` under wrk load (SPEC
 * section 6): upgrades to another build and back, three in a row, and
 * refused binaries, each with zero failed requests (logins and session
 * checks, with and without keep-alive), the same worker pids before and
 * after, and metrics totals that never go back.
 *
 * VERONA_NEXT_VERONA (tests/run.sh) names a `verona` built apart with
 * another build id: the upgrade goes to a really different binary. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../lib/cluster.h"
#include "../lib/harness.h"

#define FAST "memory_soft_limit_mb = 200\nmemory_hard_limit_mb = 400\n"

static void start_own(struct cluster *c, int workers)
{
    cluster_prepare(c, workers, FAST);
    cluster_own_binary(c);
    ck_assert_int_eq(cluster_launch(c, 1), 0);
}

/* The status: the supervisor's build id (into out), the upgrade count,
 * and the worker pids in status order (n of them). */
static long status_of(const struct cluster *c, char *build_id, size_t size, int *pids, int *n)
{
    json_t *doc = cluster_status(c), *sup, *workers;
    long upgrades;

    ck_assert_ptr_nonnull(doc);
    sup = json_object_get(doc, "supervisor");
    snprintf(build_id, size, "%s", json_string_value(json_object_get(sup, "build_id")));
    upgrades = (long)json_integer_value(json_object_get(sup, "upgrades"));
    workers = json_object_get(doc, "workers");
    *n = 0;
    for (size_t i = 0; i < json_array_size(workers) && *n < 8; i++)
        pids[(*n)++] = (int)json_integer_value(json_object_get(json_array_get(workers, i), "pid"));
    json_decref(doc);
    return upgrades;
}

static void upgrades_under_load(int keep_alive)
{
    struct cluster c;
    struct cluster_load l = { 0 };
    char this_build[320], next_build[320], id_before[64], id[64], out[512];
    const char *next = getenv("VERONA_NEXT_VERONA");
    int pids_before[8], pids[8], n_before, n;
    double requests = 0, logins = 0;

    snprintf(this_build, sizeof(this_build), "%s/verona", getenv("VERONA_BIN_DIR"));
    snprintf(next_build, sizeof(next_build), "%s", next != NULL && next[0] != '\0' ? next : this_build);
    start_own(&c, 2);
    ck_assert_int_eq(status_of(&c, id_before, sizeof(id_before), pids_before, &n_before), 0);
    ck_assert_int_eq(n_before, 2);
    cluster_load_start(&l, &c, 8, keep_alive);
    /* Three in a row: to the next build, back, and to the next again. */
    for (int i = 1; i <= 3; i++) {
        const char *to = i % 2 == 1 ? next_build : this_build;
        double now;

        cluster_pause_ms(1500);
        cluster_replace_binary(&c, to, 0755);
        ck_assert_int_eq(cluster_ctl(&c, "upgrade", out, sizeof(out)), 0);
        ck_assert_int_eq(status_of(&c, id, sizeof(id), pids, &n), i);
        ck_assert_int_eq(n, 2);
        ck_assert_mem_eq(pids, pids_before, sizeof(int) * 2); /* the same workers, never restarted */
        if (to != this_build && strcmp(next_build, this_build) != 0)
            ck_assert_str_ne(id, id_before);
        else
            ck_assert_str_eq(id, id_before);
        now = cluster_metric_sum(&c, "verona_requests_total");
        ck_assert_msg(now >= requests, "requests_total went back: %.0f after %.0f", now, requests);
        requests = now;
        now = cluster_metric_sum(&c, "verona_logins_total");
        ck_assert_msg(now >= logins, "logins_total went back: %.0f after %.0f", now, logins);
        logins = now;
    }
    cluster_load_finish(&l);
    cluster_load_assert_no_failures(&l);
    ck_assert_int_gt(l.session.requests, 0);
    ck_assert_int_gt(l.login.requests, 0);
    ck_assert_int_eq(cluster_restarts(&c, "crash"), 0);
    ck_assert_int_eq(cluster_restarts(&c, "hang"), 0);
    printf("upgrade under load (keep-alive %d): 3 upgrades, pids %d %d kept, %ld+%ld requests, %ld+%ld failed\n",
           keep_alive, pids_before[0], pids_before[1], l.session.requests, l.login.requests,
           l.session.errors + l.session.non_2xx, l.login.errors + l.login.non_2xx);
    cluster_stop(&c);
}

START_TEST(three_upgrades_with_keep_alive_fail_nothing)
{
    upgrades_under_load(1);
}
END_TEST

START_TEST(three_upgrades_without_keep_alive_fail_nothing)
{
    upgrades_under_load(0);
}
END_TEST

START_TEST(refused_upgrades_under_load_fail_nothing)
{
    struct cluster c;
    struct cluster_load l = { 0 };
    char source[320], body[600], id[64], out[512];
    int pids_before[8], pids[8], n;

    snprintf(source, sizeof(source), "%s/verona", getenv("VERONA_BIN_DIR"));
    start_own(&c, 2);
    status_of(&c, id, sizeof(id), pids_before, &n);
    cluster_load_start(&l, &c, 6, 1);
    cluster_pause_ms(1000);
    cluster_replace_binary_script(&c, "exit 0");
    ck_assert_int_eq(cluster_ctl(&c, "upgrade", out, sizeof(out)), 1);
    cluster_replace_binary(&c, source, 0644);
    ck_assert_int_eq(cluster_ctl(&c, "upgrade", out, sizeof(out)), 1);
    snprintf(body, sizeof(body), "VERONA_TEST_STATE_VERSION=2 exec '%s' \"$@\"", source);
    cluster_replace_binary_script(&c, body);
    ck_assert_int_eq(cluster_ctl(&c, "upgrade", out, sizeof(out)), 1);
    ck_assert_ptr_nonnull(strstr(out, "state version"));
    cluster_load_finish(&l);
    cluster_load_assert_no_failures(&l);
    ck_assert_int_eq(status_of(&c, id, sizeof(id), pids, &n), 0);
    ck_assert_mem_eq(pids, pids_before, sizeof(int) * 2);
    cluster_stop(&c);
}
END_TEST

Suite *upgrade_suite(void)
{
    Suite *s = suite_create("upgrade");
    TCase *tc = tcase_create("upgrade");

    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, three_upgrades_with_keep_alive_fail_nothing);
    tcase_add_test(tc, three_upgrades_without_keep_alive_fail_nothing);
    tcase_add_test(tc, refused_upgrades_under_load_fail_nothing);
    suite_add_tcase(s, tc);
    return s;
}
