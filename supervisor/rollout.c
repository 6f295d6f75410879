/* supervisor/rollout.c - the rolling restart state machine
 * (supervisor/rollout.h). Every change of state goes through
 * rollout_set_state(), which logs it. It decides from the pool's view and
 * answers with a plan; the pool carries the plan out.
 */
#include "rollout.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../proto/log.h"
#include "build.h"

static const char *const rollout_state_names[] = { "none", "rolling", "rolling_back", "rolled_back", "done" };

const char *rollout_state_name(enum rollout_state state)
{
    return (unsigned)state < sizeof(rollout_state_names) / sizeof(rollout_state_names[0])
               ? rollout_state_names[state]
               : "?";
}

int rollout_active(const struct rollout *r)
{
    return r->state == ROLLOUT_ROLLING || r->state == ROLLOUT_ROLLING_BACK;
}

static void rollout_set_state(struct rollout *r, enum rollout_state next)
{
    log_emit(next == ROLLOUT_ROLLING_BACK || next == ROLLOUT_ROLLED_BACK ? LOG_WARN : LOG_INFO, "rollout_state",
             json_pack("{s:s, s:s, s:s, s:s, s:i, s:i, s:s}", "from_state", rollout_state_name(r->state), "to_state",
                       rollout_state_name(next), "from", r->from_sha, "to", r->to_sha, "slots_done", r->slots_done,
                       "slots_total", r->slots_total, "reason", r->reason));
    r->state = next;
}

static void rollout_plan_add(struct rollout_plan *plan, enum rollout_act act, int slot, struct pool_worker *worker,
                             struct build *build, const char *detail)
{
    if (plan->count >= (int)(sizeof(plan->actions) / sizeof(plan->actions[0])))
        return; /* cannot happen: at most one action a slot, plus two */
    plan->actions[plan->count++] =
        (struct rollout_action){ .act = act, .slot = slot, .worker = worker, .build = build, .detail = detail };
}

