/* supervisor/pool.h - the worker pool: slots and the processes in them.
 *
 * A slot is a place in the pool (0 .. target-1); normally one worker
 * process serves it. While a worker is being replaced (memory, recycle),
 * its replacement starts in the same slot and the old one drains only
 * once the new one is ready. Two machines, each changed in one place and
 * logged: each slot's (enum pool_slot_state, pool_slot_set_state(), worked
 * out again by pool_reconcile() after every event, in the manner of
 * PostgreSQL's PostmasterStateMachine()) and each worker process's (enum
 * pool_worker_state, pool_worker_set_state() in pool_worker.c).
 */
#ifndef VERONA_SUPERVISOR_POOL_H
#define VERONA_SUPERVISOR_POOL_H

#include <stdint.h>
#include <uv.h>

#include "../proto/control.h"
#include "build.h"
#include "rollout.h"

#define POOL_SLOTS_MAX 128

enum pool_worker_state {
    WORKER_SPAWNED = 0,  /* started: waiting for its hello */
    WORKER_CONFIGURED,   /* its hello answered with its settings: waiting for ready */
    WORKER_READY,        /* accepting on the shared socket */
    WORKER_DRAINING,     /* told to drain: finishing, then it exits */
    WORKER_KILLED,       /* SIGKILL sent: waiting for its exit (killed_in: what it was) */
    WORKER_EXITING,      /* reaped: its last counters are being read */
    WORKER_EXITED,       /* gone: its handles are closing */
};

/* What status, metrics and the status page show of a worker: starting
 * (spawned, configured), ready, draining; a killed worker shows what it
 * was until it is reaped. */
enum pool_worker_phase { PHASE_STARTING = 0, PHASE_READY, PHASE_DRAINING, PHASE_GONE, PHASE_COUNT };

enum pool_worker_phase pool_worker_phase(const struct pool_worker *w);

/* The phase's name ("starting", "ready", "draining", "exited"). */
const char *pool_worker_phase_name(enum pool_worker_phase phase);

/* The state's own name, for the log ("spawned", "configured", "killed", ...). */
const char *pool_worker_state_name(enum pool_worker_state state);

/* Why a worker was replaced (the restarts_by_reason index). */
enum pool_reason {
    REASON_CRASH = 0,
    REASON_HANG,
    REASON_MEMORY,
    REASON_RELOAD,
    REASON_SCALE,
    REASON_RECYCLE,
    REASON_COUNT
};

extern const char *const pool_reason_names[REASON_COUNT];

struct pool;

enum pool_slot_state {
    SLOT_EMPTY = 0,    /* no worker: one is spawned at the next step */
    SLOT_STARTING,     /* its worker is starting */
    SLOT_SERVING,      /* its worker is ready */
    SLOT_REPLACING,    /* a replacement starts beside its serving worker */
    SLOT_BACKOFF,      /* its workers kept dying: waiting before the next one */
    SLOT_RETIRED,      /* beyond the target: what is left in it drains */
};

const char *pool_slot_state_name(enum pool_slot_state state);

struct pool_worker {
    struct pool *pool;
    struct pool_worker *next;
    int slot;
    int pid;
    enum pool_worker_state state;
    uv_process_t process;        /* unused when adopted */
    uv_pipe_t control;
    int adopted;                 /* started by the supervisor's previous image (ctl upgrade): reaped by pid */
    enum pool_worker_state killed_in; /* WORKER_KILLED: the state it was killed in */
    int handles_open;            /* process + control; freed at 0 */
    char *in;                    /* owned: control bytes not yet decoded */
    size_t in_len;
    int kill_reason;             /* REASON_* when killed or drained on purpose, else -1 */
    char kill_detail[96];        /* why it was killed, in words (rollout halts say it) */
    struct pool_worker *replaces;/* the worker to drain once this one is ready */
    uint64_t started_ms, ready_ms, last_pong_ms, drain_ms;
    uint64_t ready_clock_ms;     /* ready_timeout_ms counts from here (reset while the database is down for all) */
    uint64_t ping_seq;
    uint64_t rss_bytes;
    int db_up;
    char db_host[CONTROL_DB_HOST_MAX]; /* the worker's primary, host:port ("" none yet) */
    int connections, in_flight, hash_queue;
    struct control_counters counters; /* from the last pong */
    char build_id[CONTROL_BUILD_ID_MAX];
    struct build *build;         /* the binary and settings it runs (a reference) */
};

struct pool_slot {
    enum pool_slot_state state;  /* changed only by pool_slot_set_state() */
    int failures;                /* consecutive quick deaths */
    uint64_t restarts;
    uint64_t backoff_until_ms;
    uv_timer_t timer;
    struct pool *pool;
};

struct supervisor;

/* How a worker ended, as pool_worker.c tells the pool. */
struct pool_worker_exit {
    enum pool_reason reason; /* why it was killed or drained (REASON_CRASH when nobody asked) */
    int64_t status;          /* exit status */
    int unplanned;           /* died or was killed (not a finished drain) */
    int slot_served;         /* it was draining, a surge, or being replaced: its slot is served */
    int spawn_failed;        /* it never started */
    const char *detail;      /* how, in words ("" when planned) */
};

