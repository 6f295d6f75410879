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

struct worker {
    uv_loop_t *loop;
    struct config cfg;
    struct http_server http;
    struct db db;
    struct auth auth;
    uv_signal_t sig_term, sig_int, sig_quit;
    uv_timer_t sweep_timer;
    struct db_query sweep_query;
    char sweep_params[2][16];
    int sweep_busy;
    uv_timer_t dummy_timer;       /* the dummy hashes' settings (auth_set_dummies) */
    struct db_query dummy_query;
    int dummy_busy;
    uint64_t dummy_loaded_ms;     /* uv_now of the last load; 0: never */
    unsigned dummy_signature;     /* of the settings loaded: a change is logged */
    int ready_logged;     /* "ready": the first connection came up (on a usable schema) */
    int stopping;
    int configured;       /* settings applied, modules initialised */

    /* Supervised mode (VERONA_CONTROL_FD); see worker/control.c. */
    int supervised;
    pid_t supervisor_pid; /* the parent at start: another one means it died */
    uv_pipe_t control;
    char *control_in;     /* owned: bytes received, not yet decoded */
    size_t control_len;
    int control_open;
    int supervisor_gone;  /* EOF on the control socket */
    int ready_sent;
    uv_timer_t drain_timer;
    struct control_counters counters;
    struct session_cache sessions;
    struct session_touch touch;   /* last-use writes, batched */
};

/* Applies the settings: hashing, database pool, HTTP server (on the
 * inherited `listen_fd`, or binding `listen` when -1), timers, signals.
 * Returns 0, or an exit code (1 run time, 2 settings) after logging. */
int worker_setup(struct worker *w, int listen_fd);

/* Starts a graceful stop: no new connections, finish, exit. */
void worker_stop(struct worker *w, const char *why);

/* The build id reported in hello (and logs). */
extern const char *const worker_build_id;

/* 1 when requests that need PostgreSQL can be served. */
int worker_db_ready(const struct worker *w);

#endif
