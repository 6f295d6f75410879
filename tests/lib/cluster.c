/* tests/lib/cluster.c - see tests/lib/cluster.h. */
#include "cluster.h"

#include "../../proto/hash_gate.h"

#include <check.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

void cluster_pause_ms(int ms)
{
    poll(NULL, 0, ms);
}

void cluster_prepare(struct cluster *c, int workers, const char *extra_config)
{
    static int counter;
    FILE *f;

    memset(c, 0, sizeof(*c));
    counter++;
    snprintf(c->dir, sizeof(c->dir), "%s/cluster-%d-%d", getenv("VERONA_TEST_TMP"), (int)getpid(), counter);
    ck_assert_int_eq(mkdir(c->dir, 0755), 0);
    snprintf(c->config_path, sizeof(c->config_path), "%s/verona.conf", c->dir);
    snprintf(c->socket_path, sizeof(c->socket_path), "%s/verona.sock", c->dir);
    snprintf(c->log_path, sizeof(c->log_path), "%s/serve.log", c->dir);
    snprintf(c->verona, sizeof(c->verona), "%s/verona", getenv("VERONA_BIN_DIR"));
    c->port = harness_free_port();
    f = fopen(c->config_path, "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f, "listen = 127.0.0.1:%d\nworkers = %d\nadmin_socket = verona.sock\n"
               "metrics_listen = 127.0.0.1:%d\n"
               "argon2_memlimit_kib = 8192\nargon2_opslimit = 1\nhash_threads = 1\ndb_pool_size = 2\n"
               "trusted_proxies = 127.0.0.1\n"
               "health_interval_ms = 100\nhealth_timeout_ms = 1000\nready_timeout_ms = 5000\n"
               "drain_timeout_ms = 5000\n%s\n",
            c->port, workers, harness_free_port(), extra_config != NULL ? extra_config : "");
    fclose(f);
    c->workers = workers;
}

int cluster_launch(struct cluster *c, int wait_ready)
{
    char verona[512];

    snprintf(verona, sizeof(verona), "%s", c->verona);
    c->pid = fork();
    ck_assert_int_ge(c->pid, 0);
    if (c->pid == 0) {
        int fd = open(c->log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, STDOUT_FILENO);
            dup2(fd, STDERR_FILENO);
            close(fd);
        }
        execl(verona, "verona", "serve", "-c", c->config_path, (char *)NULL);
        _exit(127);
    }
    if (!wait_ready)
        return 0;
    return cluster_wait_workers(c, c->workers, c->workers, 30000);
}

void cluster_replace_binary(const struct cluster *c, const char *source, int mode)
{
    char tmp[400], command[2400];

    snprintf(tmp, sizeof(tmp), "%s.new", c->verona);
    snprintf(command, sizeof(command), "cp '%s' '%s' && chmod %o '%s' && mv -f '%s' '%s'", source, tmp, mode, tmp, tmp,
             c->verona);
    ck_assert_int_eq(system(command), 0);
}

void cluster_replace_binary_script(const struct cluster *c, const char *body)
{
    char path[400];
    FILE *f;

    snprintf(path, sizeof(path), "%s.script", c->verona);
    f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f, "#!/bin/sh\n%s\n", body);
    fclose(f);
    cluster_replace_binary(c, path, 0755);
    unlink(path);
}

void cluster_own_binary(struct cluster *c)
{
    char source[320];
    FILE *f;

    snprintf(source, sizeof(source), "%s/verona", getenv("VERONA_BIN_DIR"));
    snprintf(c->verona, sizeof(c->verona), "%s/verona", c->dir);
    cluster_replace_binary(c, source, 0755);
    f = fopen(c->config_path, "a");
    ck_assert_ptr_nonnull(f);
    fprintf(f, "worker_binary = %s/verona-worker\n", getenv("VERONA_BIN_DIR"));
    fclose(f);
}

