/* tests/lib/harness.c - shared test helpers (tests/lib/harness.h). */
#include "harness.h"

#include <arpa/inet.h>
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Test servers listen on ports from here up to the ephemeral range. */
#define HARNESS_PORT_BASE 20000

static const char *harness_env(const char *name)
{
    const char *v = getenv(name);

    ck_assert_msg(v != NULL && v[0] != '\0', "%s is not set (run the tests through make check)",
                  name);
    return v;
}

long long harness_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits for `ms` without busy-looping; used only between polls of a
 * condition with a deadline. */
static void harness_pause_ms(int ms)
{
    poll(NULL, 0, ms);
}

/* 1 when nothing on this host holds 127.0.0.1:port (bound without
 * SO_REUSEADDR, so a connection in TIME_WAIT counts as holding it). */
static int harness_port_is_free(int port)
{
    struct sockaddr_in sin;
    int fd = socket(AF_INET, SOCK_STREAM, 0), ok;

    ck_assert_int_ge(fd, 0);
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sin.sin_port = htons((uint16_t)port);
    ok = bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0;
    close(fd);
    return ok;
}

int harness_free_port(void)
{
    /* Below the kernel's ephemeral range: the thousands of connections the
     * tests open take their local ports from that range, and one of them
     * could take a port between this check and the server's bind. Each
     * test process (Check forks one per test) walks from its own pid. */
    static unsigned next;
    int low = 32768, span;
    FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");

    if (f != NULL) {
        if (fscanf(f, "%d", &low) != 1)
            low = 32768;
        fclose(f);
    }
    span = low - HARNESS_PORT_BASE;
    ck_assert_msg(span >= 1000, "ephemeral ports start at %d: too low for the tests' ports", low);
    if (next == 0)
        next = (unsigned)getpid() * 7919u;
    for (int tries = 0; tries < span; tries++) {
        int port = HARNESS_PORT_BASE + (int)(next++ % (unsigned)span);

        if (harness_port_is_free(port))
            return port;
    }
    ck_abort_msg("no free port in %d..%d", HARNESS_PORT_BASE, low - 1);
    return -1;
}

int harness_worker_alive(const struct harness_worker *w)
{
    int status;

    return w->pid > 0 && waitpid(w->pid, &status, WNOHANG) == 0;
}

int harness_worker_start(struct harness_worker *w, const char *extra_config, int wait_ready)
{
    const char *bin_dir = harness_env("VERONA_BIN_DIR");
    char worker_path[512];
    FILE *f;
    long long deadline;
    static int counter;

    memset(w, 0, sizeof(*w));
    w->port = harness_free_port();
    counter++;
    snprintf(w->config_path, sizeof(w->config_path), "%s/worker-%d-%d.conf",
             harness_env("VERONA_TEST_TMP"), (int)getpid(), counter);
    snprintf(w->log_path, sizeof(w->log_path), "%s/worker-%d-%d.log", harness_env("VERONA_TEST_TMP"),
             (int)getpid(), counter);
    f = fopen(w->config_path, "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f, "listen = 127.0.0.1:%d\n"
               "argon2_memlimit_kib = 8192\n"
               "argon2_opslimit = 1\n"
               "hash_threads = 2\n"
               "db_pool_size = 2\n"
               "trusted_proxies = 127.0.0.1\n"
               "%s\n",
            w->port, extra_config != NULL ? extra_config : "");
    fclose(f);
    snprintf(worker_path, sizeof(worker_path), "%s/verona-worker", bin_dir);

    w->pid = fork();
    ck_assert_int_ge(w->pid, 0);
    if (w->pid == 0) {
        int fd = open(w->log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, STDERR_FILENO);
            dup2(fd, STDOUT_FILENO);
            close(fd);
        }
        execl(worker_path, "verona-worker", "-c", w->config_path, (char *)NULL);
        _exit(127);
    }
    deadline = harness_now_ms() + 20000;
    while (harness_now_ms() < deadline) {
        struct harness_response *r = malloc(sizeof(*r));
        int status;

        ck_assert_ptr_nonnull(r);
        status = harness_request(w->port, "GET", wait_ready ? "/readyz" : "/healthz", NULL, NULL, r);
        free(r);
        if (status == 200)
            return 0;
        if (!harness_worker_alive(w))
            return -1;
        harness_pause_ms(20);
    }
    return -1;
}

