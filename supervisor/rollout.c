/* supervisor/rollout.c - the rolling restart state machine
 * (supervisor/rollout.h). Every change of state goes through
 * rollout_set_state(), which logs it.
 */
#include "rollout.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../proto/log.h"
#include "pool.h"
#include "supervisor.h"

const char *const rollout_state_names[] = { "none", "rolling", "rolling_back", "rolled_back", "done" };

int rollout_active(const struct pool *pool)
{
    return pool->rollout.state == ROLLOUT_ROLLING || pool->rollout.state == ROLLOUT_ROLLING_BACK;
}

static void rollout_set_state(struct pool *pool, enum rollout_state next)
{
    struct rollout *r = &pool->rollout;

    log_emit(next == ROLLOUT_ROLLING_BACK || next == ROLLOUT_ROLLED_BACK ? LOG_WARN : LOG_INFO, "rollout_state",
             json_pack("{s:s, s:s, s:s, s:s, s:i, s:i, s:s}", "from_state", rollout_state_names[r->state], "to_state",
                       rollout_state_names[next], "from", r->from_sha, "to", r->to_sha, "slots_done", r->slots_done,
                       "slots_total", r->slots_total, "reason", r->reason));
    r->state = next;
}

/* Ends the rollout: drops its build references and answers the waiters. */
static void rollout_finish(struct pool *pool, enum rollout_state final)
{
    struct rollout *r = &pool->rollout;
    struct rollout_waiter *waiter = r->waiters;

    rollout_set_state(pool, final);
    if (final == ROLLOUT_DONE) {
        r->count_done++;
    } else {
        r->count_rolled_back++;
        snprintf(r->rejected_sha, sizeof(r->rejected_sha), "%s", r->to_sha);
        free(r->rejected_settings);
        r->rejected_settings = strcmp(r->to_sha, r->from_sha) == 0 ? config_render(&r->to->cfg) : NULL;
        snprintf(r->rejected_reason, sizeof(r->rejected_reason), "%s", r->reason);
    }
    build_unref(r->from);
    build_unref(r->to);
    r->from = r->to = NULL;
    r->waiters = NULL;
    while (waiter != NULL) {
        struct rollout_waiter *next = waiter->next;
        waiter->cb(waiter->arg, final == ROLLOUT_DONE, r->reason);
        waiter = next;
    }
}

int rollout_start(struct pool *pool, struct build *to, char *err, size_t errsize)
{
    struct rollout *r = &pool->rollout;

    if (rollout_active(pool)) {
        snprintf(err, errsize, "rollout in progress");
        build_unref(to);
        return -1;
    }
    if (strcmp(to->sha256, r->rejected_sha) == 0) {
        char *settings = r->rejected_settings != NULL ? config_render(&to->cfg) : NULL;
        int same = r->rejected_settings == NULL || settings == NULL || strcmp(settings, r->rejected_settings) == 0;

        free(settings);
        if (same) {
            if (r->rejected_settings == NULL)
                snprintf(err, errsize, "build %.12s was rolled back (%.100s); not tried again until the file changes",
                         to->sha256, r->rejected_reason);
            else
                snprintf(err, errsize, "these settings were rolled back (%.100s); not tried again until they change",
                         r->rejected_reason);
            build_unref(to);
            return -1;
        }
    }
    r->from = pool->good;
    build_ref(r->from);
    r->to = to;
    snprintf(r->from_sha, sizeof(r->from_sha), "%s", r->from->sha256);
    snprintf(r->to_sha, sizeof(r->to_sha), "%s", to->sha256);
    r->slots_total = pool->target;
    r->slots_done = 0;
    for (int slot = 0; slot < POOL_SLOTS_MAX; slot++)
        pool->slots[slot].rollout_ready_ms = 0;
    r->canary_ready_ms = 0;
    r->reason[0] = '\0';
    r->started_ms = pool_now_ms(pool);
    rollout_set_state(pool, ROLLOUT_ROLLING);
    rollout_step(pool);
    return 0;
}

