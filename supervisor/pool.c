/* supervisor/pool.c - the pool's slots (supervisor/pool.h): keeping
 * them at the target (reconcile), replacement (the new worker ready
 * before the old one drains), crash backoff, scaling, the health tick
 * (health.c judges, the pool acts) and the rollout's plans (rollout.c
 * decides, the pool acts). One worker process is pool_worker.c's.
 */
#include "pool.h"

#include <ctype.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../proto/hash_gate.h"
#include "../proto/log.h"
#include "health.h"
#include "memwatch.h"
#include "supervisor.h"

#define POOL_BACKOFF_MIN_MS 100
#define POOL_BACKOFF_MAX_MS 30000
#define POOL_STABLE_MS 60000        /* this much uptime resets a slot's backoff */
#define POOL_EXIT_BAD_SETTINGS 2

extern char **environ;

int pool_live_count(const struct pool *pool)
{
    int n = 0;

    for (const struct pool_worker *w = pool->workers; w != NULL; w = w->next)
        if (w->state != WORKER_EXITED)
            n++;
    return n;
}

/* ---- the rollout: it decides from a view of the slots, the pool acts ---- */

static void pool_rollout_view(struct pool *pool, struct rollout_view *view)
{
    memset(view, 0, sizeof(*view));
    view->now_ms = pool_now_ms(pool);
    view->running = pool->sup->state == SUPERVISOR_RUNNING;
    view->target = pool->target;
    view->good = pool->good;
    for (const struct pool_worker *w = pool->workers; w != NULL; w = w->next) {
        if (pool_worker_phase(w) == PHASE_STARTING && w->replaces != NULL)
            view->surge_pending = 1;
        if (w->build == pool->rollout.to && w->state != WORKER_EXITED)
            view->to_alive = 1;
    }
    for (int slot = 0; slot < pool->target && slot < POOL_SLOTS_MAX; slot++) {
        struct rollout_slot *s = &view->slots[slot];
        struct pool_worker *w = pool_slot_worker(pool, slot);

        s->in_backoff = pool->slots[slot].state == SLOT_BACKOFF;
        if (w == NULL)
            continue;
        s->worker = w;
        s->build = w->build;
        s->starting = pool_worker_phase(w) == PHASE_STARTING;
        s->ready = w->state == WORKER_READY;
    }
}

/* Carries out the rollout's plan, then ends the rollout if it said so. */
static void pool_rollout_apply(struct pool *pool, struct rollout_plan *plan)
{
    for (int i = 0; i < plan->count; i++) {
        struct rollout_action *a = &plan->actions[i];

        switch (a->act) {
        case ROLLOUT_ACT_SPAWN:
            pool_worker_spawn(pool, a->slot, NULL, a->build);
            break;
        case ROLLOUT_ACT_REPLACE:
            pool_replace(a->worker, REASON_RELOAD, a->build);
            break;
        case ROLLOUT_ACT_KILL:
            pool_worker_kill(a->worker, REASON_RELOAD, a->detail);
            break;
        case ROLLOUT_ACT_FILL_GOOD:
            build_unref(pool->build);
            pool->build = pool->good;
            build_ref(pool->build);
            break;
        case ROLLOUT_ACT_ADOPT:
            build_ref(a->build);
            build_unref(pool->good);
            pool->good = a->build;
            build_ref(a->build);
            build_unref(pool->build);
            pool->build = a->build;
            pool->sup->cfg = a->build->cfg;
            /* The supervisor's own timing follows the new settings too. */
            uv_timer_set_repeat(&pool->sup->tick, (uint64_t)pool->sup->cfg.health_interval_ms);
            break;
        }
    }
    if (plan->finish != ROLLOUT_NONE)
        rollout_finish(&pool->rollout, plan->finish);
}

