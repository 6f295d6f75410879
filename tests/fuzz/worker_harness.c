/* tests/fuzz/worker_harness.c - see worker_harness.h. */
#include "worker_harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../../proto/log.h"
#include "../../worker/auth.h"
#include "../../worker/worker.h"

#define HARNESS_CLOSE_DEADLINE_MS 5000

static struct worker harness_w;
static struct sockaddr_in harness_addr;

static void harness_die(const char *what)
{
    fprintf(stderr, "worker harness: %s (%s)\n", what, strerror(errno));
    abort();
}

void harness_worker_once(void)
{
    struct worker *w = &harness_w;
    socklen_t len = sizeof(harness_addr);
    char err[CONFIG_ERROR_MAX];
    int fd;

    if (w->state != WORKER_UNCONFIGURED)
        return;
    log_set_level((enum log_level)(LOG_ERROR + 1)); /* quiet: millions of requests */
    /* Never a real database: make check exports its own URL, which would
     * override the one below (config_finish), and libpq reads PG*. */
    unsetenv("VERONA_DATABASE_URL");
    unsetenv("DATABASE_URL");
    unsetenv("PGHOST");
    unsetenv("PGHOSTADDR");
    unsetenv("PGPORT");
    unsetenv("PGSERVICE");
    unsetenv("PGPASSFILE");
    if (sodium_init() < 0)
        harness_die("sodium_init");
    auth_json_secure_alloc();
    w->loop = uv_default_loop();
    uv_timer_init(w->loop, &w->drain_timer);
    config_defaults(&w->cfg);
    if (config_load_string(&w->cfg,
                           "database_url = postgresql://fuzz@127.0.0.1:1/fuzz\n"
                           "db_failover_wait_ms = 0\ndb_pool_size = 1\n"
                           "argon2_memlimit_kib = 8\nargon2_opslimit = 1\nhash_threads = 1\n"
                           "trusted_proxies = 127.0.0.1\n",
                           "fuzz", err, sizeof(err)) != 0 ||
        config_finish(&w->cfg, err, sizeof(err)) != 0) {
        fprintf(stderr, "worker harness: settings: %s\n", err);
        abort();
    }
    if (strcmp(w->cfg.database_url, "postgresql://fuzz@127.0.0.1:1/fuzz") != 0) {
        fprintf(stderr, "worker harness: the database URL was overridden\n");
        abort();
    }
    /* The listening socket, as the supervisor would hand it over. */
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    memset(&harness_addr, 0, sizeof(harness_addr));
    harness_addr.sin_family = AF_INET;
    harness_addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || bind(fd, (struct sockaddr *)&harness_addr, sizeof(harness_addr)) != 0 || listen(fd, 64) != 0 ||
        getsockname(fd, (struct sockaddr *)&harness_addr, &len) != 0)
        harness_die("listen on 127.0.0.1");
    if (worker_setup(w, fd) != 0)
        harness_die("worker_setup");
    if (http_server_start(&w->http) != 0)
        harness_die("http_server_start");
}

/* One pass of the worker's loop, waiting at most `ms` for it or `fd`. */
static void harness_turn(int fd, short events, int ms)
{
    struct pollfd p[2] = { { .fd = uv_backend_fd(harness_w.loop), .events = POLLIN },
                           { .fd = fd, .events = events } };
    int timeout = uv_backend_timeout(harness_w.loop);

    if (timeout < 0 || timeout > ms)
        timeout = ms;
    (void)poll(p, fd >= 0 ? 2 : 1, timeout);
    uv_run(harness_w.loop, UV_RUN_NOWAIT);
}

static void harness_check_answers(const char *got, size_t len)
{
    static const char bad[] = "HTTP/1.1 500 ";

    for (size_t i = 0; i + sizeof(bad) - 1 <= len; i++)
        if (memcmp(got + i, bad, sizeof(bad) - 1) == 0) {
            fprintf(stderr, "worker harness: a 500 answer:\n%.*s\n", (int)(len - i > 600 ? 600 : len - i), got + i);
            abort();
        }
}

size_t harness_worker_exchange(const void *data, size_t size, char *out, size_t outsize)
{
    static char got[1 << 20];
    size_t sent = 0, total = 0, kept = 0;
    uint64_t deadline = 0;
    int fd, done = 0;

    harness_worker_once();
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&harness_addr, sizeof(harness_addr)) != 0)
        harness_die("connect");
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    if (size == 0) {
        shutdown(fd, SHUT_WR);
        deadline = uv_now(harness_w.loop) + HARNESS_CLOSE_DEADLINE_MS;
    }
    while (!done) {
        harness_turn(fd, POLLIN | (sent < size ? POLLOUT : 0), 10);
        if (sent < size) {
            ssize_t n = send(fd, (const char *)data + sent, size - sent, MSG_NOSIGNAL);

            if (n > 0)
                sent += (size_t)n;
            else if (n < 0 && errno != EAGAIN && errno != EINTR)
                sent = size; /* the worker closed first (a refused request) */
            if (sent == size) {
                shutdown(fd, SHUT_WR);
                deadline = uv_now(harness_w.loop) + HARNESS_CLOSE_DEADLINE_MS;
            }
        }
        for (;;) {
            ssize_t n = recv(fd, got + kept, sizeof(got) - kept, 0);

            if (n > 0) {
                total += (size_t)n;
                kept += (size_t)n;
                if (kept == sizeof(got)) { /* keep the tail: enough to find a status line */
                    memmove(got, got + sizeof(got) / 2, sizeof(got) / 2);
                    kept = sizeof(got) / 2;
                }
                continue;
            }
            if (n == 0 || (errno != EAGAIN && errno != EINTR))
                done = 1; /* closed (or reset) by the worker */
            break;
        }
        uv_update_time(harness_w.loop);
        if (!done && deadline != 0 && uv_now(harness_w.loop) > deadline) {
            fprintf(stderr, "worker harness: the connection is still open %d ms after the client's end\n",
                    HARNESS_CLOSE_DEADLINE_MS);
            abort();
        }
    }
    close(fd);
    /* Until the worker has let go of the connection (its memory too). */
    for (int i = 0; i < 500 && harness_w.http.stats.connections_open > 0; i++)
        harness_turn(-1, 0, 10);
    if (harness_w.http.stats.connections_open > 0) {
        fprintf(stderr, "worker harness: the worker still holds the connection\n");
        abort();
    }
    harness_check_answers(got, kept);
    if (out != NULL && outsize > 0) {
        size_t n = kept < outsize - 1 ? kept : outsize - 1;

        memcpy(out, got, n);
        out[n] = '\0';
    }
    return total;
}