void cluster_load_start(struct cluster_load *l, const struct cluster *c, int seconds, int keep_alive)
{
    char name[64], token[44], extra[600];
    FILE *f;

    harness_username(name, sizeof(name), "load");
    harness_register(c->port, name, CLUSTER_PASSWORD);
    ck_assert_int_eq(harness_login(c->port, name, CLUSTER_PASSWORD, token, NULL), 200);
    snprintf(l->script, sizeof(l->script), "%s/login-%d.lua", c->dir, (int)getpid());
    f = fopen(l->script, "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f, "wrk.method = \"POST\"\nwrk.headers[\"Content-Type\"] = \"application/json\"\n%s"
               "wrk.body = '{\"username\":\"%s\",\"password\":\"%s\"}'\n",
            keep_alive ? "" : "wrk.headers[\"Connection\"] = \"close\"\n", name, CLUSTER_PASSWORD);
    fclose(f);
    snprintf(extra, sizeof(extra), "-H 'Authorization: Bearer %s'%s", token,
             keep_alive ? "" : " -H 'Connection: close'");
    wrk_start(&l->session, c, "/v1/session", 16, seconds, extra);
    snprintf(extra, sizeof(extra), "-s %s", l->script);
    wrk_start(&l->login, c, "/v1/login", 4, seconds, extra);
}

void cluster_load_finish(struct cluster_load *l)
{
    wrk_finish(&l->session);
    wrk_finish(&l->login);
}

void cluster_load_assert_no_failures(const struct cluster_load *l)
{
    ck_assert_msg(l->session.errors == 0 && l->session.non_2xx == 0,
                  "session load: %ld errors, %ld non-2xx of %ld (%s)", l->session.errors, l->session.non_2xx,
                  l->session.requests, l->session.out_path);
    ck_assert_msg(l->login.errors == 0 && l->login.non_2xx == 0, "login load: %ld errors, %ld non-2xx of %ld (%s)",
                  l->login.errors, l->login.non_2xx, l->login.requests, l->login.out_path);
}

double cluster_metric_sum(const struct cluster *c, const char *name)
{
    struct harness_response *r = calloc(1, sizeof(*r));
    size_t len = strlen(name);
    double sum = 0;
    char *line, *save = NULL;

    ck_assert_ptr_nonnull(r);
    if (harness_request(cluster_metrics_port(c), "GET", "/metrics", NULL, NULL, r) != 200) {
        free(r);
        return -1;
    }
    for (line = strtok_r(r->body, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
        const char *value;

        if (strncmp(line, name, len) != 0 || (line[len] != ' ' && line[len] != '{'))
            continue;
        value = strrchr(line, ' ');
        if (value != NULL)
            sum += strtod(value + 1, NULL);
    }
    free(r);
    return sum;
}

int cluster_start(struct cluster *c, int workers, const char *extra_config, int wait_ready)
{
    cluster_prepare(c, workers, extra_config);
    return cluster_launch(c, wait_ready);
}

int cluster_signal_wait(struct cluster *c, int signal, int timeout_ms)
{
    long long deadline = harness_now_ms() + timeout_ms;
    int status = -1;

    if (c->pid <= 0)
        return -1;
    kill(c->pid, signal);
    while (harness_now_ms() < deadline) {
        if (waitpid(c->pid, &status, WNOHANG) == c->pid) {
            c->pid = 0;
            return status;
        }
        cluster_pause_ms(20);
    }
    kill(c->pid, SIGKILL);
    waitpid(c->pid, &status, 0);
    c->pid = 0;
    return -1;
}

void cluster_stop(struct cluster *c)
{
    int status = cluster_signal_wait(c, SIGTERM, 30000);

    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "verona serve exited with %d (see %s)", status,
                  c->log_path);
}

