/* supervisor/rollout.h - rolling restarts (`ctl reload`, SIGHUP) with
 * probation and automatic rollback (SPEC.md section 6).
 *
 * One slot at a time a surge worker of the new build starts beside the
 * old one; it takes traffic once ready, then the old one drains. The
 * first new worker is a canary: the next slot waits until it has served
 * probation_ms. Every new worker is on probation for probation_ms after
 * its ready. A new worker that exits, is not ready in time, misses health
 * checks or passes its soft memory limit on probation halts the rollout
 * and the pool rolls back to the last good build, which the supervisor
 * holds open. The rollout is one state machine (enum rollout_state).
 *
 * The rollout decides, the pool acts: the rollout reads a view of the
 * slots that the pool makes (struct rollout_view) and answers with a plan
 * (struct rollout_plan: start, replace or kill workers, change the build
 * that fills empty slots, end). It calls nothing of the pool's.
 */
#ifndef VERONA_SUPERVISOR_ROLLOUT_H
#define VERONA_SUPERVISOR_ROLLOUT_H

#include <stddef.h>
#include <stdint.h>

#define ROLLOUT_SLOTS_MAX 128 /* = POOL_SLOTS_MAX */

struct pool_worker;
struct build;

enum rollout_state {
    ROLLOUT_NONE = 0,     /* never rolled out since start */
    ROLLOUT_ROLLING,      /* replacing slots with the new build */
    ROLLOUT_ROLLING_BACK, /* halted: replacing new workers with the last good build */
    ROLLOUT_ROLLED_BACK,  /* ended on the last good build */
    ROLLOUT_DONE,         /* ended on the new build */
};

typedef void (*rollout_done_cb)(void *arg, int ok, const char *reason);

struct rollout_waiter {
    rollout_done_cb cb;
    void *arg;
    struct rollout_waiter *next;
};

struct rollout {
    enum rollout_state state;
    struct build *from, *to;   /* references while the rollout runs; names kept after */
    char from_sha[65], to_sha[65];
    int slots_total;
    int slots_done;
    uint64_t canary_ready_ms;  /* 0 until the first new worker is ready */
    /* When each slot's first worker of the new build became ready (0: not
     * yet). Its probation runs from here, once: a later replacement of
     * that build (a memory recycle) does not start it again. */
    uint64_t slot_ready_ms[ROLLOUT_SLOTS_MAX];
    char reason[256];
    /* The last rollout rolled back: a new binary is not tried again until
     * the file changes; the same binary with new settings (only settings
     * changed) not until the settings change (rejected_settings, owned). */
    char rejected_sha[65];
    char *rejected_settings;
    char rejected_reason[256];
    uint64_t started_ms;
    uint64_t count_done, count_rolled_back;
    struct rollout_waiter *waiters;
};

/* What the rollout sees of the pool: for each slot below the target the
 * worker that serves it or is starting for it (a starting replacement
 * before the one it replaces; NULL: empty), and whether it is in backoff. */
struct rollout_slot {
    struct pool_worker *worker;
    const struct build *build; /* the worker's */
    int starting;              /* the worker is not serving yet */
    int ready;                 /* the worker serves (and may be replaced) */
    int in_backoff;
};

struct rollout_view {
    uint64_t now_ms;
    int running;               /* the supervisor runs (not stopping) */
    int target;
    int surge_pending;         /* a replacement is starting beside the worker it replaces */
    int to_alive;              /* some worker of the new build is alive */
    struct build *good;        /* the last good build */
    struct rollout_slot slots[ROLLOUT_SLOTS_MAX];
};

enum rollout_act {
    ROLLOUT_ACT_SPAWN,     /* start `build` in the empty `slot` */
    ROLLOUT_ACT_REPLACE,   /* replace `worker` with `build` (it drains once the new one is ready) */
    ROLLOUT_ACT_KILL,      /* kill `worker`, for `detail` */
    ROLLOUT_ACT_FILL_GOOD, /* halted: empty slots get the last good build from now on */
    ROLLOUT_ACT_ADOPT,     /* done: the new build is the good one; the supervisor's settings follow */
};

struct rollout_action {
    enum rollout_act act;
    int slot;
    struct pool_worker *worker;
    struct build *build;
    const char *detail;
};

/* What the pool is to do, in order; then, when `finish` is set, it calls
 * rollout_finish() with it. */
struct rollout_plan {
    int count;
    struct rollout_action actions[ROLLOUT_SLOTS_MAX + 2];
    enum rollout_state finish; /* ROLLOUT_DONE or ROLLOUT_ROLLED_BACK, else ROLLOUT_NONE */
};

/* The state's name in logs, status, metrics and the status page. */
const char *rollout_state_name(enum rollout_state state);

/* 1 while a rollout or rollback is in progress. */
int rollout_active(const struct rollout *r);

/* Starts a rollout from `good` to `to` (takes the reference to `to`) over
 * `target` slots. Returns 0, or -1 with a message (and the reference
 * dropped) when refused. The caller then steps it. */
int rollout_start(struct rollout *r, struct build *good, struct build *to, int target, uint64_t now_ms,
                  char *err, size_t errsize);

/* The next actions, from the pool's view. */
void rollout_step(struct rollout *r, const struct rollout_view *view, struct rollout_plan *plan);

/* Events from the pool. A worker of `build` in `slot` became ready. */
void rollout_on_ready(struct rollout *r, int slot, int pid, const struct build *build, uint64_t now_ms);

/* A worker died unplanned (`detail`: how); halts a rollout whose new
 * worker it was, and plans the rollback. */
void rollout_on_exit(struct rollout *r, const struct rollout_view *view, int slot, int pid,
                     const struct build *build, const char *detail, struct rollout_plan *plan);

/* A worker on probation (rollout_on_probation) passed its soft limit. */
void rollout_on_memory(struct rollout *r, const struct rollout_view *view, int slot, int pid, uint64_t rss_bytes,
                       struct rollout_plan *plan);

/* 1 when a worker of `build`, ready since `ready_ms` (0: not yet), is on probation. */
int rollout_on_probation(const struct rollout *r, const struct build *build, uint64_t ready_ms, uint64_t now_ms);

/* Ends the rollout in `final` (after the plan that said so was carried
 * out): drops its build references and answers the waiters. */
void rollout_finish(struct rollout *r, enum rollout_state final);

/* Calls cb when the running rollout ends (at once when none runs). The
 * waiter is owned by the caller until called or cancelled. */
void rollout_wait(struct rollout *r, struct rollout_waiter *waiter);
void rollout_wait_cancel(struct rollout *r, struct rollout_waiter *waiter);

/* Answers every waiter with failure (the supervisor is stopping). */
void rollout_cancel_waiters(struct rollout *r, const char *reason);

/* Frees what the rollout owns. */
void rollout_fini(struct rollout *r);

#endif
