/* supervisor/serve.c - `verona serve`: reads the config, binds the shared
 * listening socket once, runs the pool, the admin socket, the health tick
 * and the signals on one libuv loop. Signal handlers only wake the loop.
 */
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../proto/hash_gate.h"
#include "../proto/log.h"
#include "../proto/nofile.h"
#include "cli.h"
#include "privilege.h"
#include "supervisor.h"
#include "takeover.h"

static const int serve_signals[] = { SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGTTIN, SIGTTOU, SIGPIPE, SIGUSR2, SIGCHLD };

/* Binds `address` once for every worker; returns the socket or -1. */
static int serve_listen(const char *address, char *err, size_t errsize)
{
    struct sockaddr_storage ss;
    int fd, one = 1;

    if (config_address_parse(address, &ss) != 0) {
        snprintf(err, errsize, "listen: '%.64s' is not HOST:PORT", address);
        return -1;
    }
    fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errsize, "listen: socket(): %s", strerror(errno));
        return -1;
    }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&ss,
             ss.ss_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6)) != 0 ||
        listen(fd, CONFIG_LISTEN_BACKLOG) != 0) {
        snprintf(err, errsize, "cannot listen on %.64s: %s", address, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

static void serve_on_close(uv_handle_t *h)
{
    (void)h;
}

static void serve_on_signal(uv_signal_t *s, int signum)
{
    struct supervisor *sup = s->data;

    switch (signum) {
    case SIGTERM:
    case SIGINT:
        supervisor_stop(sup, 0, signum == SIGTERM ? "SIGTERM" : "SIGINT");
        admin_stop(&sup->admin);
        break;
    case SIGQUIT:
        supervisor_stop(sup, 1, "SIGQUIT");
        admin_stop(&sup->admin);
        break;
    case SIGTTIN:
    case SIGTTOU:
        if (rollout_active(&sup->pool.rollout) || upgrade_running(&sup->upgrade)) {
            log_emit(LOG_WARN, "scale_refused",
                     json_pack("{s:s}", "reason",
                               upgrade_running(&sup->upgrade) ? "upgrade in progress" : "rollout in progress"));
            break;
        }
        if (sup->state != SUPERVISOR_RUNNING)
            break;
        if ((signum == SIGTTIN && sup->pool.target >= POOL_SLOTS_MAX) || (signum == SIGTTOU && sup->pool.target <= 1)) {
            log_emit(LOG_WARN, "scale_refused",
                     json_pack("{s:s, s:i}", "reason", signum == SIGTTIN ? "already at the most workers" : "already at one worker",
                               "workers", sup->pool.target));
            break;
        }
        pool_scale(&sup->pool, sup->pool.target + (signum == SIGTTIN ? 1 : -1));
        break;
    case SIGUSR2: {
        char err[512];
        upgrade_start(&sup->upgrade, -1, NULL, NULL, err, sizeof(err)); /* a refusal is logged there */
        break;
    }
    case SIGCHLD:
        pool_worker_reap_adopted(&sup->pool); /* libuv reaps the workers it started itself */
        break;
    case SIGHUP: {
        char err[CONFIG_ERROR_MAX + 64];
        supervisor_reload(sup, err, sizeof(err)); /* a refusal is logged there */
        break;
    }
    default:
        break; /* SIGPIPE: a write error is handled where it happens */
    }
}

/* The running supervisor, however it started: signals, the tick, the
 * loop; then everything closed. */
static int serve_run(struct supervisor *sup)
{
    history_start(&sup->history, sup);
    for (size_t i = 0; i < sizeof(serve_signals) / sizeof(serve_signals[0]); i++) {
        uv_signal_init(sup->loop, &sup->signals[i]);
        sup->signals[i].data = sup;
        uv_signal_start(&sup->signals[i], serve_on_signal, serve_signals[i]);
    }
    upgrade_signals_unblock(); /* what arrived during an upgrade's exec is handled now */
    uv_timer_init(sup->loop, &sup->tick);
    uv_timer_init(sup->loop, &sup->stop_timer);
    sup->tick.data = sup->stop_timer.data = sup;
    uv_timer_start(&sup->tick, supervisor_on_tick, (uint64_t)sup->cfg.health_interval_ms,
                   (uint64_t)sup->cfg.health_interval_ms);
    notify_start(&sup->notify, sup);
    upgrade_init(&sup->upgrade, sup);
    if (sup->upgrades > 0)
        takeover_done(sup);
    else
        log_emit(LOG_INFO, "supervisor_started",
                 json_pack("{s:s, s:i, s:s, s:s, s:s}", "listen", sup->cfg.listen, "workers", sup->cfg.workers,
                           "worker_binary", sup->pool.build->path, "binary_sha256", sup->pool.build->sha256,
                           "admin_socket", sup->cfg.admin_socket));
    pool_worker_reap_adopted(&sup->pool); /* any that exited during the hand-over */
    pool_reconcile(&sup->pool);
    uv_run(sup->loop, UV_RUN_DEFAULT);

    /* Close what is left and let the loop finish the closes. */
    for (size_t i = 0; i < sizeof(serve_signals) / sizeof(serve_signals[0]); i++)
        uv_close((uv_handle_t *)&sup->signals[i], serve_on_close);
    uv_close((uv_handle_t *)&sup->tick, serve_on_close);
    admin_stop(&sup->admin); /* closed already by whatever stopped us */
    metrics_stop(&sup->metrics);
    upgrade_fini(&sup->upgrade);
    history_stop(&sup->history);
    notify_stop(&sup->notify);
    uv_close((uv_handle_t *)&sup->stop_timer, serve_on_close);
    pool_fini(&sup->pool);
    uv_run(sup->loop, UV_RUN_DEFAULT);
    close(sup->listen_fd);
    return CLI_OK;
}

static void serve_usage(FILE *out)
{
    fprintf(out, "usage: verona serve [-c FILE]\n"
                 "  Runs the supervisor and its workers in the foreground.\n"
                 "  Without -c: /etc/verona/verona.conf if it exists, else the defaults.\n");
}

int serve_main(int argc, char **argv)
{
    static struct supervisor supervisor;
    struct supervisor *sup = &supervisor;
    const char *config_path = NULL;
    char err[CONFIG_ERROR_MAX];
    struct privilege privilege;
    struct build *build;
    int opt;

    /* The two halves of ctl upgrade's hand-over (supervisor/upgrade.h). */
    if (argc == 3 && strcmp(argv[1], "--takeover-check") == 0)
        return takeover_check_main(argv[2]);
    if (argc == 3 && strcmp(argv[1], "--takeover") == 0) {
        if (takeover_load(sup, argv[2], err, sizeof(err)) != 0) {
            log_emit(LOG_ERROR, "supervisor_takeover_failed", json_pack("{s:s}", "error", err));
            return CLI_FAILED;
        }
        return serve_run(sup);
    }
    optind = 1;
    while ((opt = cli_getopt(argc, argv, "serve")) != -1) {
        switch (opt) {
        case 'c':
            config_path = optarg;
            break;
        case 'h':
            serve_usage(stdout);
            return CLI_OK;
        default:
            return CLI_USAGE;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "verona serve: unexpected argument '%s'\n", argv[optind]);
        return CLI_USAGE;
    }
    if (getenv("VERONA_LOG_LEVEL") != NULL && strcmp(getenv("VERONA_LOG_LEVEL"), "debug") == 0)
        log_set_level(LOG_DEBUG);
    if (cli_config_load(&sup->cfg, config_path) != CLI_OK)
        return CLI_USAGE;
    if (config_path != NULL)
        snprintf(sup->config_path, sizeof(sup->config_path), "%s", config_path);
    if (privilege_plan(&privilege, sup->cfg.user, err, sizeof(err)) != 0) {
        fprintf(stderr, "verona serve: %s\n", err);
        return CLI_USAGE;
    }

    sup->loop = uv_default_loop();
    sup->takeover_client_fd = -1;
    {
        /* What ctl upgrade execs: the binary at this path when it is asked. */
        ssize_t n = readlink("/proc/self/exe", sup->self_path, sizeof(sup->self_path) - 1);

        sup->self_path[n > 0 ? n : 0] = '\0';
    }
    {
        /* Its workers inherit it (each raises its own too); SPEC 10.8. */
        long want = (long)sup->cfg.max_connections + NOFILE_RESERVE, got = nofile_raise(want);

        if (got < want)
            log_emit(LOG_WARN, "nofile_capped",
                     json_pack("{s:I, s:I, s:s}", "wanted", (json_int_t)want, "limit", (json_int_t)got, "hint",
                               "raise the open-files hard limit (LimitNOFILE, ulimit -Hn)"));
    }
    /* Root binds the sockets, then (`user`) becomes that user for good:
     * the builds, the hash gate and every worker belong to it. */
    sup->listen_fd = serve_listen(sup->cfg.listen, err, sizeof(err));
    if (sup->listen_fd < 0) {
        fprintf(stderr, "verona serve: %s\n", err);
        return CLI_FAILED;
    }
    if (admin_start(&sup->admin, sup, sup->cfg.admin_socket, err, sizeof(err)) != 0) {
        fprintf(stderr, "verona serve: %s\n", err);
        return CLI_FAILED;
    }
    if (metrics_start(&sup->metrics, sup, sup->cfg.metrics_listen, err, sizeof(err)) != 0) {
        fprintf(stderr, "verona serve: %s\n", err);
        admin_stop(&sup->admin);
        return CLI_FAILED;
    }
    /* The admin socket stays 0600, now the user's: it and root may ask. */
    if (privilege.drop && chown(sup->cfg.admin_socket, privilege.uid, privilege.gid) != 0) {
        fprintf(stderr, "verona serve: admin_socket %s: chown to %s: %s\n", sup->cfg.admin_socket, privilege.name,
                strerror(errno));
        admin_stop(&sup->admin);
        return CLI_FAILED;
    }
    if (privilege_drop(&privilege, err, sizeof(err)) != 0) {
        fprintf(stderr, "verona serve: %s\n", err);
        admin_stop(&sup->admin);
        return CLI_FAILED;
    }
    sup->file_workers = sup->cfg.workers;
    build = build_open(&sup->cfg, err, sizeof(err));
    if (build == NULL || pool_init(&sup->pool, sup, build, err, sizeof(err)) != 0) {
        fprintf(stderr, "verona serve: %s\n", err);
        admin_stop(&sup->admin);
        return CLI_USAGE;
    }
    sup->started_ms = uv_now(sup->loop);
    sup->started_at = time(NULL);
    return serve_run(sup);
}