struct pool {
    struct supervisor *sup;
    /* pool_worker.c's news for the pool (set by pool_init): a worker
     * exited; a worker said something that may change what the pool needs. */
    void (*on_worker_exit)(struct pool *pool, struct pool_worker *w, const struct pool_worker_exit *how);
    void (*on_worker_news)(struct pool *pool);
    struct pool_worker *workers;   /* every process not yet freed */
    struct pool_slot slots[POOL_SLOTS_MAX];
    int target;
    struct build *build;           /* what empty slots are filled with */
    struct build *good;            /* the last good build (rollback target) */
    struct rollout rollout;
    char **env;                    /* owned: environ + VERONA_CONTROL_FD, VERONA_HASH_GATE */
    int gate;                      /* the hash gate (proto/hash_gate.h), or -1 */
    char gate_env[48];             /* "VERONA_HASH_GATE=<id>" */
    uint64_t restarts[REASON_COUNT];
    struct control_counters gone;  /* counters of workers that exited */
};

/* Prepares the pool (no process yet) with `build` (takes the reference)
 * and creates the hash gate, one slot a CPU (without one, workers hash
 * ungated). Returns 0 or -1 with a message. */
int pool_init(struct pool *pool, struct supervisor *sup, struct build *build, char *err, size_t errsize);

/* Starts a replacement for `old` running `build`; the old worker drains
 * once the new one is ready. Returns the new worker or NULL. */
struct pool_worker *pool_replace(struct pool_worker *old, enum pool_reason reason, struct build *build);

/* The build a replacement of `w` should run (its own, or the last good
 * one while a rollback runs). */
struct build *pool_build_for(const struct pool *pool, const struct pool_worker *w);

/* ---- one worker process (supervisor/pool_worker.c) ---- */

/* Starts a worker of `build` in `slot`; with `replaces`, as its
 * replacement (the old one drains once this one is ready). Returns the
 * new worker, or NULL (logged, and told to pool->on_worker_exit). */
struct pool_worker *pool_worker_spawn(struct pool *pool, int slot, struct pool_worker *replaces, struct build *build);

/* Sends one control message; 0, or -1 when the worker is gone. */
int pool_worker_send(struct pool_worker *w, const struct control_msg *msg);

/* Lets a starting worker take traffic (ACCEPT), and drains the worker it replaces. */
void pool_worker_accept(struct pool_worker *w);

/* Tells a worker to drain (finish, then exit) for `reason`. */
void pool_worker_drain(struct pool_worker *w, enum pool_reason reason);

/* 1 when some worker takes traffic. */
int pool_worker_any_accepting(const struct pool *pool);

/* 1 while a replacement for `w` is starting. */
int pool_worker_being_replaced(const struct pool_worker *w);

/* 1 for a worker that serves or starts for its slot: spawned, configured
 * or ready (also once killed, until reaped: its slot waits for its exit). */
int pool_worker_holds_slot(const struct pool_worker *w);

/* The worker serving `slot` (starting or ready, not draining), or NULL;
 * when a replacement is starting, the replacement. */
struct pool_worker *pool_slot_worker(struct pool *pool, int slot);

/* Takes over a worker the supervisor's previous image started (ctl
 * upgrade): `w` is filled from the handed-over state and not yet in the
 * pool; `control_fd` is its control socket. It joins the pool; its exit
 * is found by pool_worker_reap_adopted(). 0, or -1 with a message (w is
 * then closed and freed). */
int pool_worker_adopt(struct pool *pool, struct pool_worker *w, int control_fd, char *err, size_t errsize);

/* Reaps adopted workers that exited (on SIGCHLD, and every tick: libuv
 * waits only for the processes it started). */
void pool_worker_reap_adopted(struct pool *pool);

/* Puts a slot in the state the previous image handed over (ctl
 * upgrade), its backoff timer running for what was left of it. */
void pool_slot_restore(struct pool *pool, int slot, enum pool_slot_state state, int failures, uint64_t restarts,
                       uint64_t backoff_left_ms);

/* Replaces the hash gate pool_init created with `gate` (the previous
 * image's, which the workers use); -1: none. */
void pool_set_gate(struct pool *pool, int gate);

/* Kills a worker (SIGKILL) for `reason`; `detail` is logged. */
void pool_worker_kill(struct pool_worker *w, enum pool_reason reason, const char *detail);

/* Brings the pool to its target: spawns, drains, tells workers to accept.
 * Called after every event that may change what the pool needs. */
void pool_reconcile(struct pool *pool);

/* The periodic check (health_interval_ms): pings, hang and ready
 * timeouts, memory limits, drain deadlines. */
void pool_tick(struct pool *pool);

/* Starts a rollout to `to` (takes the reference): supervisor/rollout.h.
 * Returns 0, or -1 with a message when refused. */
int pool_rollout_start(struct pool *pool, struct build *to, char *err, size_t errsize);

/* Sets the target size (1-128); shrinking drains the highest slots. */
void pool_scale(struct pool *pool, int target);

/* Replaces the worker `pid` gracefully; -1 when no such live worker. */
int pool_recycle(struct pool *pool, int pid);

/* Drains every worker (graceful stop) or kills them (immediate). */
void pool_stop(struct pool *pool, int immediate);

/* Live worker processes. */
int pool_live_count(const struct pool *pool);

/* Frees what pool_init allocated; every worker must be gone. */
void pool_fini(struct pool *pool);

/* Milliseconds on the loop's clock. */
uint64_t pool_now_ms(const struct pool *pool);

#endif