static void pool_rollout_step(struct pool *pool)
{
    struct rollout_plan plan = { .count = 0 };
    struct rollout_view view;

    if (!rollout_active(&pool->rollout))
        return;
    pool_rollout_view(pool, &view);
    rollout_step(&pool->rollout, &view, &plan);
    pool_rollout_apply(pool, &plan);
}

/* A worker died unplanned (or could not start): a new build's halts its rollout. */
static void pool_rollout_on_exit(struct pool *pool, const struct pool_worker *w, const char *detail)
{
    struct rollout_plan plan = { .count = 0 };
    struct rollout_view view;

    if (pool->rollout.state != ROLLOUT_ROLLING || w->build != pool->rollout.to)
        return;
    pool_rollout_view(pool, &view);
    rollout_on_exit(&pool->rollout, &view, w->slot, w->pid, w->build, detail, &plan);
    pool_rollout_apply(pool, &plan);
    pool_rollout_step(pool);
}

int pool_rollout_start(struct pool *pool, struct build *to, char *err, size_t errsize)
{
    if (rollout_start(&pool->rollout, pool->good, to, pool->target, pool_now_ms(pool), err, errsize) != 0)
        return -1;
    pool_rollout_step(pool);
    return 0;
}

/* ---- the slots' machine ---- */

static const char *const pool_slot_state_names[] = { "empty", "starting", "serving", "replacing", "backoff", "retired" };

const char *pool_slot_state_name(enum pool_slot_state state)
{
    return (unsigned)state < sizeof(pool_slot_state_names) / sizeof(pool_slot_state_names[0])
               ? pool_slot_state_names[state]
               : "?";
}

static void pool_slot_set_state(struct pool_slot *slot, enum pool_slot_state next)
{
    if (slot->state == next)
        return;
    log_emit(LOG_INFO, "slot_state",
             json_pack("{s:i, s:s, s:s}", "slot", (int)(slot - slot->pool->slots), "from",
                       pool_slot_state_name(slot->state), "to", pool_slot_state_name(next)));
    slot->state = next;
}

/* What a slot below the target is, from its workers (not in backoff). */
static enum pool_slot_state pool_slot_state_of(struct pool *pool, int slot)
{
    const struct pool_worker *front = pool_slot_worker(pool, slot);

    if (front == NULL)
        return SLOT_EMPTY;
    if (front->replaces != NULL)
        return SLOT_REPLACING;
    return front->state == WORKER_READY ? SLOT_SERVING : SLOT_STARTING;
}

static void pool_slot_on_backoff_end(uv_timer_t *t)
{
    struct pool_slot *slot = t->data;

    pool_slot_set_state(slot, SLOT_EMPTY);
    pool_reconcile(slot->pool);
}

/* Counts a replaced worker under its reason (a stop is not a restart). */
static void pool_count_restart(struct pool *pool, const struct pool_worker *w, enum pool_reason reason)
{
    if (pool->sup->state != SUPERVISOR_RUNNING)
        return;
    pool->restarts[reason]++;
    if (reason != REASON_SCALE)
        pool->slots[w->slot].restarts++;
}

/* A slot's worker died unplanned: pick the respawn delay. The first death
 * is replaced at once; a slot that keeps dying backs off. */
static void pool_slot_backoff(struct pool *pool, const struct pool_worker *w, int64_t exit_status)
{
    struct pool_slot *slot = &pool->slots[w->slot];
    uint64_t uptime = pool_now_ms(pool) - w->started_ms;
    uint64_t delay;

    if (uptime >= POOL_STABLE_MS)
        slot->failures = 0;
    if (exit_status == POOL_EXIT_BAD_SETTINGS)
        delay = POOL_BACKOFF_MAX_MS; /* "my settings are wrong": retrying soon cannot help */
    else if (slot->failures == 0)
        delay = 0;
    else
        delay = slot->failures >= 10 ? POOL_BACKOFF_MAX_MS
                                     : (uint64_t)POOL_BACKOFF_MIN_MS << (slot->failures - 1);
    if (delay > POOL_BACKOFF_MAX_MS)
        delay = POOL_BACKOFF_MAX_MS;
    slot->failures++;
    if (delay > 0 && w->slot < pool->target) {
        pool_slot_set_state(slot, SLOT_BACKOFF);
        slot->backoff_until_ms = pool_now_ms(pool) + delay;
        uv_timer_start(&slot->timer, pool_slot_on_backoff_end, delay, 0);
        log_emit(LOG_WARN, "slot_backoff",
                 json_pack("{s:i, s:I, s:i}", "slot", w->slot, "delay_ms", (json_int_t)delay, "failures",
                           slot->failures));
    }
}

