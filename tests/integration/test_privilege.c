/* tests/integration/test_privilege.c - the `user` key (SPEC 3, 5):
 * `verona serve` started as root binds its sockets, then the supervisor
 * and every worker run as that user, with no way back to root; a user
 * that does not exist is refused before anything is bound.
 *
 * The user is `postgres`: it exists wherever the test PostgreSQL runs,
 * and it can reach that server's socket and passfile (0700, its own), so
 * the pool really serves after the drop. Needs root; otherwise the case
 * says so and checks only the refusal. */
#include <check.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../lib/cluster.h"
#include "../lib/harness.h"

#define GOOD_PASSWORD "correct horse battery staple"

/* The four ids after `field` ("Uid:" or "Gid:") in /proc/PID/status all
 * equal `want`; and "Groups:" does not hold 0. 1 or 0. */
static int proc_runs_as(int pid, uid_t uid, gid_t gid)
{
    char path[64], line[512];
    long ids[4];
    int seen = 0;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/status", pid);
    f = fopen(path, "r");
    if (f == NULL)
        return 0;
    while (fgets(line, sizeof(line), f) != NULL) {
        int is_uid = strncmp(line, "Uid:", 4) == 0, is_gid = strncmp(line, "Gid:", 4) == 0;

        if (is_uid || is_gid) {
            if (sscanf(line + 4, "%ld %ld %ld %ld", &ids[0], &ids[1], &ids[2], &ids[3]) != 4)
                break;
            for (int i = 0; i < 4; i++)
                if (ids[i] != (is_uid ? (long)uid : (long)gid)) {
                    fclose(f);
                    return 0;
                }
            seen++;
        } else if (strncmp(line, "Groups:", 7) == 0) {
            char *tok, *save = NULL;

            for (tok = strtok_r(line + 7, " \t\n", &save); tok != NULL; tok = strtok_r(NULL, " \t\n", &save))
                if (strcmp(tok, "0") == 0) {
                    fclose(f);
                    return 0;
                }
            seen++;
        }
    }
    fclose(f);
    return seen == 3;
}

START_TEST(serve_as_root_runs_everything_as_the_user)
{
    struct passwd *pw = getpwnam("postgres");
    struct cluster c;
    char dir[320], cmd[1024], extra[512], name[64], token[44];

    if (geteuid() != 0 || pw == NULL) {
        printf("privilege: SKIPPED serve_as_root_runs_everything_as_the_user (needs root and a postgres user)\n");
        return;
    }
    /* The user must be able to run the worker: a copy in a folder it can
     * reach (the checkout may sit under a folder it cannot). */
    snprintf(dir, sizeof(dir), "%s/privilege-%d", getenv("VERONA_TEST_TMP"), (int)getpid());
    ck_assert_int_eq(mkdir(dir, 0755), 0);
    snprintf(cmd, sizeof(cmd), "install -m 755 %s/verona-worker %s/verona-worker", getenv("VERONA_BIN_DIR"), dir);
    ck_assert_int_eq(system(cmd), 0);
    snprintf(extra, sizeof(extra), "user = postgres\nworker_binary = %s/verona-worker\n", dir);
    ck_assert_int_eq(cluster_start(&c, 2, extra, 1), 0);
    ck_assert_msg(cluster_log_contains(&c, "\"event\":\"privileges_dropped\""), "no privileges_dropped in %s",
                  c.log_path);
    ck_assert_msg(proc_runs_as(c.pid, pw->pw_uid, pw->pw_gid), "the supervisor still runs as root");
    for (int n = 0; n < 2; n++) {
        int pid = cluster_worker_pid(&c, "ready", n);

        ck_assert_int_gt(pid, 0);
        ck_assert_msg(proc_runs_as(pid, pw->pw_uid, pw->pw_gid), "worker %d does not run as postgres", pid);
    }
    /* The admin socket is the user's now, still 0600; root still asks. */
    {
        struct stat st;

        ck_assert_int_eq(stat(c.socket_path, &st), 0);
        ck_assert_int_eq((int)st.st_uid, (int)pw->pw_uid);
        ck_assert_int_eq(st.st_mode & 0777, 0600);
    }
    /* It serves: PostgreSQL, hashing and sessions as that user. */
    harness_username(name, sizeof(name), "priv");
    harness_register(c.port, name, GOOD_PASSWORD);
    ck_assert_int_eq(harness_login(c.port, name, GOOD_PASSWORD, token, NULL), 200);
    /* A worker that dies is replaced as the user too. */
    {
        int victim = cluster_worker_pid(&c, "ready", 0);

        kill(victim, SIGKILL);
        ck_assert_int_eq(cluster_wait_workers(&c, 2, 2, 15000), 0);
        for (int n = 0; n < 2; n++)
            ck_assert(proc_runs_as(cluster_worker_pid(&c, "ready", n), pw->pw_uid, pw->pw_gid));
    }
    cluster_stop(&c);
}
END_TEST

START_TEST(unknown_user_is_refused_before_binding)
{
    struct cluster c;
    int status;

    cluster_prepare(&c, 1, "user = no-such-verona-user\n");
    ck_assert_int_eq(cluster_launch(&c, 0), 0);
    status = cluster_signal_wait(&c, 0, 10000);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 2, "status %d", status);
    ck_assert(cluster_log_contains(&c, "user: no user 'no-such-verona-user'"));
    ck_assert_int_ne(access(c.socket_path, F_OK), 0); /* nothing bound */
}
END_TEST

Suite *privilege_suite(void)
{
    Suite *s = suite_create("privilege");
    TCase *tc = tcase_create("user");

    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, serve_as_root_runs_everything_as_the_user);
    tcase_add_test(tc, unknown_user_is_refused_before_binding);
    suite_add_tcase(s, tc);
    return s;
}
