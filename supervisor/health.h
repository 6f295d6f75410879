/* supervisor/health.h - the health check of one worker on the tick: its
 * pongs, its ready and drain deadlines and its memory reading become one
 * event. It acts on nothing: the pool kills, accepts or replaces
 * (supervisor/pool.c, pool_tick).
 */
#ifndef VERONA_SUPERVISOR_HEALTH_H
#define VERONA_SUPERVISOR_HEALTH_H

#include <stdint.h>

#include "../proto/config.h"
#include "pool.h"

enum health_event {
    HEALTH_FINE = 0,
    HEALTH_OVER_HARD_LIMIT,    /* RSS past memory_hard_limit_mb: kill (memory) */
    HEALTH_NO_PONG,            /* no pong within health_timeout_ms: kill (hang) */
    HEALTH_DRAIN_OVERDUE,      /* still draining after drain_timeout_ms: kill */
    HEALTH_NOT_READY,          /* not ready within ready_timeout_ms: kill (hang) */
    HEALTH_DATABASE_DOWN,      /* not ready in time, but PostgreSQL is down for every
                                * worker: not its fault; it serves (503s) as they do */
};

struct health_input {
    const struct config *cfg;  /* the worker's own build's settings */
    enum pool_worker_state state;
    int hello;                 /* it said hello and got its settings */
    uint64_t now_ms, rss_bytes, last_pong_ms, drain_ms, ready_clock_ms;
    int others_db_up;          /* some serving worker reaches PostgreSQL */
    int rollout_waits;         /* a rollout's new worker: it waits for the database, never serves early */
};

struct health_report {
    enum health_event event;
    int over_soft_limit;       /* RSS past memory_soft_limit_mb: recycle (or, on probation, roll back) */
    int restart_ready_clock;   /* PostgreSQL is down for all: a rollout's new worker's ready clock starts again */
    char detail[64];           /* the event in words, for the log */
};

/* Judges one worker that is neither exited nor killed. */
void health_check(const struct health_input *in, struct health_report *out);

/* The event's name ("fine", "over_hard_limit", ...). */
const char *health_event_name(enum health_event event);

#endif