/* A worker exited or could not start (pool_worker.c tells): count it,
 * back its slot off when it died unplanned with nobody serving the slot,
 * halt a rollout whose new worker it was, and refill the pool. */
static void pool_on_worker_exit(struct pool *pool, struct pool_worker *w, const struct pool_worker_exit *how)
{
    pool_count_restart(pool, w, how->reason);
    /* Another worker may hold the slot although nobody planned it so: a
     * replacement that took over when the worker it replaced was killed. */
    if (pool->sup->state == SUPERVISOR_RUNNING && !how->slot_served && pool_slot_worker(pool, w->slot) == NULL)
        pool_slot_backoff(pool, w, how->status);
    if (how->unplanned)
        pool_rollout_on_exit(pool, w, how->detail);
    if (!how->spawn_failed) /* a failed spawn is answered by whoever spawned */
        pool_reconcile(pool);
}

/* A worker said something (hello, ready, pong): the pool may need more. */
static void pool_on_worker_news(struct pool *pool)
{
    pool_reconcile(pool);
}

struct pool_worker *pool_slot_worker(struct pool *pool, int slot)
{
    struct pool_worker *found = NULL;

    for (struct pool_worker *w = pool->workers; w != NULL; w = w->next)
        if (w->slot == slot && pool_worker_holds_slot(w) &&
            (found == NULL || w->replaces == found))
            found = w;
    return found;
}

struct build *pool_build_for(const struct pool *pool, const struct pool_worker *w)
{
    /* A worker of a build being rolled back is replaced by the good one. */
    if (pool->rollout.state == ROLLOUT_ROLLING_BACK && w->build == pool->rollout.to)
        return pool->good;
    return w->build;
}

struct pool_worker *pool_replace(struct pool_worker *old, enum pool_reason reason, struct build *build)
{
    if (old->state != WORKER_READY || pool_worker_being_replaced(old))
        return NULL;
    old->kill_reason = (int)reason;
    log_emit(LOG_INFO, "worker_replace",
             json_pack("{s:i, s:i, s:s}", "slot", old->slot, "worker_pid", old->pid, "reason",
                       pool_reason_names[reason]));
    return pool_worker_spawn(old->pool, old->slot, old, build);
}

/* A spawn failed: on_worker_exit heard of it at once and may have put
 * the slot in backoff, which stands until its timer ends; else the slot
 * is empty (the next step tries again). */
static void pool_slot_spawn_failed(struct pool_slot *s)
{
    if (s->state != SLOT_BACKOFF)
        pool_slot_set_state(s, SLOT_EMPTY);
}

