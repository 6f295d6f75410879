/* supervisor/metrics.h - GET /metrics on metrics_listen, in the
 * Prometheus text format, from what the workers report in their pongs
 * (plus the counters of workers that are gone, so totals never go back).
 */
#ifndef VERONA_SUPERVISOR_METRICS_H
#define VERONA_SUPERVISOR_METRICS_H

#include <stddef.h>
#include <uv.h>

struct supervisor;

struct metrics {
    struct supervisor *sup;
    uv_tcp_t server;
    int open;
};

/* Listens on `address`. 0, or -1 with a message. */
int metrics_start(struct metrics *m, struct supervisor *sup, const char *address, char *err, size_t errsize);

/* Listens on `fd`, bound by the supervisor's previous image (ctl upgrade). */
int metrics_adopt(struct metrics *m, struct supervisor *sup, int fd, char *err, size_t errsize);

void metrics_stop(struct metrics *m);

/* The exposition text (malloc'd). */
char *metrics_render(struct supervisor *sup);

#endif
