/* supervisor/supervisor.h - the one context of `verona serve`, passed to
 * every module of the supervisor (no other mutable globals).
 */
#ifndef VERONA_SUPERVISOR_SUPERVISOR_H
#define VERONA_SUPERVISOR_SUPERVISOR_H

#include <limits.h>
#include <time.h>
#include <uv.h>

#include "../proto/config.h"
#include "admin.h"
#include "history.h"
#include "metrics.h"
#include "notify.h"
#include "pool.h"
#include "upgrade.h"

enum supervisor_state {
    SUPERVISOR_RUNNING = 0, /* keeping the pool at its target size */
    SUPERVISOR_STOPPING,    /* graceful stop: workers drain, then we exit */
    SUPERVISOR_QUITTING,    /* immediate stop: workers are killed */
};

struct supervisor {
    uv_loop_t *loop;
    struct config cfg;
    char config_path[PATH_MAX]; /* "" = built-in defaults */
    int listen_fd;              /* the shared listening socket (fd 3 in workers) */
    struct pool pool;
    struct admin admin;
    struct metrics metrics;
    struct history history;     /* the status page's charts */
    struct notify notify;
    uv_signal_t signals[9];
    uv_timer_t tick;            /* health_interval_ms: pings, timeouts, memory */
    uv_timer_t stop_timer;      /* deadline of a graceful stop */
    enum supervisor_state state;
    uint64_t started_ms;
    time_t started_at;          /* wall clock, for status */
    unsigned upgrades;          /* times the supervisor was replaced in place (ctl upgrade) */
    time_t upgraded_at;         /* wall clock of the last upgrade (0: none) */
    char upgraded_from[CONTROL_BUILD_ID_MAX]; /* the build id before it */
    char self_path[PATH_MAX];   /* the `verona` binary an upgrade execs (as found at the first start) */
    struct upgrade upgrade;     /* ctl upgrade, SIGUSR2 (upgrade.c; takeover.c for the new image) */
    int takeover_client_fd;     /* the ctl that asked for the upgrade, answered once running, or -1 */
    int file_workers;           /* `workers` as the file last said (scale survives reloads) */
};

/* Re-reads the config and starts a rolling restart onto the worker
 * binary now on disk. Returns 0, or an exit code (1 refused, 2 bad
 * config) with a message in err; the running pool is then untouched. */
int supervisor_reload(struct supervisor *sup, char *err, size_t errsize);

/* Starts a graceful stop (TERM, INT, `ctl stop`) or an immediate one.
 * The caller closes the admin socket (admin_stop). */
void supervisor_stop(struct supervisor *sup, int immediate, const char *why);

/* The health tick (health_interval_ms; every 50 ms while stopping):
 * health checks, readiness for systemd, and the end of a stop. */
void supervisor_on_tick(uv_timer_t *t);


#endif