void pool_reconcile(struct pool *pool)
{
    if (pool->sup->state != SUPERVISOR_RUNNING)
        return;
    for (int slot = 0; slot < POOL_SLOTS_MAX; slot++) {
        struct pool_slot *s = &pool->slots[slot];

        if (slot >= pool->target) {
            /* Scaled down: drain whatever still serves these slots. */
            int left = 0;

            for (struct pool_worker *o = pool->workers; o != NULL; o = o->next) {
                if (o->slot != slot || o->state == WORKER_EXITED)
                    continue;
                left = 1;
                if (pool_worker_holds_slot(o))
                    pool_worker_drain(o, REASON_SCALE);
            }
            pool_slot_set_state(s, left ? SLOT_RETIRED : SLOT_EMPTY);
            continue;
        }
        if (s->state == SLOT_BACKOFF)
            continue;
        if (pool_slot_worker(pool, slot) == NULL && pool_worker_spawn(pool, slot, NULL, pool->build) == NULL) {
            pool_slot_spawn_failed(s);
            continue;
        }
        pool_slot_set_state(s, pool_slot_state_of(pool, slot));
    }
    /* Nobody accepting (every worker gone): the first configured one serves. */
    if (!pool_worker_any_accepting(pool)) {
        for (struct pool_worker *w = pool->workers; w != NULL; w = w->next)
            if (w->state == WORKER_CONFIGURED) {
                pool_worker_accept(w);
                break;
            }
    }
    pool_rollout_step(pool);
}

/* The slot's one worker, when it has exactly one (none being replaced). */
static struct pool_worker *pool_slot_sole(struct pool *pool, int slot)
{
    struct pool_worker *sole = NULL;

    for (struct pool_worker *w = pool->workers; w != NULL; w = w->next) {
        if (w->slot != slot || w->state == WORKER_EXITED)
            continue;
        if (sole != NULL || pool_worker_being_replaced(w) || w->replaces != NULL || !pool_worker_holds_slot(w))
            return NULL;
        sole = w;
    }
    return sole;
}

/* Scaling down drains the newest workers (SPEC.md section 6): the workers
 * of the slots that stay and those of the slots that go swap slots, with
 * the slots' restart counts, until every one that stays is at least as
 * old as every one that goes. */
static void pool_keep_oldest(struct pool *pool, int target)
{
    for (;;) {
        struct pool_worker *newest_kept = NULL, *oldest_gone = NULL;
        int slot;

        for (int s = 0; s < pool->target && s < POOL_SLOTS_MAX; s++) {
            struct pool_worker *w = pool_slot_sole(pool, s);

            if (w == NULL)
                continue;
            if (s < target && (newest_kept == NULL || w->started_ms > newest_kept->started_ms))
                newest_kept = w;
            if (s >= target && (oldest_gone == NULL || w->started_ms < oldest_gone->started_ms))
                oldest_gone = w;
        }
        if (newest_kept == NULL || oldest_gone == NULL || newest_kept->started_ms <= oldest_gone->started_ms)
            return;
        slot = newest_kept->slot;
        newest_kept->slot = oldest_gone->slot;
        oldest_gone->slot = slot;
        /* A slot's history goes with its worker (neither slot is in
         * backoff: each has its worker). */
        {
            struct pool_slot *a = &pool->slots[newest_kept->slot], *b = &pool->slots[oldest_gone->slot];
            uint64_t restarts = a->restarts;
            int failures = a->failures;

            a->restarts = b->restarts;
            a->failures = b->failures;
            b->restarts = restarts;
            b->failures = failures;
        }
    }
}

void pool_scale(struct pool *pool, int target)
{
    log_emit(LOG_INFO, "scale", json_pack("{s:i, s:i}", "from", pool->target, "to", target));
    if (target < pool->target) {
        pool_keep_oldest(pool, target);
        /* A slot being shrunk away may sit in backoff: end that. */
        for (int s = target; s < pool->target; s++) {
            pool_slot_set_state(&pool->slots[s], SLOT_EMPTY);
            uv_timer_stop(&pool->slots[s].timer);
        }
    }
    pool->target = target;
    pool_reconcile(pool);
}

int pool_recycle(struct pool *pool, int pid)
{
    for (struct pool_worker *w = pool->workers; w != NULL; w = w->next)
        if (w->pid == pid && w->state == WORKER_READY) {
            pool_replace(w, REASON_RECYCLE, pool_build_for(pool, w));
            return 0;
        }
    return -1;
}

