/* tests/integration/test_supervisor.c - `verona serve` and `verona ctl`
 * with real processes and signals: start-up, status, admin input, config
 * errors, crash backoff, hung workers, the supervisor's own death. The
 * load and fault tests live in tests/fault/. */
#include <check.h>
#include <poll.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/sem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../lib/cluster.h"
#include "../lib/harness.h"

/* ASan workers are larger: limits that only a real leak reaches. */
#define ROOMY "memory_soft_limit_mb = 900\nmemory_hard_limit_mb = 1000\n"

static int pid_alive(int pid)
{
    return kill(pid, 0) == 0;
}

/* A "worker binary" that is a shell script with `body`; its path in out. */
static void fake_worker(const char *tag, const char *body, char *out, size_t size)
{
    FILE *f;

    snprintf(out, size, "%s/%s-%d.sh", getenv("VERONA_TEST_TMP"), tag, (int)getpid());
    f = fopen(out, "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f, "#!/bin/sh\n%s\n", body);
    fclose(f);
    chmod(out, 0755);
}

/* 1 when a line of the cluster's log holds both texts. */
static int log_line_has(const struct cluster *c, const char *a, const char *b)
{
    FILE *f = fopen(c->log_path, "r");
    char line[4096];
    int found = 0;

    if (f == NULL)
        return 0;
    while (!found && fgets(line, sizeof(line), f) != NULL)
        found = strstr(line, a) != NULL && strstr(line, b) != NULL;
    fclose(f);
    return found;
}

START_TEST(starts_serves_and_reports_status)
{
    struct cluster c;
    struct harness_response *r = calloc(1, sizeof(*r));
    json_t *doc, *row, *totals;
    char out[8192];
    struct stat st;

    ck_assert_int_eq(cluster_start(&c, 2, ROOMY, 1), 0);
    ck_assert_int_eq(harness_request(c.port, "GET", "/readyz", NULL, NULL, r), 200);
    doc = cluster_status(&c);
    ck_assert_ptr_nonnull(doc);
    ck_assert_int_eq(json_array_size(json_object_get(doc, "workers")), 2);
    row = json_array_get(json_object_get(doc, "workers"), 0);
    ck_assert_int_gt(json_integer_value(json_object_get(row, "pid")), 0);
    ck_assert_int_gt(json_integer_value(json_object_get(row, "rss_bytes")), 1 << 20);
    ck_assert_str_eq(json_string_value(json_object_get(row, "state")), "ready");
    ck_assert(json_is_true(json_object_get(row, "db_up")));
    ck_assert_int_eq(strlen(json_string_value(json_object_get(row, "binary_sha256"))), 64);
    ck_assert_int_gt(strlen(json_string_value(json_object_get(row, "build_id"))), 0);
    totals = json_object_get(doc, "totals");
    ck_assert_int_eq(json_integer_value(json_object_get(totals, "workers")), 2);
    ck_assert_int_eq(json_integer_value(json_object_get(totals, "ready")), 2);
    ck_assert(json_is_null(json_object_get(doc, "rollout")));
    /* The supervisor itself (SPEC 10.12): its pid, build, start, upgrades. */
    row = json_object_get(doc, "supervisor");
    ck_assert_int_eq(json_integer_value(json_object_get(row, "pid")), c.pid);
    ck_assert_str_eq(json_string_value(json_object_get(row, "build_id")),
                     json_string_value(json_object_get(json_array_get(json_object_get(doc, "workers"), 0), "build_id")));
    ck_assert_int_eq(strlen(json_string_value(json_object_get(row, "started_at"))), 20); /* 2026-12-05T07:30:00Z */
    ck_assert_int_eq(json_integer_value(json_object_get(row, "upgrades")), 0);
    json_decref(doc);

    ck_assert_int_eq(cluster_ctl(&c, "status", out, sizeof(out)), 0);
    ck_assert_ptr_nonnull(strstr(out, "SLOT"));
    ck_assert_ptr_nonnull(strstr(out, "supervisor: pid "));
    ck_assert_ptr_nonnull(strstr(out, ", upgrades 0\n"));
    ck_assert_ptr_nonnull(strstr(out, "ready"));
    ck_assert_int_eq(stat(c.socket_path, &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0600);
    /* One worker left: TTOU cannot go below it, and says so. */
    ck_assert_int_eq(cluster_ctl(&c, "scale 1", out, sizeof(out)), 0);
    ck_assert_int_eq(cluster_wait_workers(&c, 1, 1, 15000), 0);
    kill(c.pid, SIGTTOU);
    {
        long long deadline = harness_now_ms() + 5000;
        while (harness_now_ms() < deadline && !cluster_log_contains(&c, "already at one worker"))
            cluster_pause_ms(20);
    }
    ck_assert(cluster_log_contains(&c, "already at one worker"));
    ck_assert_int_eq(cluster_count(&c, "ready"), 1);
    cluster_stop(&c);
    /* The stop drains for the stop, not for a scale. */
    ck_assert(log_line_has(&c, "\"worker_drain\"", "\"reason\":\"stop\""));
    free(r);
}
END_TEST

START_TEST(bad_admin_input_changes_nothing)
{
    struct cluster c;
    char out[8192], big[600];
    struct sockaddr_un sun;
    int fd;

    ck_assert_int_eq(cluster_start(&c, 2, ROOMY, 1), 0);
    ck_assert_int_eq(cluster_ctl(&c, "scale 0", out, sizeof(out)), 2);
    ck_assert_int_eq(cluster_ctl(&c, "scale 129", out, sizeof(out)), 2);
    ck_assert_int_eq(cluster_ctl(&c, "scale many", out, sizeof(out)), 2);
    ck_assert_int_eq(cluster_ctl(&c, "frobnicate", out, sizeof(out)), 2);
    ck_assert_int_eq(cluster_ctl(&c, "status --yaml", out, sizeof(out)), 2);
    ck_assert_int_eq(cluster_ctl(&c, "recycle 999999", out, sizeof(out)), 1);
    ck_assert_ptr_nonnull(strstr(out, "no ready worker"));

    /* Raw garbage straight at the socket: an error answer, nothing more. */
    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    strcpy(sun.sun_path, c.socket_path);
    memset(big, 'x', sizeof(big));
    for (int attempt = 0; attempt < 3; attempt++) {
        ssize_t n;
        fd = socket(AF_UNIX, SOCK_STREAM, 0);
        ck_assert_int_eq(connect(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
        if (attempt == 0)
            n = write(fd, big, sizeof(big));
        else if (attempt == 1)
            n = write(fd, "scale\0 9\n", 9);
        else
            n = write(fd, "\n", 1);
        ck_assert_int_gt(n, 0);
        n = read(fd, out, sizeof(out) - 1);
        ck_assert_int_gt(n, 0);
        ck_assert_int_eq(out[0], '2');
        close(fd);
    }
    /* A client that connects and says nothing does not block others, and
     * is told and closed after 10 s instead of being held forever. */
    fd = socket(AF_UNIX, SOCK_STREAM, 0);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
    ck_assert_int_eq(cluster_count(&c, "ready"), 2);
    {
        struct pollfd pfd = { .fd = fd, .events = POLLIN };
        ssize_t n;

        ck_assert_int_eq(poll(&pfd, 1, 20000), 1);
        n = read(fd, out, sizeof(out) - 1);
        ck_assert_int_gt(n, 0);
        out[n] = '\0';
        ck_assert_msg(strstr(out, "2\nno request line within 10 s") == out, "got: %s", out);
        ck_assert_int_eq(read(fd, out, sizeof(out)), 0); /* and closed */
    }
    close(fd);
    ck_assert_int_eq(cluster_restarts(&c, "crash"), 0);
    /* Clients that hang up before asking leave nothing behind: the stop is
     * not held up by their 10 s request timers. */
    for (int i = 0; i < 3; i++) {
        fd = socket(AF_UNIX, SOCK_STREAM, 0);
        ck_assert_int_eq(connect(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
        close(fd);
    }
    ck_assert_int_eq(cluster_ctl(&c, "status", out, sizeof(out)), 0);
    {
        int status = cluster_signal_wait(&c, SIGTERM, 8000);

        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "stop took over 8 s or failed: %d", status);
    }
}
END_TEST

/* Runs `verona serve` on a config file holding `text` until it exits;
 * returns its exit code with its output in out. */
static int serve_refuses(const char *text, char *out, size_t size)
{
    char path[300], cmd[800];
    FILE *f, *p;
    size_t n;
    int status;

    snprintf(path, sizeof(path), "%s/bad-%d.conf", getenv("VERONA_TEST_TMP"), (int)getpid());
    f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
    snprintf(cmd, sizeof(cmd), "%s/verona serve -c %s 2>&1", getenv("VERONA_BIN_DIR"), path);
    p = popen(cmd, "r");
    n = fread(out, 1, size - 1, p);
    out[n] = '\0';
    status = pclose(p);
    unlink(path);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

START_TEST(config_errors_exit_2_with_file_and_line)
{
    char out[2048], text[400];
    int port = harness_free_port();

    ck_assert_int_eq(serve_refuses("workers = 2\nhealth_interval_ms = soon\n", out, sizeof(out)), 2);
    ck_assert_msg(strstr(out, ":2:") != NULL && strstr(out, "health_interval_ms") != NULL, "got: %s", out);
    snprintf(text, sizeof(text), "listen = 127.0.0.1:%d\nmetrics_listen = 127.0.0.1:%d\n", port, port);
    ck_assert_int_eq(serve_refuses(text, out, sizeof(out)), 2);
    ck_assert_msg(strstr(out, ":2: metrics_listen") != NULL && strstr(out, "address of listen") != NULL, "got: %s", out);
    /* A build that is not there, named by the line that points at it. */
    snprintf(text, sizeof(text), "listen = 127.0.0.1:%d\nworker_binary = /nonexistent/verona-worker\n", port);
    ck_assert_int_eq(serve_refuses(text, out, sizeof(out)), 2);
    ck_assert_msg(strstr(out, ":2: worker_binary /nonexistent/verona-worker: No such file") != NULL, "got: %s", out);
    /* Not a config error but the machine's: exit 1, and what is missing. */
    snprintf(text, sizeof(text), "listen = 127.0.0.1:%d\nmetrics_listen = 127.0.0.1:%d\nadmin_socket = /nonexistent/run/v.sock\n",
             port, harness_free_port());
    ck_assert_int_eq(serve_refuses(text, out, sizeof(out)), 1);
    ck_assert_msg(strstr(out, "folder /nonexistent/run") != NULL && strstr(out, "No such file") != NULL, "got: %s", out);
}
END_TEST

/* The admin socket's own folder is made when it is missing (./var on a
 * fresh checkout, where `verona serve` runs on defaults), private to its
 * owner; a missing parent is still an error (the test above). */
START_TEST(admin_socket_folder_is_made)
{
    struct cluster c;
    struct stat st;
    char text[2048], run[400], out[1024], *at;
    size_t n;
    FILE *f;

    cluster_prepare(&c, 1, ROOMY);
    f = fopen(c.config_path, "r");
    ck_assert_ptr_nonnull(f);
    n = fread(text, 1, sizeof(text) - 1, f);
    fclose(f);
    text[n] = '\0';
    at = strstr(text, "admin_socket = verona.sock\n");
    ck_assert_ptr_nonnull(at);
    f = fopen(c.config_path, "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f, "%.*sadmin_socket = r/verona.sock\n%s", (int)(at - text), text,
            at + strlen("admin_socket = verona.sock\n"));
    fclose(f);
    snprintf(run, sizeof(run), "%s/r", c.dir);
    ck_assert_int_ne(stat(run, &st), 0);
    snprintf(c.socket_path, sizeof(c.socket_path), "%s/r/verona.sock", c.dir);
    ck_assert_int_eq(cluster_launch(&c, 1), 0);
    ck_assert_int_eq(stat(run, &st), 0);
    ck_assert(S_ISDIR(st.st_mode));
    ck_assert_int_eq(st.st_mode & 0777, 0700);
    ck_assert_int_eq(cluster_ctl(&c, "status", out, sizeof(out)), 0);
    cluster_stop(&c);
}
END_TEST

/* The sockets serve bound at start cannot move on a reload, and a build
 * that is not there cannot be rolled out: each change is refused by name
 * (exit 2, as at startup) and the pool and its sockets stay. */
START_TEST(reload_refuses_to_move_the_bound_sockets)
{
    static const struct {
        const char *change, *says;
    } changes[] = {
        { "listen = 127.0.0.1:1", "listen changed" },
        { "admin_socket = elsewhere.sock", "admin_socket changed" },
        { "metrics_listen = 127.0.0.1:1", "metrics_listen changed" },
        { "worker_binary = /nonexistent/verona-worker", "/nonexistent/verona-worker: No such file" },
        { "worker_binary = /tmp", "/tmp: not a regular file" },
    };
    struct cluster c;
    char out[1024], saved[2048];
    FILE *f;
    size_t n;

    ck_assert_int_eq(cluster_start(&c, 1, NULL, 1), 0);
    f = fopen(c.config_path, "r");
    n = fread(saved, 1, sizeof(saved) - 1, f);
    saved[n] = '\0';
    fclose(f);
    for (size_t i = 0; i < sizeof(changes) / sizeof(changes[0]); i++) {
        f = fopen(c.config_path, "w");
        fprintf(f, "%s%s\n", saved, changes[i].change);
        fclose(f);
        ck_assert_int_eq(cluster_ctl(&c, "reload", out, sizeof(out)), 2);
        ck_assert_msg(strstr(out, changes[i].says) != NULL && strstr(out, "pool unchanged") != NULL &&
                          strchr(out, '\n') == out + strlen(out) - 1,
                      "got: %s", out);
    }
    /* Refused through ctl as through SIGHUP: the log says so. */
    ck_assert(cluster_log_contains(&c, "\"reload_refused\""));
    ck_assert(cluster_log_contains(&c, "metrics_listen changed"));
    ck_assert_int_eq(cluster_count(&c, "ready"), 1);
    {
        struct harness_response *r = calloc(1, sizeof(*r));

        ck_assert_int_eq(harness_request(cluster_metrics_port(&c), "GET", "/metrics", NULL, NULL, r), 200);
        free(r);
    }
    cluster_stop(&c);
}
END_TEST

START_TEST(address_in_use_is_a_clear_error)
{
    struct cluster a;
    char cmd[800], out[2048], conf[400];
    FILE *p, *f;
    size_t n;
    int status;

    ck_assert_int_eq(cluster_start(&a, 1, ROOMY, 1), 0);
    snprintf(conf, sizeof(conf), "%s/second.conf", a.dir);
    f = fopen(conf, "w");
    fprintf(f, "listen = 127.0.0.1:%d\nadmin_socket = second.sock\nworkers = 1\n", a.port);
    fclose(f);
    snprintf(cmd, sizeof(cmd), "%s/verona serve -c %s 2>&1", getenv("VERONA_BIN_DIR"), conf);
    p = popen(cmd, "r");
    n = fread(out, 1, sizeof(out) - 1, p);
    out[n] = '\0';
    status = pclose(p);
    ck_assert_int_eq(WEXITSTATUS(status), 1);
    ck_assert_msg(strstr(out, "cannot listen") != NULL && strstr(out, "in use") != NULL, "got: %s", out);
    cluster_stop(&a);
}
END_TEST

START_TEST(worker_that_exits_at_start_backs_off)
{
    struct cluster c;
    char script[400], config[600];
    json_t *doc, *row;
    long restarts_early, restarts_late;

    fake_worker("exit-at-start", "exit 1", script, sizeof(script));
    snprintf(config, sizeof(config), ROOMY "worker_binary = %s\n", script);
    ck_assert_int_eq(cluster_start(&c, 1, config, 0), 0);
    cluster_pause_ms(3000);
    restarts_early = cluster_restarts(&c, "crash");
    /* 100 ms doubling: about 6 tries in 3 s, never hundreds. */
    ck_assert_int_ge(restarts_early, 3);
    ck_assert_int_le(restarts_early, 12);
    doc = cluster_status(&c);
    row = json_array_get(json_object_get(doc, "workers"), 0);
    ck_assert_ptr_nonnull(row);
    ck_assert_str_eq(json_string_value(json_object_get(row, "state")), "backoff");
    ck_assert(json_is_null(json_object_get(row, "pid"))); /* no process, so no pid */
    json_decref(doc);
    cluster_pause_ms(2000);
    restarts_late = cluster_restarts(&c, "crash");
    ck_assert_int_le(restarts_late - restarts_early, 3);
    ck_assert_int_eq(kill(c.pid, 0), 0); /* the supervisor never gives up or exits */
    cluster_stop(&c);
}
END_TEST

/* A worker binary that can no longer be executed (here: its mode loses
 * the x bits, so exec of the held descriptor fails): the slot backs off
 * between tries like a slot whose workers die at start, however often
 * the other worker's pongs wake the pool. */
START_TEST(worker_that_cannot_be_spawned_backs_off)
{
    struct cluster c;
    char binary[400], command[900], config[700];
    long crashes;
    int victim;
    json_t *doc, *workers;
    int in_backoff = 0;

    snprintf(binary, sizeof(binary), "%s/worker-copy-%d", getenv("VERONA_TEST_TMP"), (int)getpid());
    snprintf(command, sizeof(command), "cp '%s/verona-worker' '%s' && chmod 0755 '%s'", getenv("VERONA_BIN_DIR"),
             binary, binary);
    ck_assert_int_eq(system(command), 0);
    snprintf(config, sizeof(config), ROOMY "health_interval_ms = 20\nworker_binary = %s\n", binary);
    ck_assert_int_eq(cluster_start(&c, 2, config, 1), 0);
    victim = cluster_worker_pid(&c, "ready", 0);
    ck_assert_int_gt(victim, 0);
    ck_assert_int_eq(chmod(binary, 0644), 0);
    kill(victim, SIGKILL);
    cluster_pause_ms(3000);
    crashes = cluster_restarts(&c, "crash");
    /* The death, then tries 0, 100, 200, 400, 800, 1600 ms apart: about
     * 6 in 3 s; without backoff, one at every pong (hundreds). */
    ck_assert_int_ge(crashes, 3);
    ck_assert_int_le(crashes, 12);
    ck_assert(cluster_log_contains(&c, "\"spawn_failed\""));
    doc = cluster_status(&c);
    workers = json_object_get(doc, "workers");
    for (size_t i = 0; i < json_array_size(workers); i++)
        if (strcmp(json_string_value(json_object_get(json_array_get(workers, i), "state")), "backoff") == 0)
            in_backoff++;
    json_decref(doc);
    ck_assert_int_eq(in_backoff, 1);
    ck_assert_int_eq(cluster_count(&c, "ready"), 1); /* the other worker serves on */
    ck_assert_int_eq(chmod(binary, 0755), 0);
    ck_assert_int_eq(cluster_wait_workers(&c, 2, 2, 40000), 0);
    cluster_stop(&c);
    unlink(binary);
}
END_TEST

START_TEST(bad_settings_exit_2_goes_straight_to_long_backoff)
{
    struct cluster c;
    char script[400], config[600];
    json_t *doc, *row;

    fake_worker("exit-2", "exit 2", script, sizeof(script));
    snprintf(config, sizeof(config), ROOMY "worker_binary = %s\n", script);
    ck_assert_int_eq(cluster_start(&c, 1, config, 0), 0);
    cluster_pause_ms(1500);
    ck_assert_int_eq(cluster_restarts(&c, "crash"), 1);
    doc = cluster_status(&c);
    row = json_array_get(json_object_get(doc, "workers"), 0);
    ck_assert_str_eq(json_string_value(json_object_get(row, "state")), "backoff");
    ck_assert_int_gt(json_integer_value(json_object_get(row, "retry_in_ms")), 20000);
    json_decref(doc);
    cluster_stop(&c);
}
END_TEST

/* A slot's pid and restart count from the status (pid 0: no row). */
static void slot_row(const struct cluster *c, int slot, int *pid, long *restarts)
{
    json_t *doc = cluster_status(c), *workers;

    ck_assert_ptr_nonnull(doc);
    workers = json_object_get(doc, "workers");
    *pid = 0;
    *restarts = -1;
    for (size_t i = 0; i < json_array_size(workers); i++) {
        json_t *row = json_array_get(workers, i);
        if (json_integer_value(json_object_get(row, "slot")) == slot) {
            *pid = (int)json_integer_value(json_object_get(row, "pid"));
            *restarts = (long)json_integer_value(json_object_get(row, "restarts"));
        }
    }
    json_decref(doc);
}

/* Scaling down keeps the oldest workers, moving them to the low slots:
 * a worker's restart count moves with it, it does not take over the
 * count of the slot it lands in. */
START_TEST(scale_down_keeps_each_workers_restart_count)
{
    struct cluster c;
    char out[256];
    int pid0, pid1, pid;
    long restarts;
    long long deadline;

    ck_assert_int_eq(cluster_start(&c, 2, ROOMY, 1), 0);
    slot_row(&c, 0, &pid0, &restarts);
    slot_row(&c, 1, &pid1, &restarts);
    ck_assert_int_gt(pid0, 0);
    ck_assert_int_gt(pid1, 0);
    kill(pid0, SIGKILL);
    deadline = harness_now_ms() + 15000;
    do {
        cluster_pause_ms(50);
        slot_row(&c, 0, &pid, &restarts);
    } while (harness_now_ms() < deadline && !(pid != pid0 && pid > 0 && cluster_count(&c, "ready") == 2));
    ck_assert_int_eq(restarts, 1);
    /* Slot 0 now holds the newest worker: it goes, slot 1's moves down. */
    ck_assert_int_eq(cluster_ctl(&c, "scale 1", out, sizeof(out)), 0);
    ck_assert_int_eq(cluster_wait_workers(&c, 1, 1, 15000), 0);
    slot_row(&c, 0, &pid, &restarts);
    ck_assert_int_eq(pid, pid1);
    ck_assert_int_eq(restarts, 0);
    cluster_stop(&c);
}
END_TEST

START_TEST(protocol_garbage_gets_the_worker_killed)
{
    struct cluster c;
    char script[400], config[600];
    long long deadline;

    fake_worker("garbage", "printf 'this is not a frame' >&4\nexec sleep 30", script, sizeof(script));
    snprintf(config, sizeof(config), ROOMY "worker_binary = %s\n", script);
    ck_assert_int_eq(cluster_start(&c, 1, config, 0), 0);
    deadline = harness_now_ms() + 10000;
    while (harness_now_ms() < deadline && !cluster_log_contains(&c, "bad magic"))
        cluster_pause_ms(50);
    ck_assert(cluster_log_contains(&c, "bad magic"));
    ck_assert_int_eq(kill(c.pid, 0), 0);
    cluster_stop(&c);
}
END_TEST

START_TEST(stopped_worker_is_killed_and_replaced)
{
    struct cluster c;
    struct harness_response *r = calloc(1, sizeof(*r));
    int victim;
    long long deadline;

    ck_assert_int_eq(cluster_start(&c, 2, ROOMY, 1), 0);
    victim = cluster_worker_pid(&c, "ready", 0);
    ck_assert_int_gt(victim, 0);
    kill(victim, SIGSTOP);
    deadline = harness_now_ms() + 10000;
    while (harness_now_ms() < deadline && cluster_restarts(&c, "hang") < 1)
        cluster_pause_ms(50);
    ck_assert_int_eq(cluster_restarts(&c, "hang"), 1);
    ck_assert_int_eq(cluster_wait_workers(&c, 2, 2, 15000), 0);
    ck_assert_int_ne(cluster_worker_pid(&c, "ready", 0), victim);
    ck_assert_int_ne(cluster_worker_pid(&c, "ready", 1), victim);
    ck_assert_int_eq(harness_request(c.port, "GET", "/healthz", NULL, NULL, r), 200);
    cluster_stop(&c);
    free(r);
}
END_TEST

START_TEST(signals_scale_the_pool)
{
    struct cluster c;

    ck_assert_int_eq(cluster_start(&c, 2, ROOMY, 1), 0);
    kill(c.pid, SIGTTIN);
    ck_assert_int_eq(cluster_wait_workers(&c, 3, 3, 15000), 0);
    /* One at a time: two signals sent at once may arrive as one. */
    kill(c.pid, SIGTTOU);
    ck_assert_int_eq(cluster_wait_workers(&c, 2, 2, 15000), 0);
    kill(c.pid, SIGTTOU);
    ck_assert_int_eq(cluster_wait_workers(&c, 1, 1, 15000), 0);
    cluster_stop(&c);
}
END_TEST

/* The pid of the ready worker in `slot`, or 0. */
static int pid_in_slot(const struct cluster *c, int slot)
{
    json_t *doc = cluster_status(c), *row;
    size_t i;
    int pid = 0;

    ck_assert_ptr_nonnull(doc);
    json_array_foreach(json_object_get(doc, "workers"), i, row) {
        if (json_integer_value(json_object_get(row, "slot")) == slot &&
            strcmp(json_string_value(json_object_get(row, "state")), "ready") == 0)
            pid = (int)json_integer_value(json_object_get(row, "pid"));
    }
    json_decref(doc);
    return pid;
}

/* Scaling down drains the newest workers: after slot 0's worker was
 * recycled (so it is the newest), scale 3 -> 2 keeps the two older ones. */
START_TEST(scaling_down_drains_the_newest)
{
    struct cluster c;
    char out[512], args[64];
    int old1, old2, fresh, kept[2];

    ck_assert_int_eq(cluster_start(&c, 3, ROOMY, 1), 0);
    old1 = pid_in_slot(&c, 1);
    old2 = pid_in_slot(&c, 2);
    snprintf(args, sizeof(args), "recycle %d", pid_in_slot(&c, 0));
    ck_assert_int_eq(cluster_ctl(&c, args, out, sizeof(out)), 0);
    /* The replacement is ready and its predecessor gone: 3 rows, all ready. */
    ck_assert_int_eq(cluster_wait_workers(&c, 3, 3, 15000), 0);
    fresh = pid_in_slot(&c, 0);
    ck_assert(fresh != 0 && fresh != old1 && fresh != old2);
    ck_assert_int_eq(cluster_ctl(&c, "scale 2", out, sizeof(out)), 0);
    ck_assert_int_eq(cluster_wait_workers(&c, 2, 2, 15000), 0);
    kept[0] = pid_in_slot(&c, 0);
    kept[1] = pid_in_slot(&c, 1);
    ck_assert_msg((kept[0] == old1 || kept[0] == old2) && (kept[1] == old1 || kept[1] == old2) && kept[0] != kept[1],
                  "kept %d and %d, not the older %d and %d (the newest was %d)", kept[0], kept[1], old1, old2, fresh);
    ck_assert_int_ne(kill(fresh, 0), 0);
    cluster_stop(&c);
}
END_TEST

START_TEST(workers_leave_when_the_supervisor_is_killed)
{
    struct cluster c;
    int pids[2], gate;
    long long deadline;

    ck_assert_int_eq(cluster_start(&c, 2, ROOMY, 1), 0);
    pids[0] = cluster_worker_pid(&c, "ready", 0);
    pids[1] = cluster_worker_pid(&c, "ready", 1);
    gate = cluster_worker_gate(pids[0]);
    ck_assert_int_ge(gate, 0);
    ck_assert_int_ge(semctl(gate, 0, GETVAL), 1);
    ck_assert_int_eq(cluster_signal_wait(&c, SIGKILL, 5000) != -1, 1);
    deadline = harness_now_ms() + 20000;
    while (harness_now_ms() < deadline && (pid_alive(pids[0]) || pid_alive(pids[1])))
        cluster_pause_ms(50);
    ck_assert_msg(!pid_alive(pids[0]) && !pid_alive(pids[1]), "orphaned workers %d %d", pids[0], pids[1]);
    /* The supervisor could not remove its hash gate; the orphans did. */
    ck_assert_int_eq(semctl(gate, 0, GETVAL), -1);
}
END_TEST

START_TEST(graceful_stop_by_ctl)
{
    struct cluster c;
    char out[1024];
    int pid;
    long long deadline;
    int status = -1;

    ck_assert_int_eq(cluster_start(&c, 2, ROOMY, 1), 0);
    pid = cluster_worker_pid(&c, "ready", 0);
    ck_assert_int_eq(cluster_ctl(&c, "stop", out, sizeof(out)), 0);
    deadline = harness_now_ms() + 20000;
    while (harness_now_ms() < deadline && waitpid(c.pid, &status, WNOHANG) != c.pid)
        cluster_pause_ms(20);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    ck_assert(!pid_alive(pid));
    c.pid = 0;
}
END_TEST

START_TEST(cold_start_without_database_serves_503_not_a_hang)
{
    struct cluster c;
    struct harness_response *r = calloc(1, sizeof(*r));
    char config[400];
    long long deadline;
    int status = 0;

    /* No PostgreSQL behind this socket folder. */
    snprintf(config, sizeof(config), ROOMY "database_url = postgresql:///verona?host=%s/nowhere\n",
             getenv("VERONA_TEST_TMP"));
    setenv("VERONA_DATABASE_URL", "", 1); /* the file's URL, not the test database */
    ck_assert_int_eq(cluster_start(&c, 2, config, 0), 0);
    unsetenv("VERONA_DATABASE_URL");
    deadline = harness_now_ms() + 15000;
    while (harness_now_ms() < deadline && (status = harness_request(c.port, "GET", "/healthz", NULL, NULL, r)) != 200)
        cluster_pause_ms(50);
    ck_assert_int_eq(status, 200);
    ck_assert_int_eq(harness_request(c.port, "GET", "/v1/session",
                                     "Authorization: Bearer aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n", NULL, r),
                     503);
    ck_assert_int_eq(harness_request(c.port, "GET", "/readyz", NULL, NULL, r), 503);
    /* Put to serve (503s) though they never reported ready: status says
     * they do not reach PostgreSQL. */
    ck_assert_int_eq(cluster_wait_workers(&c, 2, -1, 15000), 0);
    {
        json_t *doc = cluster_status(&c), *workers;

        ck_assert_ptr_nonnull(doc);
        workers = json_object_get(doc, "workers");
        for (size_t i = 0; i < json_array_size(workers); i++)
            ck_assert(json_is_false(json_object_get(json_array_get(workers, i), "db_up")));
        json_decref(doc);
    }
    cluster_stop(&c);
    free(r);
}
END_TEST

START_TEST(admin_socket_refuses_other_users)
{
    struct cluster c;
    char cmd[1600];
    int rc;

    if (getuid() != 0)
        return; /* needs root to act as another user */
    ck_assert_int_eq(cluster_start(&c, 1, ROOMY, 1), 0);
    /* Even with the file mode opened up, the peer's uid is checked. */
    ck_assert_int_eq(chmod(c.dir, 0755), 0);
    ck_assert_int_eq(chmod(c.socket_path, 0666), 0);
    /* A copy of verona that `nobody` can run (the checkout may be closed to it). */
    snprintf(cmd, sizeof(cmd),
             "cp %s/verona %s/verona-copy && chmod 755 %s/verona-copy && "
             "runuser -u nobody -- %s/verona-copy ctl -s %s scale 3 > %s/nobody.out 2>&1",
             getenv("VERONA_BIN_DIR"), c.dir, c.dir, c.dir, c.socket_path, c.dir);
    rc = system(cmd);
    ck_assert_int_eq(WEXITSTATUS(rc), 1);
    snprintf(cmd, sizeof(cmd), "grep -q 'permission denied' %s/nobody.out", c.dir);
    ck_assert_int_eq(system(cmd), 0);
    ck_assert_int_eq(cluster_count(&c, NULL), 1); /* nothing changed */
    cluster_stop(&c);
}
END_TEST

Suite *supervisor_suite(void)
{
    Suite *s = suite_create("supervisor");
    TCase *tc = tcase_create("pool");

    tcase_set_timeout(tc, 90);
    tcase_add_test(tc, starts_serves_and_reports_status);
    tcase_add_test(tc, bad_admin_input_changes_nothing);
    tcase_add_test(tc, config_errors_exit_2_with_file_and_line);
    tcase_add_test(tc, admin_socket_folder_is_made);
    tcase_add_test(tc, scale_down_keeps_each_workers_restart_count);
    tcase_add_test(tc, reload_refuses_to_move_the_bound_sockets);
    tcase_add_test(tc, address_in_use_is_a_clear_error);
    tcase_add_test(tc, worker_that_exits_at_start_backs_off);
    tcase_add_test(tc, bad_settings_exit_2_goes_straight_to_long_backoff);
    tcase_add_test(tc, worker_that_cannot_be_spawned_backs_off);
    tcase_add_test(tc, protocol_garbage_gets_the_worker_killed);
    tcase_add_test(tc, stopped_worker_is_killed_and_replaced);
    tcase_add_test(tc, signals_scale_the_pool);
    tcase_add_test(tc, scaling_down_drains_the_newest);
    tcase_add_test(tc, workers_leave_when_the_supervisor_is_killed);
    tcase_add_test(tc, graceful_stop_by_ctl);
    tcase_add_test(tc, cold_start_without_database_serves_503_not_a_hang);
    tcase_add_test(tc, admin_socket_refuses_other_users);
    suite_add_tcase(s, tc);
    return s;
}