int cluster_ctl(const struct cluster *c, const char *args, char *out, size_t size)
{
    char cmd[1024];
    FILE *p;
    size_t n;
    int status;

    snprintf(cmd, sizeof(cmd), "%s/verona ctl -s %s %s 2>&1", getenv("VERONA_BIN_DIR"), c->socket_path, args);
    p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    n = fread(out, 1, size - 1, p);
    out[n] = '\0';
    status = pclose(p);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

json_t *cluster_status(const struct cluster *c)
{
    static char out[1 << 16];

    if (cluster_ctl(c, "status --json", out, sizeof(out)) != 0)
        return NULL;
    return json_loads(out, 0, NULL);
}

int cluster_metrics_port(const struct cluster *c)
{
    FILE *f = fopen(c->config_path, "r");
    char line[256];
    int port = 0;

    ck_assert_ptr_nonnull(f);
    while (fgets(line, sizeof(line), f) != NULL)
        if (sscanf(line, "metrics_listen = 127.0.0.1:%d", &port) == 1)
            break;
    fclose(f);
    return port;
}

int cluster_count(const struct cluster *c, const char *state)
{
    json_t *doc = cluster_status(c), *row;
    size_t i;
    int n = 0;

    if (doc == NULL)
        return -1;
    json_array_foreach(json_object_get(doc, "workers"), i, row)
        if (state == NULL || strcmp(json_string_value(json_object_get(row, "state")), state) == 0)
            n++;
    json_decref(doc);
    return n;
}

long cluster_restarts(const struct cluster *c, const char *reason)
{
    json_t *doc = cluster_status(c);
    long n;

    if (doc == NULL)
        return -1;
    n = (long)json_integer_value(
        json_object_get(json_object_get(json_object_get(doc, "totals"), "restarts_by_reason"), reason));
    json_decref(doc);
    return n;
}

int cluster_worker_pid(const struct cluster *c, const char *state, int n)
{
    json_t *doc = cluster_status(c), *row;
    size_t i;
    int pid = 0;

    if (doc == NULL)
        return 0;
    json_array_foreach(json_object_get(doc, "workers"), i, row) {
        if (strcmp(json_string_value(json_object_get(row, "state")), state) != 0)
            continue;
        if (n-- == 0) {
            pid = (int)json_integer_value(json_object_get(row, "pid"));
            break;
        }
    }
    json_decref(doc);
    return pid;
}

int cluster_wait_workers(const struct cluster *c, int ready, int total, int timeout_ms)
{
    long long deadline = harness_now_ms() + timeout_ms;

    while (harness_now_ms() < deadline) {
        if (cluster_count(c, "ready") == ready && (total < 0 || cluster_count(c, NULL) == total))
            return 0;
        if (c->pid > 0 && waitpid(c->pid, NULL, WNOHANG) == c->pid)
            return -1;
        cluster_pause_ms(50);
    }
    return -1;
}

int cluster_log_contains(const struct cluster *c, const char *text)
{
    return harness_file_contains(c->log_path, text);
}

void wrk_start(struct wrk_run *run, const struct cluster *c, const char *path, int connections, int seconds,
               const char *extra)
{
    static int counter;
    char cmd[2048];

    memset(run, 0, sizeof(*run));
    snprintf(run->out_path, sizeof(run->out_path), "%s/wrk-%d-%d.txt", c->dir, (int)getpid(), ++counter);
    snprintf(cmd, sizeof(cmd), "exec wrk -t2 -c%d -d%ds --timeout 10s %s http://127.0.0.1:%d%s > %s 2>&1",
             connections, seconds, extra != NULL ? extra : "", c->port, path, run->out_path);
    run->pid = fork();
    ck_assert_int_ge(run->pid, 0);
    if (run->pid == 0) {
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
}

void wrk_finish(struct wrk_run *run)
{
    char line[512];
    int status;
    FILE *f;

    ck_assert_int_eq(waitpid(run->pid, &status, 0), run->pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "wrk failed, see %s", run->out_path);
    f = fopen(run->out_path, "r");
    ck_assert_ptr_nonnull(f);
    while (fgets(line, sizeof(line), f) != NULL) {
        long a, b, d, e;
        if (sscanf(line, " %ld requests in", &a) == 1)
            run->requests = a;
        else if (sscanf(line, " Socket errors: connect %ld, read %ld, write %ld, timeout %ld", &a, &b, &d, &e) == 4)
            run->errors = a + b + d + e;
        else if (sscanf(line, " Non-2xx or 3xx responses: %ld", &a) == 1)
            run->non_2xx = a;
    }
    fclose(f);
    ck_assert_msg(run->requests > 0, "wrk made no request, see %s", run->out_path);
}

/* The hash gate's id, from a worker's environment; -1 if none. */
int cluster_worker_gate(int pid)
{
    char path[64], *env = NULL;
    size_t n = 0, cap = 0, len = strlen(HASH_GATE_ENV "=");
    int gate = -1;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/environ", pid);
    f = fopen(path, "r");
    if (f == NULL)
        return -1;
    /* The whole of it: the variable comes after whatever the supervisor inherited. */
    for (;;) {
        if (n + 1 >= cap) {
            char *bigger = realloc(env, cap + 65536);
            if (bigger == NULL)
                break;
            env = bigger;
            cap += 65536;
        }
        size_t got = fread(env + n, 1, cap - n - 1, f);
        if (got == 0)
            break;
        n += got;
    }
    fclose(f);
    if (env == NULL)
        return -1;
    env[n] = '\0';
    for (size_t i = 0; i < n; i += strlen(env + i) + 1)
        if (strncmp(env + i, HASH_GATE_ENV "=", len) == 0)
            gate = atoi(env + i + len);
    free(env);
    return gate;
}