void rollout_wait(struct pool *pool, struct rollout_waiter *waiter)
{
    struct rollout *r = &pool->rollout;

    if (!rollout_active(pool)) {
        waiter->cb(waiter->arg, r->state != ROLLOUT_ROLLED_BACK, r->reason);
        return;
    }
    waiter->next = r->waiters;
    r->waiters = waiter;
}

void rollout_cancel_waiters(struct pool *pool, const char *reason)
{
    struct rollout_waiter *waiter = pool->rollout.waiters;

    pool->rollout.waiters = NULL;
    while (waiter != NULL) {
        struct rollout_waiter *next = waiter->next;
        waiter->cb(waiter->arg, 0, reason);
        waiter = next;
    }
}

void rollout_wait_cancel(struct pool *pool, struct rollout_waiter *waiter)
{
    for (struct rollout_waiter **p = &pool->rollout.waiters; *p != NULL; p = &(*p)->next)
        if (*p == waiter) {
            *p = waiter->next;
            return;
        }
}

int rollout_on_probation(const struct pool *pool, const struct pool_worker *w)
{
    const struct rollout *r = &pool->rollout;

    if (r->state != ROLLOUT_ROLLING || w->build != r->to)
        return 0;
    return w->ready_ms == 0 || pool_now_ms(pool) - w->ready_ms < (uint64_t)r->to->cfg.probation_ms;
}

/* Halts the rollout and rolls every slot back to the last good build. */
static void rollout_halt(struct pool *pool, const char *reason)
{
    struct rollout *r = &pool->rollout;

    if (r->state != ROLLOUT_ROLLING)
        return;
    snprintf(r->reason, sizeof(r->reason), "%s", reason);
    rollout_set_state(pool, ROLLOUT_ROLLING_BACK);
    /* Empty slots fill with the good build from now on; the settings of
     * the supervisor stay the old ones. */
    build_unref(pool->build);
    pool->build = pool->good;
    build_ref(pool->build);
    for (struct pool_worker *w = pool->workers; w != NULL; w = w->next) {
        if (w->build != r->to || w->state == WORKER_EXITED || w->state == WORKER_DRAINING)
            continue;
        if (w->state == WORKER_STARTING && !w->accepting)
            pool_worker_kill(w, REASON_RELOAD, "rollback: new build not serving yet");
    }
    rollout_step(pool);
}

void rollout_on_ready(struct pool *pool, struct pool_worker *w)
{
    struct rollout *r = &pool->rollout;

    if (r->state != ROLLOUT_ROLLING || w->build != r->to || pool->slots[w->slot].rollout_ready_ms != 0)
        return; /* a slot is done once: a later replacement of the new build is not a step */
    pool->slots[w->slot].rollout_ready_ms = pool_now_ms(pool);
    r->slots_done++;
    if (r->canary_ready_ms == 0)
        r->canary_ready_ms = pool_now_ms(pool);
    log_emit(LOG_INFO, "rollout_slot_done",
             json_pack("{s:i, s:i, s:i, s:i}", "slot", w->slot, "worker_pid", w->pid, "slots_done", r->slots_done,
                       "slots_total", r->slots_total));
}

void rollout_on_exit(struct pool *pool, struct pool_worker *w, int planned, const char *detail)
{
    char reason[256];

    if (planned || pool->rollout.state != ROLLOUT_ROLLING || w->build != pool->rollout.to)
        return;
    snprintf(reason, sizeof(reason), "new worker %d in slot %d %s", w->pid, w->slot, detail);
    rollout_halt(pool, reason);
}

void rollout_on_memory(struct pool *pool, struct pool_worker *w)
{
    char reason[160];

    snprintf(reason, sizeof(reason), "new worker %d in slot %d reached RSS %llu MiB on probation, past memory_soft_limit_mb %d",
             w->pid, w->slot, (unsigned long long)(w->rss_bytes >> 20), w->build->cfg.memory_soft_limit_mb);
    rollout_halt(pool, reason);
    /* Its replacement by the good build is started by the step below. */
    rollout_step(pool);
}

