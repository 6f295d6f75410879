/* supervisor/notify.c - sd_notify for `verona serve` (supervisor/notify.h). */
#include "notify.h"

#include <stdio.h>
#include <string.h>
#include <systemd/sd-daemon.h>

#include "../proto/log.h"
#include "supervisor.h"

static void notify_on_watchdog(uv_timer_t *t)
{
    (void)t;
    sd_notify(0, "WATCHDOG=1");
}

void notify_start(struct notify *n, struct supervisor *sup)
{
    uint64_t usec = 0;

    memset(n, 0, sizeof(*n));
    uv_timer_init(sup->loop, &n->watchdog);
    /* The watchdog is fed by this loop: a stuck supervisor is restarted. */
    if (sd_watchdog_enabled(0, &usec) > 0 && usec > 0) {
        uint64_t every_ms = usec / 2000 > 0 ? usec / 2000 : 1;
        uv_timer_start(&n->watchdog, notify_on_watchdog, every_ms, every_ms);
        n->watchdog_on = 1;
        log_emit(LOG_INFO, "systemd_watchdog", json_pack("{s:I}", "every_ms", (json_int_t)every_ms));
    }
}

void notify_tick(struct notify *n, struct supervisor *sup)
{
    struct pool *pool = &sup->pool;
    const struct rollout *r = &pool->rollout;
    char status[160];
    int ready = 0;

    for (struct pool_worker *w = pool->workers; w != NULL; w = w->next)
        ready += pool_worker_phase(w) == PHASE_READY;
    if (rollout_active(&pool->rollout))
        snprintf(status, sizeof(status), "%d/%d workers ready; rollout %s %d/%d slots", ready, pool->target,
                 rollout_state_name(r->state), r->slots_done, r->slots_total);
    else
        snprintf(status, sizeof(status), "%d/%d workers ready", ready, pool->target);
    if (strcmp(status, n->status) != 0) {
        snprintf(n->status, sizeof(n->status), "%s", status);
        sd_notifyf(0, "STATUS=%s", status);
    }
    /* Serving: every worker ready, or some ready and the rest overdue. */
    if ((!n->ready_sent && ready > 0 &&
         (ready >= pool->target || uv_now(sup->loop) - sup->started_ms > (uint64_t)sup->cfg.ready_timeout_ms)) ||
        (n->reloading && !rollout_active(&pool->rollout))) {
        n->ready_sent = 1;
        n->reloading = 0;
        sd_notify(0, "READY=1");
    }
}

void notify_reloading(struct notify *n)
{
    n->reloading = 1;
    sd_notify(0, "RELOADING=1");
}

void notify_stopping(struct notify *n)
{
    n->reloading = 0;
    sd_notify(0, "STOPPING=1");
}

static void notify_on_close(uv_handle_t *h)
{
    (void)h;
}

void notify_stop(struct notify *n)
{
    uv_close((uv_handle_t *)&n->watchdog, notify_on_close);
}
