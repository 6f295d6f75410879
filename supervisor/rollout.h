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
 */
#ifndef VERONA_SUPERVISOR_ROLLOUT_H
#define VERONA_SUPERVISOR_ROLLOUT_H

#include <stddef.h>
#include <stdint.h>

struct pool;
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

extern const char *const rollout_state_names[];

/* 1 while a rollout or rollback is in progress. */
int rollout_active(const struct pool *pool);

/* Starts a rollout to `to` (takes the reference). Returns 0, or -1 with a
 * message (and the reference dropped) when refused. */
int rollout_start(struct pool *pool, struct build *to, char *err, size_t errsize);

/* Calls cb when the running rollout ends (at once when none runs). The
 * waiter is owned by the caller until called or cancelled. */
void rollout_wait(struct pool *pool, struct rollout_waiter *waiter);
void rollout_wait_cancel(struct pool *pool, struct rollout_waiter *waiter);

/* Answers every waiter with failure (the supervisor is stopping). */
void rollout_cancel_waiters(struct pool *pool, const char *reason);

/* Hooks from the pool. */
void rollout_on_ready(struct pool *pool, struct pool_worker *w);
void rollout_on_exit(struct pool *pool, struct pool_worker *w, int planned, const char *detail);
void rollout_on_memory(struct pool *pool, struct pool_worker *w);
void rollout_step(struct pool *pool);

/* 1 when `w` runs the build being rolled out and is still on probation. */
int rollout_on_probation(const struct pool *pool, const struct pool_worker *w);

#endif
