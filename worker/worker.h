/* worker/worker.h - the one context of a worker process, passed to every
 * module of the worker (no other mutable globals).
 */
#ifndef VERONA_WORKER_WORKER_H
#define VERONA_WORKER_WORKER_H

#include <uv.h>

#include "../proto/config.h"
#include "../proto/control.h"
#include "auth.h"
#include "db.h"
#include "http.h"
#include "session_cache.h"
#include "session_touch.h"

/* A worker's life (worker/worker.c). */
enum worker_state {
    WORKER_UNCONFIGURED = 0, /* supervised: waiting for its settings */
    WORKER_STARTING,         /* set up; no PostgreSQL connection on a usable schema yet */
    WORKER_READY,            /* PostgreSQL reached once: ready (the supervisor is told) */
    WORKER_DRAINING,         /* stopping: no new connections, finishing the open ones */
    WORKER_DONE,             /* drained: the last handles are closing */
};

/* The control socket to the supervisor (worker/control.c). */
enum worker_control_state {
    WORKER_CONTROL_NONE = 0, /* running alone (-c FILE) */
    WORKER_CONTROL_OPEN,     /* supervised */
    WORKER_CONTROL_CLOSED,   /* goodbye said */
    WORKER_CONTROL_LOST,     /* the supervisor went away (EOF) */
};

struct worker {
    uv_loop_t *loop;
    enum worker_state state;  /* changed only by worker_set_state() */
    struct config cfg;
    struct http_server http;
    struct db db;
    struct auth auth;
    uv_signal_t sig_term, sig_int, sig_quit;
    uv_timer_t sweep_timer;
    struct db_query sweep_query;
    char sweep_retention_days[16], sweep_window_s[16]; /* its parameters */
    int sweep_busy;
    uv_timer_t dummy_timer;       /* the dummy hashes' settings (auth_set_dummies) */
    struct db_query dummy_query;
    int dummy_busy;
    uint64_t dummy_loaded_ms;     /* uv_now of the last load; 0: never */
    unsigned dummy_signature;     /* of the settings loaded: a change is logged */

    /* Supervised mode (VERONA_CONTROL_FD); see worker/control.c. */
    enum worker_control_state control_state;
    pid_t supervisor_pid; /* the parent at start: another one means it died */
    uv_pipe_t control;
    char *control_in;     /* owned: bytes received, not yet decoded */
    size_t control_len;
    /* The control side's hooks (NULL alone): the worker became ready; it
     * ends (`reason`), so say goodbye with the last counters. */
    void (*on_ready)(struct worker *w);
    void (*on_goodbye)(struct worker *w, const char *reason);
    uv_timer_t drain_timer;
    struct control_counters counters;
    struct session_cache sessions;
    struct session_touch touch;   /* last-use writes, batched */
};

/* Sets up the loop, the drain timer and the signals (state unconfigured). */
void worker_init(struct worker *w);

/* Applies the settings: hashing, database pool, HTTP server (on the
 * inherited `listen_fd`, or binding `listen` when -1), timers, signals.
 * Returns 0, or an exit code (1 run time, 2 settings) after logging. */
int worker_setup(struct worker *w, int listen_fd);

/* Starts a graceful stop: no new connections, finish, exit. */
void worker_stop(struct worker *w, const char *why);

/* The build id reported in hello (and logs). */
extern const char *const worker_build_id;

/* The state's name ("starting", ...). */
const char *worker_state_name(enum worker_state state);

#endif
