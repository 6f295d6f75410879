/* tests/fault/test_rollout.c - `verona ctl reload` under load (SPEC.md
 * section 6): a good build rolls out with zero failed requests; builds
 * that crash at start, never become ready or leak on probation are rolled
 * back by themselves with zero failed requests, the pool at full
 * strength on the old build, even when the old file was deleted. */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../lib/cluster.h"
#include "../lib/harness.h"

#define ROLLOUT_CONFIG "worker_binary = worker\nprobation_ms = 1000\nready_timeout_ms = 2000\n" \
                       "memory_soft_limit_mb = 48\nmemory_hard_limit_mb = 400\n"

/* Copies the worker under test into the cluster as its "worker", with
 * bytes appended (a new build: other content, other hash) or not. */
static void install_worker(const struct cluster *c, const char *append)
{
    char cmd[1400];

    snprintf(cmd, sizeof(cmd),
             "cp '%s/verona-worker' '%s/worker.tmp' && printf '%s' >> '%s/worker.tmp' && mv '%s/worker.tmp' '%s/worker'",
             getenv("VERONA_BIN_DIR"), c->dir, append != NULL ? append : "", c->dir, c->dir, c->dir);
    ck_assert_int_eq(system(cmd), 0);
}

/* Writes the build the cluster's worker_binary names: a script. */
static void write_script(const struct cluster *c, const char *body)
{
    char path[400], tmp[420];
    FILE *f;

    snprintf(path, sizeof(path), "%s/worker", c->dir);
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    f = fopen(tmp, "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f, "#!/bin/sh\n%s\n", body);
    fclose(f);
    chmod(tmp, 0755);
    ck_assert_int_eq(rename(tmp, path), 0);
}

/* A cluster whose worker_binary is a copy it may replace. */
static void start_with_copy(struct cluster *c, int workers, const char *extra)
{
    char config[600];

    snprintf(config, sizeof(config), ROLLOUT_CONFIG "%s", extra != NULL ? extra : "");
    cluster_prepare(c, workers, config);
    install_worker(c, NULL);
    ck_assert_int_eq(cluster_launch(c, 1), 0);
}

/* Every worker row runs the binary with this hash; returns how many. */
static int workers_on(const struct cluster *c, const char *sha)
{
    json_t *doc = cluster_status(c), *row;
    size_t i;
    int n = 0;

    ck_assert_ptr_nonnull(doc);
    json_array_foreach(json_object_get(doc, "workers"), i, row) {
        if (strcmp(json_string_value(json_object_get(row, "binary_sha256")), sha) == 0 &&
            strcmp(json_string_value(json_object_get(row, "state")), "ready") == 0)
            n++;
    }
    json_decref(doc);
    return n;
}

static void rollout_field(const struct cluster *c, const char *name, char *out, size_t size)
{
    json_t *doc = cluster_status(c), *v;

    ck_assert_ptr_nonnull(doc);
    v = json_object_get(json_object_get(doc, "rollout"), name);
    if (json_is_string(v))
        snprintf(out, size, "%s", json_string_value(v));
    else
        snprintf(out, size, "%lld", (long long)json_integer_value(v));
    json_decref(doc);
}

/* Polls the rollout state until it is (want_equal) or is no longer
 * (!want_equal) `state`; the last state seen goes to out. */
static void wait_rollout_state(const struct cluster *c, const char *state, int want_equal, int timeout_ms,
                               char *out, size_t size)
{
    long long deadline = harness_now_ms() + timeout_ms;

    do {
        rollout_field(c, "state", out, size);
        if ((strcmp(out, state) == 0) == want_equal)
            return;
        cluster_pause_ms(50);
    } while (harness_now_ms() < deadline);
}

static void worker_sha(const struct cluster *c, char *sha)
{
    json_t *doc = cluster_status(c);

    snprintf(sha, 65, "%s",
             json_string_value(json_object_get(json_array_get(json_object_get(doc, "workers"), 0), "binary_sha256")));
    json_decref(doc);
}

/* Starts the cluster, load, a reload onto what `prepare` wrote; waits. */
static void bad_build_is_rolled_back(const char *script_body, int delete_old_first, const char *why)
{
    struct cluster c;
    struct wrk_run session, fresh;
    char out[1024], old_sha[65], state[32], path[400], reason[200];
    int code, first_pids[3];

    start_with_copy(&c, 3, NULL);
    worker_sha(&c, old_sha);
    for (int i = 0; i < 3; i++)
        first_pids[i] = cluster_worker_pid(&c, "ready", i);
    wrk_start(&session, &c, "/healthz", 16, 6, NULL);
    wrk_start(&fresh, &c, "/readyz", 4, 6, "-H 'Connection: close'");
    cluster_pause_ms(500);
    if (delete_old_first) {
        snprintf(path, sizeof(path), "%s/worker", c.dir);
        ck_assert_int_eq(unlink(path), 0);
    }
    write_script(&c, script_body);
    code = cluster_ctl(&c, "reload --wait", out, sizeof(out));
    ck_assert_msg(code == 1, "reload --wait gave %d: %s", code, out);
    ck_assert_ptr_nonnull(strstr(out, "rolled back"));
    ck_assert_msg(strstr(out, why) != NULL, "reload --wait says '%s', lacks '%s'", out, why);
    wrk_finish(&session);
    wrk_finish(&fresh);
    ck_assert_msg(session.errors == 0 && session.non_2xx == 0, "%ld errors %ld non-2xx (%s)", session.errors,
                  session.non_2xx, session.out_path);
    ck_assert_msg(fresh.errors == 0 && fresh.non_2xx == 0, "%ld errors %ld non-2xx (%s)", fresh.errors,
                  fresh.non_2xx, fresh.out_path);
    rollout_field(&c, "state", state, sizeof(state));
    ck_assert_str_eq(state, "rolled_back");
    rollout_field(&c, "reason", reason, sizeof(reason));
    ck_assert_msg(strstr(reason, why) != NULL, "reason '%s' lacks '%s'", reason, why);
    ck_assert_int_eq(cluster_wait_workers(&c, 3, 3, 15000), 0);
    ck_assert_int_eq(workers_on(&c, old_sha), 3);
    if (delete_old_first) {
        /* A worker of the old build was started after its file was gone. */
        int fresh_old = 0;
        for (int i = 0; i < 3; i++) {
            int pid = cluster_worker_pid(&c, "ready", i);
            fresh_old += pid != first_pids[0] && pid != first_pids[1] && pid != first_pids[2];
        }
        ck_assert_int_ge(fresh_old, 1);
    }
    /* Not tried again until the file changes. */
    ck_assert_int_eq(cluster_ctl(&c, "reload", out, sizeof(out)), 1);
    ck_assert_ptr_nonnull(strstr(out, "not tried again"));
    cluster_stop(&c);
}

START_TEST(good_build_rolls_out_with_zero_failures)
{
    struct cluster c;
    struct wrk_run session, fresh;
    char out[1024], old_sha[65], new_sha[65], state[32], done[16];
    int code;

    start_with_copy(&c, 4, NULL);
    worker_sha(&c, old_sha);
    wrk_start(&session, &c, "/healthz", 16, 6, NULL);
    wrk_start(&fresh, &c, "/readyz", 4, 6, "-H 'Connection: close'");
    cluster_pause_ms(500);
    install_worker(&c, "a new build");
    code = cluster_ctl(&c, "reload --wait", out, sizeof(out));
    ck_assert_msg(code == 0, "reload --wait gave %d: %s", code, out);
    wrk_finish(&session);
    wrk_finish(&fresh);
    ck_assert_msg(session.errors == 0 && session.non_2xx == 0, "%ld errors (%s)", session.errors, session.out_path);
    ck_assert_msg(fresh.errors == 0 && fresh.non_2xx == 0, "%ld errors (%s)", fresh.errors, fresh.out_path);
    rollout_field(&c, "state", state, sizeof(state));
    ck_assert_str_eq(state, "done");
    rollout_field(&c, "slots_done", done, sizeof(done));
    ck_assert_str_eq(done, "4");
    rollout_field(&c, "to", new_sha, sizeof(new_sha));
    ck_assert_str_ne(new_sha, old_sha);
    ck_assert_int_eq(workers_on(&c, new_sha), 4);
    ck_assert_int_eq(cluster_restarts(&c, "reload"), 4);
    ck_assert(cluster_log_contains(&c, "\"event\":\"rollout_state\""));
    cluster_stop(&c);
}
END_TEST

START_TEST(build_that_crashes_at_start_is_rolled_back)
{
    bad_build_is_rolled_back("exit 1", 0, "exited with status 1");
}
END_TEST

START_TEST(build_that_never_becomes_ready_is_rolled_back)
{
    char body[600];

    snprintf(body, sizeof(body), "VERONA_TEST_NEVER_READY=1 exec %s/verona-worker", getenv("VERONA_BIN_DIR"));
    bad_build_is_rolled_back(body, 0, "(hang: not ready within ready_timeout_ms)");
}
END_TEST

START_TEST(build_that_leaks_on_probation_is_rolled_back)
{
    char body[600];

    snprintf(body, sizeof(body), "VERONA_TEST_LEAK_KB=64 exec %s/verona-worker", getenv("VERONA_BIN_DIR"));
    bad_build_is_rolled_back(body, 0, "memory_soft_limit_mb");
}
END_TEST

START_TEST(rollback_works_after_the_old_file_is_deleted)
{
    char body[600];

    /* The leaking build serves before it is caught, so the rollback must
     * start workers of the old build, whose file no longer exists. */
    snprintf(body, sizeof(body), "VERONA_TEST_LEAK_KB=64 exec %s/verona-worker", getenv("VERONA_BIN_DIR"));
    bad_build_is_rolled_back(body, 1, "memory_soft_limit_mb");
}
END_TEST

static void append_config(const struct cluster *c, const char *line)
{
    FILE *f = fopen(c->config_path, "a");

    ck_assert_ptr_nonnull(f);
    fprintf(f, "%s\n", line);
    fclose(f);
}

/* The same binary with new settings whose workers fail: those settings are
 * not tried again, but corrected ones are (the binary was never the
 * problem). The worker is a script that fails while a marker file exists,
 * standing in for a setting the build cannot live with. */
START_TEST(settings_rolled_back_do_not_block_corrected_ones)
{
    struct cluster c;
    char out[1024], body[900], marker[400], state[32];
    int code;

    cluster_prepare(&c, 2, ROLLOUT_CONFIG);
    snprintf(marker, sizeof(marker), "%s/fail", c.dir);
    snprintf(body, sizeof(body), "[ -e '%s' ] && exit 3\nexec %s/verona-worker", marker, getenv("VERONA_BIN_DIR"));
    write_script(&c, body);
    ck_assert_int_eq(cluster_launch(&c, 1), 0);

    append_config(&c, "hash_queue_max = 7");
    {
        FILE *m = fopen(marker, "w");

        ck_assert_ptr_nonnull(m);
        fclose(m);
    }
    code = cluster_ctl(&c, "reload --wait", out, sizeof(out));
    ck_assert_msg(code == 1 && strstr(out, "rolled back") != NULL, "reload --wait gave %d: %s", code, out);
    ck_assert_int_eq(unlink(marker), 0);
    ck_assert_int_eq(cluster_wait_workers(&c, 2, 2, 15000), 0);
    /* The same settings again: refused without a try. */
    code = cluster_ctl(&c, "reload", out, sizeof(out));
    ck_assert_msg(code == 1 && strstr(out, "these settings were rolled back") != NULL, "reload gave %d: %s", code,
                  out);
    /* Corrected settings, same binary: rolled out. */
    append_config(&c, "hash_queue_max = 8");
    code = cluster_ctl(&c, "reload --wait", out, sizeof(out));
    ck_assert_msg(code == 0, "reload --wait gave %d: %s", code, out);
    rollout_field(&c, "state", state, sizeof(state));
    ck_assert_str_eq(state, "done");
    ck_assert_int_eq(cluster_wait_workers(&c, 2, 2, 15000), 0);
    cluster_stop(&c);
}
END_TEST

START_TEST(reload_and_scale_are_refused_during_a_rollout)
{
    struct cluster c;
    char out[1024], state[32] = "";
    long long deadline;
    FILE *f;

    start_with_copy(&c, 2, "probation_ms = 3000\n");
    install_worker(&c, "another build");
    kill(c.pid, SIGHUP); /* HUP is reload */
    wait_rollout_state(&c, "rolling", 1, 10000, state, sizeof(state));
    ck_assert_str_eq(state, "rolling");
    ck_assert_int_eq(cluster_ctl(&c, "reload", out, sizeof(out)), 1);
    ck_assert_ptr_nonnull(strstr(out, "rollout in progress"));
    ck_assert_int_eq(cluster_ctl(&c, "scale 5", out, sizeof(out)), 1);
    ck_assert_ptr_nonnull(strstr(out, "rollout in progress"));
    kill(c.pid, SIGTTIN);
    deadline = harness_now_ms() + 5000;
    while (harness_now_ms() < deadline && !cluster_log_contains(&c, "scale_refused"))
        cluster_pause_ms(20);
    ck_assert(cluster_log_contains(&c, "scale_refused"));
    ck_assert_int_eq(cluster_ctl(&c, "reload --wait", out, sizeof(out)), 1);
    /* The rollout goes on to its end. */
    wait_rollout_state(&c, "done", 1, 20000, state, sizeof(state));
    ck_assert_str_eq(state, "done");
    /* A bad config is refused and nothing changes. */
    f = fopen(c.config_path, "a");
    fprintf(f, "workers = lots\n");
    fclose(f);
    ck_assert_int_eq(cluster_ctl(&c, "reload", out, sizeof(out)), 2);
    ck_assert_ptr_nonnull(strstr(out, "workers"));
    ck_assert_int_eq(cluster_count(&c, "ready"), 2);
    cluster_stop(&c);
}
END_TEST

START_TEST(rollout_waits_while_the_database_is_down_for_everyone)
{
    struct cluster c;
    char out[1024], state[32] = "";

    /* Workers retry PostgreSQL every 2 s at most: once it is back, a new
     * worker may need that long, so ready_timeout_ms must exceed it. */
    start_with_copy(&c, 2, "ready_timeout_ms = 6000\n");
    ck_assert_int_eq(harness_pg_stop(), 0);
    install_worker(&c, "built while the database was down");
    ck_assert_int_eq(cluster_ctl(&c, "reload", out, sizeof(out)), 0);
    /* Past ready_timeout_ms (6 s): not ready, yet not held against the
     * build, since the old workers cannot reach PostgreSQL either. */
    cluster_pause_ms(7000);
    rollout_field(&c, "state", state, sizeof(state));
    ck_assert_str_eq(state, "rolling");
    ck_assert_int_eq(cluster_restarts(&c, "hang"), 0);
    ck_assert_int_eq(harness_pg_start(), 0);
    wait_rollout_state(&c, "rolling", 0, 30000, state, sizeof(state));
    ck_assert_str_eq(state, "done");
    ck_assert_int_eq(cluster_wait_workers(&c, 2, 2, 15000), 0);
    cluster_stop(&c);
}
END_TEST

Suite *rollout_suite(void)
{
    Suite *s = suite_create("rollout");
    TCase *tc = tcase_create("reload");

    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, good_build_rolls_out_with_zero_failures);
    tcase_add_test(tc, build_that_crashes_at_start_is_rolled_back);
    tcase_add_test(tc, build_that_never_becomes_ready_is_rolled_back);
    tcase_add_test(tc, build_that_leaks_on_probation_is_rolled_back);
    tcase_add_test(tc, rollback_works_after_the_old_file_is_deleted);
    tcase_add_test(tc, settings_rolled_back_do_not_block_corrected_ones);
    tcase_add_test(tc, reload_and_scale_are_refused_during_a_rollout);
    tcase_add_test(tc, rollout_waits_while_the_database_is_down_for_everyone);
    suite_add_tcase(s, tc);
    return s;
}