void rollout_finish(struct rollout *r, enum rollout_state final)
{
    struct rollout_waiter *waiter = r->waiters;

    if (!rollout_active(r))
        return;
    rollout_set_state(r, final);
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

int rollout_start(struct rollout *r, struct build *good, struct build *to, int target, uint64_t now_ms,
                  char *err, size_t errsize)
{
    if (rollout_active(r)) {
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
    r->from = good;
    build_ref(r->from);
    r->to = to;
    snprintf(r->from_sha, sizeof(r->from_sha), "%s", r->from->sha256);
    snprintf(r->to_sha, sizeof(r->to_sha), "%s", to->sha256);
    r->slots_total = target;
    r->slots_done = 0;
    memset(r->slot_ready_ms, 0, sizeof(r->slot_ready_ms));
    r->canary_ready_ms = 0;
    r->reason[0] = '\0';
    r->started_ms = now_ms;
    rollout_set_state(r, ROLLOUT_ROLLING);
    return 0;
}

void rollout_wait(struct rollout *r, struct rollout_waiter *waiter)
{
    if (!rollout_active(r)) {
        waiter->cb(waiter->arg, r->state != ROLLOUT_ROLLED_BACK, r->reason);
        return;
    }
    waiter->next = r->waiters;
    r->waiters = waiter;
}

void rollout_cancel_waiters(struct rollout *r, const char *reason)
{
    struct rollout_waiter *waiter = r->waiters;

    r->waiters = NULL;
    while (waiter != NULL) {
        struct rollout_waiter *next = waiter->next;
        waiter->cb(waiter->arg, 0, reason);
        waiter = next;
    }
}

void rollout_wait_cancel(struct rollout *r, struct rollout_waiter *waiter)
{
    for (struct rollout_waiter **p = &r->waiters; *p != NULL; p = &(*p)->next)
        if (*p == waiter) {
            *p = waiter->next;
            return;
        }
}

int rollout_on_probation(const struct rollout *r, const struct build *build, uint64_t ready_ms, uint64_t now_ms)
{
    if (r->state != ROLLOUT_ROLLING || build != r->to)
        return 0;
    return ready_ms == 0 || now_ms - ready_ms < (uint64_t)r->to->cfg.probation_ms;
}

static void rollout_step_rolling(struct rollout *r, const struct rollout_view *view, struct rollout_plan *plan)
{
    uint64_t now = view->now_ms, probation = (uint64_t)r->to->cfg.probation_ms;

    if (view->surge_pending)
        return;
    /* The canary must serve its probation before the next slot. */
    if (r->slots_done == 1 && r->slots_total > 1 && now - r->canary_ready_ms < probation)
        return;
    if (r->canary_ready_ms == 0 && r->slots_done == 0 && view->to_alive)
        return; /* the canary is on its way */
    for (int slot = 0; slot < view->target; slot++) {
        const struct rollout_slot *s = &view->slots[slot];

        if (s->worker != NULL && s->build == r->to)
            continue;
        /* The lowest slot not on the new build is the next one. */
        if (s->worker == NULL) {
            if (!s->in_backoff)
                rollout_plan_add(plan, ROLLOUT_ACT_SPAWN, slot, NULL, r->to, NULL);
            return;
        }
        if (s->ready)
            rollout_plan_add(plan, ROLLOUT_ACT_REPLACE, slot, s->worker, r->to, NULL);
        return; /* or still starting on the old build: wait for it */
    }
    /* Every slot runs the new build: done once each slot's first new
     * worker has served its probation. Per slot, not per worker: when the
     * new build's workers are replaced for memory after their probation,
     * some replacement is always young, and a rollout that waited for
     * every worker would never end (the replay found it). A replacement
     * is still on probation for its own first probation_ms
     * (rollout_on_probation): past the soft limit in it, the build is
     * rolled back. */
    for (int slot = 0; slot < view->target; slot++)
        if (r->slot_ready_ms[slot] == 0 || now - r->slot_ready_ms[slot] < probation)
            return;
    rollout_plan_add(plan, ROLLOUT_ACT_ADOPT, -1, NULL, r->to, NULL);
    plan->finish = ROLLOUT_DONE;
}

static void rollout_step_rolling_back(struct rollout *r, const struct rollout_view *view, struct rollout_plan *plan)
{
    int ready = 0;

    if (view->surge_pending)
        return;
    for (int slot = 0; slot < view->target; slot++) {
        const struct rollout_slot *s = &view->slots[slot];

        if (s->worker == NULL)
            continue; /* the pool fills it with the good build */
        if (s->build == r->to) {
            if (s->ready)
                rollout_plan_add(plan, ROLLOUT_ACT_REPLACE, slot, s->worker, view->good, NULL);
            return;
        }
        if (s->ready)
            ready++;
    }
    if (ready == view->target)
        plan->finish = ROLLOUT_ROLLED_BACK;
}

void rollout_step(struct rollout *r, const struct rollout_view *view, struct rollout_plan *plan)
{
    if (!view->running)
        return;
    if (r->state == ROLLOUT_ROLLING)
        rollout_step_rolling(r, view, plan);
    else if (r->state == ROLLOUT_ROLLING_BACK)
        rollout_step_rolling_back(r, view, plan);
}

/* Halts the rollout and plans the rollback to the last good build. */
static void rollout_halt(struct rollout *r, const struct rollout_view *view, const char *reason,
                         struct rollout_plan *plan)
{
    if (r->state != ROLLOUT_ROLLING)
        return;
    snprintf(r->reason, sizeof(r->reason), "%s", reason);
    rollout_set_state(r, ROLLOUT_ROLLING_BACK);
    /* Empty slots fill with the good build from now on; the settings of
     * the supervisor stay the old ones. */
    rollout_plan_add(plan, ROLLOUT_ACT_FILL_GOOD, -1, NULL, view->good, NULL);
    for (int slot = 0; slot < view->target; slot++) {
        const struct rollout_slot *s = &view->slots[slot];

        if (s->worker != NULL && s->build == r->to && s->starting)
            rollout_plan_add(plan, ROLLOUT_ACT_KILL, slot, s->worker, NULL, "rollback: new build not serving yet");
    }
}

void rollout_on_ready(struct rollout *r, int slot, int pid, const struct build *build, uint64_t now_ms)
{
    if (r->state != ROLLOUT_ROLLING || build != r->to || slot < 0 || slot >= ROLLOUT_SLOTS_MAX ||
        r->slot_ready_ms[slot] != 0)
        return; /* a slot is done once: a later replacement of the new build is not a step */
    r->slot_ready_ms[slot] = now_ms;
    r->slots_done++;
    if (r->canary_ready_ms == 0)
        r->canary_ready_ms = now_ms;
    log_emit(LOG_INFO, "rollout_slot_done",
             json_pack("{s:i, s:i, s:i, s:i}", "slot", slot, "worker_pid", pid, "slots_done", r->slots_done,
                       "slots_total", r->slots_total));
}

void rollout_on_exit(struct rollout *r, const struct rollout_view *view, int slot, int pid,
                     const struct build *build, const char *detail, struct rollout_plan *plan)
{
    char reason[256];

    if (r->state != ROLLOUT_ROLLING || build != r->to)
        return;
    snprintf(reason, sizeof(reason), "new worker %d in slot %d %s", pid, slot, detail);
    rollout_halt(r, view, reason, plan);
}

void rollout_on_memory(struct rollout *r, const struct rollout_view *view, int slot, int pid, uint64_t rss_bytes,
                       struct rollout_plan *plan)
{
    char reason[160];

    if (r->state != ROLLOUT_ROLLING)
        return;
    snprintf(reason, sizeof(reason), "new worker %d in slot %d reached RSS %llu MiB on probation, past memory_soft_limit_mb %d",
             pid, slot, (unsigned long long)(rss_bytes >> 20), r->to->cfg.memory_soft_limit_mb);
    rollout_halt(r, view, reason, plan);
}

void rollout_fini(struct rollout *r)
{
    free(r->rejected_settings);
    r->rejected_settings = NULL;
}