/* Is a surge (a replacement that is not ready yet) running? */
static int rollout_surge_pending(const struct pool *pool)
{
    for (const struct pool_worker *w = pool->workers; w != NULL; w = w->next)
        if (w->state == WORKER_STARTING && w->replaces != NULL)
            return 1;
    return 0;
}

static void rollout_step_rolling(struct pool *pool)
{
    struct rollout *r = &pool->rollout;
    uint64_t now = pool_now_ms(pool), probation = (uint64_t)r->to->cfg.probation_ms;

    if (rollout_surge_pending(pool))
        return;
    /* The canary must serve its probation before the next slot. */
    if (r->slots_done == 1 && r->slots_total > 1 && now - r->canary_ready_ms < probation)
        return;
    if (r->canary_ready_ms == 0 && r->slots_done == 0) {
        for (const struct pool_worker *w = pool->workers; w != NULL; w = w->next)
            if (w->build == r->to && w->state != WORKER_EXITED)
                return; /* the canary is on its way */
    }
    for (int slot = 0; slot < pool->target; slot++) {
        struct pool_worker *w = pool_slot_worker(pool, slot);

        if (w != NULL && w->build == r->to)
            continue;
        /* The lowest slot not on the new build is the next one. */
        if (w == NULL) {
            if (!pool->slots[slot].in_backoff)
                pool_spawn(pool, slot, NULL, r->to);
            return;
        }
        if (w->state == WORKER_READY) {
            pool_replace(w, REASON_RELOAD, r->to);
            return;
        }
        return; /* still starting on the old build: wait for it */
    }
    /* Every slot runs the new build: done once each slot's first new
     * worker has served its probation. Per slot, not per worker: when the
     * new build's workers are replaced for memory after their probation,
     * some replacement is always young, and a rollout that waited for
     * every worker would never end (the replay found it). A replacement
     * is still on probation for its own first probation_ms
     * (rollout_on_probation): past the soft limit in it, the build is
     * rolled back. */
    for (int slot = 0; slot < pool->target; slot++)
        if (pool->slots[slot].rollout_ready_ms == 0 || now - pool->slots[slot].rollout_ready_ms < probation)
            return;
    build_unref(pool->good);
    pool->good = r->to;
    build_ref(pool->good);
    build_unref(pool->build);
    pool->build = r->to;
    build_ref(pool->build);
    pool->sup->cfg = r->to->cfg;
    /* The supervisor's own timing follows the new settings too. */
    uv_timer_set_repeat(&pool->sup->tick, (uint64_t)pool->sup->cfg.health_interval_ms);
    rollout_finish(pool, ROLLOUT_DONE);
}

static void rollout_step_rolling_back(struct pool *pool)
{
    struct rollout *r = &pool->rollout;
    int ready = 0;

    if (rollout_surge_pending(pool))
        return;
    for (int slot = 0; slot < pool->target; slot++) {
        struct pool_worker *w = pool_slot_worker(pool, slot);

        if (w == NULL)
            continue; /* the reconcile fills it with the good build */
        if (w->build == r->to) {
            if (w->state == WORKER_READY)
                pool_replace(w, REASON_RELOAD, pool->good);
            return;
        }
        if (w->state == WORKER_READY)
            ready++;
    }
    if (ready == pool->target)
        rollout_finish(pool, ROLLOUT_ROLLED_BACK);
}

void rollout_step(struct pool *pool)
{
    if (pool->sup->state != SUPERVISOR_RUNNING)
        return;
    if (pool->rollout.state == ROLLOUT_ROLLING)
        rollout_step_rolling(pool);
    else if (pool->rollout.state == ROLLOUT_ROLLING_BACK)
        rollout_step_rolling_back(pool);
}
