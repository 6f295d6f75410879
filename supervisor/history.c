/* supervisor/history.c - see history.h. */
#include "history.h"

#include <string.h>

#include "../proto/control.h"
#include "supervisor.h"

/* Requests answered and 5xx among them, all workers, gone ones included
 * (the same totals as /metrics, so a recycle is no dip). */
static void history_totals(const struct pool *pool, uint64_t *requests, uint64_t *errors)
{
    struct control_counters total = pool->gone;

    for (struct pool_worker *w = pool->workers; w != NULL; w = w->next)
        if (pool_worker_phase(w) != PHASE_GONE)
            control_counters_add(&total, &w->counters);
    *requests = *errors = 0;
    for (int r = 0; r < ROUTE_COUNT; r++)
        for (int s = 0; s < CONTROL_STATUS_COUNT; s++) {
            *requests += total.requests[r][s];
            if (s < CONTROL_STATUS_COUNT - 1 && control_statuses[s] >= 500)
                *errors += total.requests[r][s];
        }
}

static void history_sample(uv_timer_t *t)
{
    struct history *h = t->data;
    struct pool *pool = &h->sup->pool;
    uint64_t now = uv_now(t->loop), requests, errors;
    int at = h->next;

    history_totals(pool, &requests, &errors);
    for (int slot = 0; slot < POOL_SLOTS_MAX; slot++) {
        const struct pool_worker *w = slot < pool->target ? pool_slot_worker(pool, slot) : NULL;

        h->rss[slot][at] = w != NULL ? w->rss_bytes : 0;
    }
    if (h->primed && now > h->last_ms) {
        double seconds = (double)(now - h->last_ms) / 1000.0;

        h->requests_per_s[at] = (double)(requests - h->last_requests) / seconds;
        h->errors_per_s[at] = (double)(errors - h->last_errors) / seconds;
    } else {
        h->requests_per_s[at] = h->errors_per_s[at] = 0;
    }
    h->last_requests = requests;
    h->last_errors = errors;
    h->last_ms = now;
    h->primed = 1;
    h->next = (h->next + 1) % HISTORY_POINTS;
    if (h->count < HISTORY_POINTS)
        h->count++;
}

void history_start(struct history *h, struct supervisor *sup)
{
    memset(h, 0, sizeof(*h));
    h->sup = sup;
    uv_timer_init(sup->loop, &h->timer);
    h->timer.data = h;
    uv_timer_start(&h->timer, history_sample, 0, HISTORY_INTERVAL_MS);
}

void history_stop(struct history *h)
{
    uv_timer_stop(&h->timer);
    uv_close((uv_handle_t *)&h->timer, NULL);
}

int history_index(const struct history *h, int i)
{
    return (h->next - h->count + i + 2 * HISTORY_POINTS) % HISTORY_POINTS;
}
