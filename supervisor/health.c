/* supervisor/health.c - one worker's health on the tick
 * (supervisor/health.h): deadlines and memory limits in, one event out.
 */
#include "health.h"

#include <stdio.h>
#include <string.h>

static const char *const health_event_names[] = {
    "fine", "over_hard_limit", "no_pong", "drain_overdue", "not_ready", "database_down",
};

const char *health_event_name(enum health_event event)
{
    return (unsigned)event < sizeof(health_event_names) / sizeof(health_event_names[0]) ? health_event_names[event]
                                                                                          : "?";
}

void health_check(const struct health_input *in, struct health_report *out)
{
    const struct config *cfg = in->cfg;
    uint64_t soft = (uint64_t)cfg->memory_soft_limit_mb << 20, hard = (uint64_t)cfg->memory_hard_limit_mb << 20;
    uint64_t ready_clock = in->ready_clock_ms;

    memset(out, 0, sizeof(*out));
    out->over_soft_limit = in->rss_bytes > soft;
    if (in->rss_bytes > hard) {
        out->event = HEALTH_OVER_HARD_LIMIT;
        snprintf(out->detail, sizeof(out->detail), "rss %llu MiB over %d MiB",
                 (unsigned long long)(in->rss_bytes >> 20), cfg->memory_hard_limit_mb);
        return;
    }
    if (in->now_ms - in->last_pong_ms > (uint64_t)cfg->health_timeout_ms) {
        out->event = HEALTH_NO_PONG;
        snprintf(out->detail, sizeof(out->detail), "no pong within health_timeout_ms");
        return;
    }
    if (in->state == WORKER_DRAINING && in->now_ms - in->drain_ms > (uint64_t)cfg->drain_timeout_ms + 1000) {
        out->event = HEALTH_DRAIN_OVERDUE;
        snprintf(out->detail, sizeof(out->detail), "still draining after drain_timeout_ms");
        return;
    }
    if (in->state != WORKER_SPAWNED && in->state != WORKER_CONFIGURED)
        return;
    /* A rollout's new worker cannot be expected to reach PostgreSQL while
     * no serving worker does: its ready clock starts again when the
     * database is back, so the rollout waits instead of rolling back. */
    if (!in->others_db_up && in->hello && in->rollout_waits) {
        out->restart_ready_clock = 1;
        ready_clock = in->now_ms;
    }
    if (in->now_ms - ready_clock <= (uint64_t)cfg->ready_timeout_ms)
        return;
    if (in->others_db_up || !in->hello) {
        out->event = HEALTH_NOT_READY;
        snprintf(out->detail, sizeof(out->detail), "not ready within ready_timeout_ms");
        return;
    }
    out->event = HEALTH_DATABASE_DOWN;
    snprintf(out->detail, sizeof(out->detail), "PostgreSQL down for every worker");
}
