/* worker/main.c - the verona-worker program: its arguments, then its
 * life (worker/worker.c) on one event loop. On its own (`verona-worker -c
 * FILE`) it binds `listen` itself; under the supervisor
 * (VERONA_CONTROL_FD) it gets its settings over the control socket
 * (worker/control.c) and serves the inherited socket.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../proto/log.h"
#include "control.h"
#include "worker.h"

static void worker_usage(FILE *out)
{
    fprintf(out, "usage: verona-worker -c FILE\n"
                 "  Serves the Verona login API on the config's `listen` address.\n"
                 "  Under `verona serve` the supervisor starts workers itself.\n");
}

/* The control socket's descriptor from VERONA_CONTROL_FD, or -1 when it
 * is not a number above stderr naming an open socket. */
static int worker_control_fd(const char *text)
{
    struct stat st;
    char *end;
    long fd;

    errno = 0;
    fd = strtol(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || fd <= 2 || fd > INT_MAX)
        return -1;
    if (fstat((int)fd, &st) != 0 || !S_ISSOCK(st.st_mode))
        return -1;
    return (int)fd;
}

int main(int argc, char **argv)
{
    static struct worker worker;
    struct worker *w = &worker;
    const char *config_path = NULL, *control_fd = getenv("VERONA_CONTROL_FD");
    char err[CONFIG_ERROR_MAX];
    int opt, rc;

    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0) {
            worker_usage(stdout);
            return 0;
        }
    while ((opt = getopt(argc, argv, "c:h")) != -1) {
        switch (opt) {
        case 'c':
            config_path = optarg;
            break;
        case 'h':
            worker_usage(stdout);
            return 0;
        default:
            worker_usage(stderr);
            return 2;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "verona-worker: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    if (getenv("VERONA_LOG_LEVEL") != NULL && strcmp(getenv("VERONA_LOG_LEVEL"), "debug") == 0)
        log_set_level(LOG_DEBUG);
    signal(SIGPIPE, SIG_IGN);
    /* Spawned from /proc/self/fd/N (supervisor/build.c), the kernel names
     * the process "N": give ps, top and pgrep their usual name back. */
    (void)prctl(PR_SET_NAME, "verona-worker", 0, 0, 0);
    if (sodium_init() < 0) {
        fprintf(stderr, "verona-worker: libsodium failed to initialise\n");
        return 1;
    }
    auth_json_secure_alloc();
    /* Several workers accept on one socket: take one connection per loop
     * turn, so a burst of connections spreads over the workers instead of
     * piling onto whichever woke first (libuv's own switch for this). */
    setenv("UV_TCP_SINGLE_ACCEPT", "1", 0);
    worker_init(w);

    if (control_fd != NULL) {
        /* Supervised: settings come over the control socket, never a file. */
        if (config_path != NULL) {
            fprintf(stderr, "verona-worker: -c is for running alone; under the supervisor settings come from it\n");
            return 2;
        }
        int fd = worker_control_fd(control_fd);

        if (fd < 0) {
            fprintf(stderr, "verona-worker: VERONA_CONTROL_FD=%s is not an open socket descriptor above 2 "
                            "(`verona serve` sets it; to run a worker alone, unset it and use -c FILE)\n",
                    control_fd);
            return 2;
        }
        rc = worker_control_start(w, fd);
        if (rc != 0) {
            fprintf(stderr, "verona-worker: control socket %s: %s\n", control_fd, uv_strerror(rc));
            return 1;
        }
    } else {
        if (config_path == NULL) {
            worker_usage(stderr);
            return 2;
        }
        config_defaults(&w->cfg);
        if (config_load_file(&w->cfg, config_path, err, sizeof(err)) != 0) {
            fprintf(stderr, "verona-worker: %s\n", err);
            return 2;
        }
        if (config_finish(&w->cfg, err, sizeof(err)) != 0) {
            fprintf(stderr, "verona-worker: %s: %s\n", config_path, err);
            return 2;
        }
        rc = worker_setup(w, -1);
        if (rc != 0)
            return rc;
        rc = http_server_start(&w->http);
        if (rc != 0) {
            fprintf(stderr, "verona-worker: cannot accept on %s: %s\n", w->cfg.listen, uv_strerror(rc));
            return 1;
        }
    }
    uv_run(w->loop, UV_RUN_DEFAULT);
    worker_control_orphan_gate(w, 2000);
    if (w->state != WORKER_UNCONFIGURED)
        db_free(&w->db);
    session_cache_fini(&w->sessions);
    auth_fini(&w->auth);
    free(w->control_in);
    uv_loop_close(w->loop);
    log_emit(LOG_INFO, "worker_exit", NULL);
    return 0;
}