void pool_stop(struct pool *pool, int immediate)
{
    for (int s = 0; s < POOL_SLOTS_MAX; s++) {
        if (pool->slots[s].state == SLOT_BACKOFF)
            pool_slot_set_state(&pool->slots[s], SLOT_EMPTY);
        uv_timer_stop(&pool->slots[s].timer);
    }
    for (struct pool_worker *w = pool->workers; w != NULL; w = w->next) {
        if (w->state >= WORKER_KILLED)
            continue;
        if (immediate)
            pool_worker_kill(w, REASON_SCALE, "immediate stop");
        else
            pool_worker_drain(w, REASON_SCALE);
    }
}

void pool_tick(struct pool *pool)
{
    uint64_t now = pool_now_ms(pool);
    int others_db_up = 0;

    pool_worker_reap_adopted(pool); /* a SIGCHLD is never missed for long */
    for (struct pool_worker *w = pool->workers; w != NULL; w = w->next)
        if (w->state == WORKER_READY && w->db_up)
            others_db_up = 1;

    for (struct pool_worker *w = pool->workers; w != NULL; w = w->next) {
        struct health_input in;
        struct health_report report;
        struct control_msg ping;

        if (w->state >= WORKER_KILLED)
            continue;
        w->rss_bytes = memwatch_rss_bytes(w->pid);
        /* Each worker by its own build's settings: a rollout's new workers
         * by the new limits and timeouts, the old ones by theirs. */
        in = (struct health_input){
            .cfg = w->build != NULL ? &w->build->cfg : &pool->sup->cfg,
            .state = w->state,
            .hello = w->state != WORKER_SPAWNED,
            .now_ms = now,
            .rss_bytes = w->rss_bytes,
            .last_pong_ms = w->last_pong_ms,
            .drain_ms = w->drain_ms,
            .ready_clock_ms = w->ready_clock_ms,
            .others_db_up = others_db_up,
            .rollout_waits = rollout_active(&pool->rollout) && w->build != pool->good,
        };
        health_check(&in, &report);
        if (report.restart_ready_clock)
            w->ready_clock_ms = now;
        switch (report.event) {
        case HEALTH_OVER_HARD_LIMIT:
            pool_worker_kill(w, REASON_MEMORY, report.detail);
            continue;
        case HEALTH_NO_PONG:
        case HEALTH_NOT_READY:
            pool_worker_kill(w, REASON_HANG, report.detail);
            continue;
        case HEALTH_DRAIN_OVERDUE:
            pool_worker_kill(w, w->kill_reason >= 0 ? (enum pool_reason)w->kill_reason : REASON_SCALE,
                             report.detail);
            continue;
        case HEALTH_DATABASE_DOWN:
            pool_worker_accept(w); /* never a rollout's new worker: its clock restarts instead */
            break;
        case HEALTH_FINE:
            break;
        }
        if (report.over_soft_limit && rollout_on_probation(&pool->rollout, w->build, w->ready_ms, now)) {
            struct rollout_plan plan = { .count = 0 };
            struct rollout_view view;

            pool_rollout_view(pool, &view);
            rollout_on_memory(&pool->rollout, &view, w->slot, w->pid, w->rss_bytes, &plan);
            pool_rollout_apply(pool, &plan);
            pool_rollout_step(pool); /* its replacement by the good build */
        } else if (report.over_soft_limit && w->state == WORKER_READY && !pool_worker_being_replaced(w)) {
            pool_replace(w, REASON_MEMORY, pool_build_for(pool, w));
        }
        if (w->state != WORKER_SPAWNED) {
            memset(&ping, 0, sizeof(ping));
            ping.type = CONTROL_PING;
            ping.seq = ++w->ping_seq;
            pool_worker_send(w, &ping);
        }
    }
    pool_reconcile(pool);
}

