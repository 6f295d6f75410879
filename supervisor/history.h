/* supervisor/history.h - the last minutes of the pool, for the status
 * page's charts (supervisor/status_page.c): every HISTORY_INTERVAL_MS,
 * each slot's RSS and the pool's requests and 5xx answers a second. Kept
 * by the supervisor alone, in a fixed ring; nothing is written anywhere.
 */
#ifndef VERONA_SUPERVISOR_HISTORY_H
#define VERONA_SUPERVISOR_HISTORY_H

#include <stdint.h>
#include <uv.h>

#include "pool.h"

#define HISTORY_POINTS 150       /* five minutes */
#define HISTORY_INTERVAL_MS 2000

struct supervisor;

struct history {
    struct supervisor *sup;
    uv_timer_t timer;
    int count;                   /* points held, up to HISTORY_POINTS */
    int next;                    /* the ring's next write */
    uint64_t rss[POOL_SLOTS_MAX][HISTORY_POINTS]; /* bytes; 0: no worker then */
    double requests_per_s[HISTORY_POINTS];
    double errors_per_s[HISTORY_POINTS];
    uint64_t last_requests, last_errors, last_ms;
    int primed;                  /* last_* hold a first reading */
};

/* Starts sampling on the supervisor's loop. */
void history_start(struct history *h, struct supervisor *sup);

void history_stop(struct history *h);

/* The i-th point from the oldest (0 .. count-1): its ring index. */
int history_index(const struct history *h, int i);

#endif
