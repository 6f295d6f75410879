/* worker/worker.h - the one context of a worker process, passed to every
 * module of the worker (no other mutable globals).
 */
#ifndef VERONA_WORKER_WORKER_H
#define VERONA_WORKER_WORKER_H

#include <uv.h>

#include "../proto/config.h"
#include "auth.h"
#include "db.h"
#include "http.h"

struct worker {
    uv_loop_t *loop;
    struct config cfg;
    struct http_server http;
    struct db db;
    struct auth auth;
    uv_signal_t sig_term, sig_int, sig_quit;
    uv_timer_t sweep_timer;
    struct db_query schema_query;
    struct db_query sweep_query;
    char sweep_params[2][16];
    int schema_query_busy;
    int sweep_busy;
    int schema_ok;        /* the database has every migration this build needs */
    int stopping;
};

/* 1 when requests that need PostgreSQL can be served. */
int worker_db_ready(const struct worker *w);

#endif