int pool_init(struct pool *pool, struct supervisor *sup, struct build *build, char *err, size_t errsize)
{
    size_t n = 0, k = 0;
    char gate_err[160];

    memset(pool, 0, sizeof(*pool));
    pool->sup = sup;
    pool->on_worker_exit = pool_on_worker_exit;
    pool->on_worker_news = pool_on_worker_news;
    pool->target = sup->cfg.workers;
    pool->build = build;
    pool->good = build;
    build_ref(build);
    while (environ[n] != NULL)
        n++;
    pool->env = calloc(n + 4, sizeof(char *));
    if (pool->env == NULL) {
        snprintf(err, errsize, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], "VERONA_CONTROL_FD=", 18) != 0 &&
            strncmp(environ[i], HASH_GATE_ENV "=", sizeof(HASH_GATE_ENV)) != 0)
            pool->env[k++] = environ[i];
    pool->env[k++] = "VERONA_CONTROL_FD=4";
    pool->gate = hash_gate_create(config_cpus(), gate_err, sizeof(gate_err));
    if (pool->gate < 0) {
        log_emit(LOG_WARN, "hash_gate_unavailable",
                 json_pack("{s:s, s:s}", "error", gate_err, "effect", "each worker hashes on its own threads only"));
    } else {
        snprintf(pool->gate_env, sizeof(pool->gate_env), HASH_GATE_ENV "=%d", pool->gate);
        pool->env[k++] = pool->gate_env;
    }
    /*
     * libpq links libldap, which links GnuTLS, whose constructor initialises
     * the whole library (and p11-kit) in every process that loads it: about
     * 140 KiB private and 700 KiB of touched pages per worker, for a TLS
     * stack the worker never uses (libpq's TLS is OpenSSL; OpenLDAP calls
     * gnutls_global_init itself if an LDAP service lookup ever needs it).
     */
    if (getenv("GNUTLS_NO_IMPLICIT_INIT") == NULL)
        pool->env[k] = "GNUTLS_NO_IMPLICIT_INIT=1";
    for (int s = 0; s < POOL_SLOTS_MAX; s++) {
        uv_timer_init(sup->loop, &pool->slots[s].timer);
        pool->slots[s].timer.data = &pool->slots[s];
        pool->slots[s].pool = pool;
    }
    return 0;
}

void pool_set_gate(struct pool *pool, int gate)
{
    size_t i = 0, at;

    if (gate == pool->gate)
        return;
    hash_gate_remove(pool->gate);
    pool->gate = gate;
    while (pool->env[i] != NULL && pool->env[i] != pool->gate_env)
        i++;
    at = i; /* the gate's entry, or the end */
    if (gate < 0) {
        for (; pool->env[i] != NULL; i++)
            pool->env[i] = pool->env[i + 1];
        return;
    }
    snprintf(pool->gate_env, sizeof(pool->gate_env), HASH_GATE_ENV "=%d", gate);
    pool->env[at] = pool->gate_env; /* pool_init left room for it */
}

void pool_slot_restore(struct pool *pool, int slot, enum pool_slot_state state, int failures, uint64_t restarts,
                       uint64_t backoff_left_ms)
{
    struct pool_slot *s = &pool->slots[slot];

    s->state = state;
    s->failures = failures;
    s->restarts = restarts;
    if (state == SLOT_BACKOFF) {
        s->backoff_until_ms = pool_now_ms(pool) + backoff_left_ms;
        uv_timer_start(&s->timer, pool_slot_on_backoff_end, backoff_left_ms, 0);
    }
}

static void pool_on_timer_close(uv_handle_t *h)
{
    (void)h;
}

void pool_fini(struct pool *pool)
{
    for (int s = 0; s < POOL_SLOTS_MAX; s++)
        uv_close((uv_handle_t *)&pool->slots[s].timer, pool_on_timer_close);
    free(pool->env);
    pool->env = NULL;
    hash_gate_remove(pool->gate);
    pool->gate = -1;
    build_unref(pool->build);
    build_unref(pool->good);
    pool->build = pool->good = NULL;
    rollout_fini(&pool->rollout);
}