int harness_worker_stop(struct harness_worker *w)
{
    long long deadline = harness_now_ms() + 20000;
    int status = -1;

    if (w->pid <= 0)
        return -1;
    kill(w->pid, SIGTERM);
    while (harness_now_ms() < deadline) {
        pid_t r = waitpid(w->pid, &status, WNOHANG);
        if (r == w->pid) {
            w->pid = 0;
            /* A clean drain exits 0; a sanitizer report or leak does not. */
            ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                          "worker exited with status %d (see %s)", status, w->log_path);
            return status;
        }
        harness_pause_ms(10);
    }
    kill(w->pid, SIGKILL);
    waitpid(w->pid, &status, 0);
    w->pid = 0;
    return -1;
}

int harness_connect(int port)
{
    struct sockaddr_in sin;
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;

    if (fd < 0)
        return -1;
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons((unsigned short)port);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0) {
        close(fd);
        return -1;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

int harness_send(int fd, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, data, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Reads into buf until `want` bytes or the deadline; returns bytes read. */
static size_t harness_read_some(int fd, char *buf, size_t cap, long long deadline, int *eof)
{
    struct pollfd p = { fd, POLLIN, 0 };
    long long left = deadline - harness_now_ms();
    ssize_t n;

    if (left <= 0 || poll(&p, 1, (int)left) <= 0)
        return 0;
    n = recv(fd, buf, cap, 0);
    if (n <= 0) {
        *eof = 1;
        return 0;
    }
    return (size_t)n;
}

int harness_read_response(int fd, struct harness_response *r, int timeout_ms)
{
    static char buf[HARNESS_BODY_MAX + 16384];
    long long deadline = harness_now_ms() + timeout_ms;
    size_t len = 0, head_len = 0;
    long content_length = 0;
    int eof = 0;
    char *end = NULL;

    memset(r, 0, offsetof(struct harness_response, body) + 1);
    r->body[0] = '\0';
    r->body_len = 0;
    /* One byte at a time past the head would be slow; read in chunks but
     * never beyond this response: MSG_PEEK first, then consume. */
    while (end == NULL) {
        ssize_t n;
        struct pollfd p = { fd, POLLIN, 0 };
        long long left = deadline - harness_now_ms();

        if (left <= 0 || poll(&p, 1, (int)left) <= 0)
            return -1;
        n = recv(fd, buf + len, sizeof(buf) - len - 1, MSG_PEEK);
        if (n <= 0) {
            r->closed = 1;
            return -1;
        }
        buf[len + (size_t)n] = '\0';
        end = strstr(buf, "\r\n\r\n");
        if (end == NULL) {
            /* consume what we peeked and continue */
            n = recv(fd, buf + len, (size_t)n, 0);
            len += (size_t)n;
            if (len >= sizeof(buf) - 1)
                return -1;
        } else {
            size_t want = (size_t)(end + 4 - buf) - len;
            n = recv(fd, buf + len, want, 0);
            len += (size_t)n;
        }
    }
    /* 100 Continue is an interim answer: skip it. */
    head_len = len;
    if (sscanf(buf, "HTTP/1.%*d %d", &r->status) != 1)
        return -1;
    if (r->status == 100)
        return harness_read_response(fd, r, timeout_ms);
    if (head_len - 4 >= sizeof(r->headers))
        return -1;
    memcpy(r->headers, buf, head_len - 4);
    r->headers[head_len - 4] = '\0';
    {
        char cl[32];
        if (harness_header(r, "content-length", cl, sizeof(cl)) == 0)
            content_length = strtol(cl, NULL, 10);
        if (harness_header(r, "connection", cl, sizeof(cl)) == 0 && strcasecmp(cl, "close") == 0)
            r->closed = 1;
    }
    if (content_length < 0 || content_length >= HARNESS_BODY_MAX)
        return -1;
    while (r->body_len < (size_t)content_length && !eof) {
        size_t n = harness_read_some(fd, r->body + r->body_len, (size_t)content_length - r->body_len,
                                     deadline, &eof);
        if (n == 0 && !eof)
            return -1;
        r->body_len += n;
    }
    r->body[r->body_len] = '\0';
    return r->body_len == (size_t)content_length ? 0 : -1;
}

int harness_request(int port, const char *method, const char *path, const char *headers,
                    const char *body, struct harness_response *r)
{
    char head[4096];
    int fd = harness_connect(port), n;
    size_t body_len = body != NULL ? strlen(body) : 0;

    r->status = 0;
    if (fd < 0)
        return 0;
    n = snprintf(head, sizeof(head),
                 "%s %s HTTP/1.1\r\nHost: test\r\n%s%sContent-Length: %zu\r\nConnection: close\r\n\r\n",
                 method, path, headers != NULL ? headers : "", "", body_len);
    if (n > 0 && (size_t)n < sizeof(head) && harness_send(fd, head, (size_t)n) == 0 &&
        (body_len == 0 || harness_send(fd, body, body_len) == 0))
        (void)harness_read_response(fd, r, 30000); /* r->status stays 0 without an answer */
    close(fd);
    return r->status;
}

int harness_post_json(int port, const char *path, const char *token, const char *json,
                      struct harness_response *r)
{
    char headers[256];

    snprintf(headers, sizeof(headers), "Content-Type: application/json\r\n%s%s%s",
             token != NULL ? "Authorization: Bearer " : "", token != NULL ? token : "",
             token != NULL ? "\r\n" : "");
    return harness_request(port, "POST", path, headers, json, r);
}

int harness_header(const struct harness_response *r, const char *name, char *out, size_t size)
{
    size_t nlen = strlen(name);
    const char *line = strstr(r->headers, "\r\n");

    while (line != NULL) {
        const char *next;
        line += 2;
        next = strstr(line, "\r\n");
        if (strncasecmp(line, name, nlen) == 0 && line[nlen] == ':') {
            const char *v = line + nlen + 1;
            size_t vlen;
            while (*v == ' ')
                v++;
            vlen = next != NULL ? (size_t)(next - v) : strlen(v);
            if (vlen >= size)
                vlen = size - 1;
            memcpy(out, v, vlen);
            out[vlen] = '\0';
            return 0;
        }
        line = next;
    }
    return -1;
}

int harness_json_string(const struct harness_response *r, const char *name, char *out, size_t size)
{
    json_t *doc = json_loadb(r->body, r->body_len, 0, NULL);
    json_t *v = doc != NULL ? json_object_get(doc, name) : NULL;
    int rc = -1;

    if (v != NULL && json_is_string(v) && strlen(json_string_value(v)) < size) {
        strcpy(out, json_string_value(v));
        rc = 0;
    }
    json_decref(doc);
    return rc;
}

long long harness_json_int(const struct harness_response *r, const char *name)
{
    json_t *doc = json_loadb(r->body, r->body_len, 0, NULL);
    json_t *v = doc != NULL ? json_object_get(doc, name) : NULL;
    long long value = v != NULL && json_is_integer(v) ? json_integer_value(v) : -1;

    json_decref(doc);
    return value;
}

PGconn *harness_db(void)
{
    PGconn *pg = PQconnectdb(harness_env("VERONA_DATABASE_URL"));

    ck_assert_msg(PQstatus(pg) == CONNECTION_OK, "database: %s", PQerrorMessage(pg));
    return pg;
}

char *harness_sql_value(const char *sql)
{
    PGconn *pg = harness_db();
    PGresult *res = PQexec(pg, sql);
    char *value = NULL;

    ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK, "%s: %s", sql, PQerrorMessage(pg));
    if (PQntuples(res) > 0 && !PQgetisnull(res, 0, 0))
        value = strdup(PQgetvalue(res, 0, 0));
    PQclear(res);
    PQfinish(pg);
    return value;
}

void harness_sql(const char *sql)
{
    PGconn *pg = harness_db();
    PGresult *res = PQexec(pg, sql);

    ck_assert_msg(PQresultStatus(res) == PGRES_COMMAND_OK || PQresultStatus(res) == PGRES_TUPLES_OK,
                  "%s: %s", sql, PQerrorMessage(pg));
    PQclear(res);
    PQfinish(pg);
}

void harness_register(int port, const char *username, const char *password)
{
    struct harness_response *r = malloc(sizeof(*r));
    char json[512], headers[160];
    static int counter;

    ck_assert_ptr_nonnull(r);
    /* Each registration from its own documentation address (198.18/15),
     * so the 10-an-hour registration limit of one address never bites. */
    counter++;
    snprintf(headers, sizeof(headers),
             "Content-Type: application/json\r\nX-Forwarded-For: 198.%d.%d.%d\r\n",
             18 + (getpid() & 1), (getpid() >> 1) & 255, counter & 255);
    snprintf(json, sizeof(json), "{\"username\":\"%s\",\"password\":\"%s\"}", username, password);
    ck_assert_int_eq(harness_request(port, "POST", "/v1/users", headers, json, r), 201);
    free(r);
}

int harness_login(int port, const char *username, const char *password, char *token,
                  const char *extra_headers)
{
    struct harness_response *r = malloc(sizeof(*r));
    char json[512], headers[512];
    int status;

    ck_assert_ptr_nonnull(r);
    snprintf(json, sizeof(json), "{\"username\":\"%s\",\"password\":\"%s\"}", username, password);
    snprintf(headers, sizeof(headers), "Content-Type: application/json\r\n%s",
             extra_headers != NULL ? extra_headers : "");
    status = harness_request(port, "POST", "/v1/login", headers, json, r);
    if (token != NULL) {
        token[0] = '\0';
        if (status == 200)
            ck_assert_int_eq(harness_json_string(r, "token", token, 44), 0);
    }
    free(r);
    return status;
}

void harness_username(char *out, size_t size, const char *prefix)
{
    static int counter;

    snprintf(out, size, "%s%d_%d", prefix, ++counter, (int)getpid());
}

int harness_file_contains(const char *path, const char *text)
{
    FILE *f = fopen(path, "r");
    char line[4096];
    int found = 0;

    if (f == NULL)
        return 0;
    while (!found && fgets(line, sizeof(line), f) != NULL)
        found = strstr(line, text) != NULL;
    fclose(f);
    return found;
}

static int harness_pg(const char *action)
{
    char cmd[1024];

    snprintf(cmd, sizeof(cmd), "sh '%s/deploy/pg.sh' %s '%s' >/dev/null", harness_env("VERONA_ROOT"),
             action, harness_env("VERONA_PG_DIR"));
    return system(cmd) == 0 ? 0 : -1;
}

int harness_pg_stop(void)
{
    return harness_pg("stop");
}

int harness_pg_start(void)
{
    return harness_pg("start");
}

/* The parent pid of `pid` from /proc/PID/stat, or -1. */
static long harness_parent_of(long pid)
{
    char path[64], text[512], *after;
    long parent = -1;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
    f = fopen(path, "r");
    if (f == NULL)
        return -1;
    if (fgets(text, sizeof(text), f) != NULL && (after = strrchr(text, ')')) != NULL)
        if (sscanf(after, ") %*c %ld", &parent) != 1)
            parent = -1;
    fclose(f);
    return parent;
}

int harness_pg_signal(int sig)
{
    char path[1200];
    long postmaster = 0;
    int count = 0;
    struct dirent *e;
    FILE *f;
    DIR *proc;

    snprintf(path, sizeof(path), "%s/data/postmaster.pid", harness_env("VERONA_PG_DIR"));
    f = fopen(path, "r");
    if (f == NULL)
        return -1;
    if (fscanf(f, "%ld", &postmaster) != 1)
        postmaster = 0;
    fclose(f);
    if (postmaster <= 0 || (proc = opendir("/proc")) == NULL)
        return -1;
    while ((e = readdir(proc)) != NULL) {
        long pid = strtol(e->d_name, NULL, 10);
        if (pid > 0 && harness_parent_of(pid) == postmaster && kill((pid_t)pid, sig) == 0)
            count++;
    }
    closedir(proc);
    if (kill((pid_t)postmaster, sig) == 0)
        count++;
    return count;
}
