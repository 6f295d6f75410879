/* supervisor/pool.c - slots, worker processes and their state machine
 * (supervisor/pool.h): spawning with the shared socket on fd 3 and a
 * control socketpair on fd 4, the control conversation, replacement
 * (the new worker ready before the old one drains), crash backoff.
 * Health and memory checks run from pool_tick().
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
#include "memwatch.h"
#include "supervisor.h"

#define POOL_BACKOFF_MIN_MS 100
#define POOL_BACKOFF_MAX_MS 30000
#define POOL_STABLE_MS 60000        /* this much uptime resets a slot's backoff */
#define POOL_EXIT_BAD_SETTINGS 2

extern char **environ;

const char *const pool_reason_names[REASON_COUNT] = {
    "crash", "hang", "memory", "reload", "scale", "recycle",
};

static const char *const pool_state_names[] = { "starting", "ready", "draining", "exited" };

const char *pool_worker_state_name(enum pool_worker_state state)
{
    return (unsigned)state < sizeof(pool_state_names) / sizeof(pool_state_names[0]) ? pool_state_names[state] : "?";
}

uint64_t pool_now_ms(const struct pool *pool)
{
    return uv_now(pool->sup->loop);
}

static void pool_worker_set_state(struct pool_worker *w, enum pool_worker_state next)
{
    if (w->state == next)
        return;
    log_emit(LOG_INFO, "worker_state",
             json_pack("{s:i, s:i, s:s, s:s}", "slot", w->slot, "worker_pid", w->pid, "from",
                       pool_state_names[w->state], "to", pool_state_names[next]));
    w->state = next;
}

int pool_live_count(const struct pool *pool)
{
    int n = 0;

    for (const struct pool_worker *w = pool->workers; w != NULL; w = w->next)
        if (w->state != WORKER_EXITED)
            n++;
    return n;
}

/* ---- sending ---- */

static void pool_on_write(uv_write_t *req, int status)
{
    (void)status; /* a dead worker shows up as its exit */
    free(req->data);
    free(req);
}

static int pool_send(struct pool_worker *w, const struct control_msg *msg)
{
    uv_write_t *req;
    uv_buf_t buf;
    char *frame;
    size_t len;

    if (w->state == WORKER_EXITED || uv_is_closing((uv_handle_t *)&w->control))
        return -1;
    if (control_msg_encode(msg, &frame, &len) != 0)
        return -1;
    req = malloc(sizeof(*req));
    if (req == NULL) {
        free(frame);
        return -1;
    }
    req->data = frame;
    buf = uv_buf_init(frame, (unsigned)len);
    if (uv_write(req, (uv_stream_t *)&w->control, &buf, 1, pool_on_write) != 0) {
        free(frame);
        free(req);
        return -1;
    }
    return 0;
}

static void pool_send_simple(struct pool_worker *w, enum control_type type)
{
    struct control_msg msg;

    memset(&msg, 0, sizeof(msg));
    msg.type = type;
    pool_send(w, &msg);
}

/* ---- killing and draining ---- */

void pool_worker_kill(struct pool_worker *w, enum pool_reason reason, const char *detail)
{
    if (w->killed || w->state == WORKER_EXITED)
        return;
    w->killed = 1;
    if (w->kill_reason < 0)
        w->kill_reason = (int)reason;
    snprintf(w->kill_detail, sizeof(w->kill_detail), "%s: %s", pool_reason_names[reason], detail);
    log_emit(LOG_WARN, "worker_kill",
             json_pack("{s:i, s:i, s:s, s:s}", "slot", w->slot, "worker_pid", w->pid, "reason",
                       w->pool->sup->state != SUPERVISOR_RUNNING ? "stop" : pool_reason_names[reason], "detail",
                       detail));
    uv_process_kill(&w->process, SIGKILL);
}

static void pool_worker_drain(struct pool_worker *w, enum pool_reason reason)
{
    if (w->state == WORKER_DRAINING || w->state == WORKER_EXITED)
        return;
    if (w->kill_reason < 0)
        w->kill_reason = (int)reason;
    w->drain_ms = pool_now_ms(w->pool);
    pool_worker_set_state(w, WORKER_DRAINING);
    log_emit(LOG_INFO, "worker_drain",
             json_pack("{s:i, s:i, s:s}", "slot", w->slot, "worker_pid", w->pid, "reason",
                       w->pool->sup->state != SUPERVISOR_RUNNING ? "stop" : pool_reason_names[reason]));
    pool_send_simple(w, CONTROL_DRAIN);
}

/* ---- the control conversation ---- */

static int pool_any_accepting(const struct pool *pool)
{
    for (const struct pool_worker *w = pool->workers; w != NULL; w = w->next)
        if (w->state == WORKER_READY && w->accepting)
            return 1;
    return 0;
}

/* Lets `w` take traffic, and drains the worker it replaces. */
static void pool_worker_accept(struct pool_worker *w)
{
    if (w->accepting || w->state != WORKER_STARTING)
        return;
    w->accepting = 1;
    w->ready_ms = pool_now_ms(w->pool);
    pool_send_simple(w, CONTROL_ACCEPT);
    pool_worker_set_state(w, WORKER_READY);
    if (w->replaces != NULL) {
        struct pool_worker *old = w->replaces;
        w->replaces = NULL;
        old->being_replaced = 0;
        pool_worker_drain(old, old->kill_reason >= 0 ? (enum pool_reason)old->kill_reason
                                                     : REASON_RECYCLE);
    }
}

static void pool_worker_on_message(struct pool_worker *w, struct control_msg *msg)
{
    struct pool *pool = w->pool;

    switch (msg->type) {
    case CONTROL_HELLO: {
        struct control_msg settings;
        char *text;

        if (w->hello) {
            pool_worker_kill(w, REASON_CRASH, "second hello");
            return;
        }
        w->hello = 1;
        snprintf(w->build_id, sizeof(w->build_id), "%s", msg->build_id);
        text = config_render(&w->build->cfg);
        if (text == NULL) {
            pool_worker_kill(w, REASON_CRASH, "out of memory");
            return;
        }
        memset(&settings, 0, sizeof(settings));
        settings.type = CONTROL_SETTINGS;
        settings.settings = text;
        pool_send(w, &settings);
        free(text);
        /* Cold start, or every worker gone: serve at once (503s while the
         * database is down beat a refused connection). */
        if (!pool_any_accepting(pool) && w->state == WORKER_STARTING && w->replaces == NULL)
            pool_worker_accept(w);
        return;
    }
    case CONTROL_READY:
        w->reported_ready = 1;
        w->db_up = 1;
        log_emit(LOG_INFO, "worker_ready",
                 json_pack("{s:i, s:i, s:s, s:I}", "slot", w->slot, "worker_pid", w->pid, "build_id",
                           w->build_id, "startup_ms", (json_int_t)(pool_now_ms(pool) - w->started_ms)));
        if (w->state == WORKER_STARTING)
            pool_worker_accept(w);
        rollout_on_ready(pool, w);
        return;
    case CONTROL_PONG:
        w->last_pong_ms = pool_now_ms(pool);
        w->db_up = msg->db_up;
        /* It becomes a metrics label: keep to the characters of host:port. */
        for (size_t i = 0; i < sizeof(w->db_host); i++) {
            char ch = msg->db_host[i];
            w->db_host[i] = ch == '\0' || isalnum((unsigned char)ch) || strchr(".:-_[]/%", ch) != NULL ? ch : '_';
            if (ch == '\0')
                break;
        }
        w->connections = msg->connections;
        w->in_flight = msg->in_flight;
        w->hash_queue = msg->hash_queue;
        w->counters = msg->counters;
        return;
    case CONTROL_GOODBYE:
        log_emit(LOG_INFO, "worker_goodbye",
                 json_pack("{s:i, s:i, s:s}", "slot", w->slot, "worker_pid", w->pid, "reason", msg->reason));
        return;
    default:
        pool_worker_kill(w, REASON_CRASH, "protocol error: unexpected message");
        return;
    }
}

static void pool_on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct pool_worker *w = h->data;

    (void)suggested;
    *buf = uv_buf_init(w->in + w->in_len, (unsigned)(CONTROL_FRAME_MAX - w->in_len));
}

static void pool_worker_release(struct pool_worker *w);
static void pool_worker_consume(struct pool_worker *w);

static void pool_on_handle_close(uv_handle_t *h)
{
    struct pool_worker *w = h->data;

    if (--w->handles_open == 0)
        pool_worker_release(w);
}

static void pool_on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct pool_worker *w = s->data;

    (void)buf;
    if (nread < 0) {
        /* The worker closed its end: it is exiting; its exit is handled there. */
        uv_read_stop(s);
        return;
    }
    w->in_len += (size_t)nread;
    pool_worker_consume(w);
    pool_reconcile(w->pool);
}

/* Reads what a worker wrote before it exited and the loop has not yet
 * read: its final counters (a last pong before its goodbye), so the
 * requests it served since the last ping are counted. The socket holds
 * everything the dead process wrote; the read is non-blocking. */
static void pool_worker_read_rest(struct pool_worker *w)
{
    uv_os_fd_t fd;

    if (w->killed || uv_is_closing((uv_handle_t *)&w->control) ||
        uv_fileno((uv_handle_t *)&w->control, &fd) != 0)
        return;
    w->exiting = 1;
    while (w->in_len < CONTROL_FRAME_MAX) {
        ssize_t n = read(fd, w->in + w->in_len, CONTROL_FRAME_MAX - w->in_len);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        w->in_len += (size_t)n;
        pool_worker_consume(w);
    }
}

/* Handles every whole frame in w->in. */
static void pool_worker_consume(struct pool_worker *w)
{
    size_t used = 0;

    while (used < w->in_len && w->state != WORKER_EXITED && !w->killed) {
        struct control_msg msg;
        char err[256];
        long n = control_msg_decode(w->in + used, w->in_len - used, &msg, err, sizeof(err));

        if (n < 0 || (n == 0 && w->in_len == CONTROL_FRAME_MAX)) {
            if (!w->exiting) /* an exited worker's pid may belong to another process */
                pool_worker_kill(w, REASON_CRASH, n < 0 ? err : "frame over 64 KiB");
            break;
        }
        if (n == 0)
            break;
        used += (size_t)n;
        /* From an exited worker only its last counters and goodbye matter. */
        if (!w->exiting || msg.type == CONTROL_PONG || msg.type == CONTROL_GOODBYE)
            pool_worker_on_message(w, &msg);
        control_msg_fini(&msg);
    }
    memmove(w->in, w->in + used, w->in_len - used);
    w->in_len -= used;
}

/* ---- exits ---- */

void pool_counters_add(struct control_counters *sum, const struct control_counters *c)
{
    const uint64_t *from = (const uint64_t *)c;
    uint64_t *to = (uint64_t *)sum;

    for (size_t i = 0; i < sizeof(*c) / sizeof(uint64_t); i++)
        to[i] += from[i];
}

static void pool_worker_release(struct pool_worker *w)
{
    struct pool *pool = w->pool;
    struct pool_worker **p;

    for (p = &pool->workers; *p != NULL; p = &(*p)->next)
        if (*p == w) {
            *p = w->next;
            break;
        }
    for (struct pool_worker *o = pool->workers; o != NULL; o = o->next)
        if (o->replaces == w)
            o->replaces = NULL;
    build_unref(w->build);
    free(w->in);
    free(w);
}

static void pool_slot_on_backoff_end(uv_timer_t *t)
{
    struct pool_slot *slot = t->data;

    slot->in_backoff = 0;
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
        slot->in_backoff = 1;
        slot->backoff_until_ms = pool_now_ms(pool) + delay;
        uv_timer_start(&slot->timer, pool_slot_on_backoff_end, delay, 0);
        log_emit(LOG_WARN, "slot_backoff",
                 json_pack("{s:i, s:I, s:i}", "slot", w->slot, "delay_ms", (json_int_t)delay, "failures",
                           slot->failures));
    }
}

static void pool_on_exit(uv_process_t *proc, int64_t exit_status, int term_signal)
{
    struct pool_worker *w = proc->data;
    struct pool *pool = w->pool;
    enum pool_worker_state was = w->state;
    int planned = was == WORKER_DRAINING && !w->killed;
    int was_surge = w->replaces != NULL;
    enum pool_reason reason = w->kill_reason >= 0 ? (enum pool_reason)w->kill_reason : REASON_CRASH;

    pool_worker_read_rest(w);
    log_emit(planned ? LOG_INFO : LOG_WARN, "worker_exit",
             json_pack("{s:i, s:i, s:I, s:i, s:s, s:I}", "slot", w->slot, "worker_pid", w->pid, "status",
                       (json_int_t)exit_status, "signal", term_signal, "reason",
                       pool->sup->state != SUPERVISOR_RUNNING ? "stop"
                       : w->kill_reason >= 0                  ? pool_reason_names[w->kill_reason]
                                                              : "crash",
                       "uptime_ms",
                       (json_int_t)(pool_now_ms(pool) - w->started_ms)));
    /* Reaped: from here on nothing may signal this pid again. */
    w->state = WORKER_EXITED;
    if (w->replaces != NULL) {
        w->replaces->being_replaced = 0;
        w->replaces = NULL;
    }
    pool_counters_add(&pool->gone, &w->counters);
    pool_count_restart(pool, w, reason);
    /* Drained on purpose, or already being replaced: its slot is served. */
    if (pool->sup->state == SUPERVISOR_RUNNING && was != WORKER_DRAINING && !w->being_replaced && !was_surge)
        pool_slot_backoff(pool, w, exit_status);
    if (!planned) {
        char detail[160];
        if (w->killed && w->kill_detail[0] != '\0')
            snprintf(detail, sizeof(detail), "was killed (%s)", w->kill_detail);
        else if (term_signal != 0)
            snprintf(detail, sizeof(detail), "killed by signal %d (%s)", term_signal, pool_reason_names[reason]);
        else
            snprintf(detail, sizeof(detail), "exited with status %lld", (long long)exit_status);
        rollout_on_exit(pool, w, planned, detail);
    }
    uv_close((uv_handle_t *)&w->process, pool_on_handle_close);
    if (!uv_is_closing((uv_handle_t *)&w->control))
        uv_close((uv_handle_t *)&w->control, pool_on_handle_close);
    pool_reconcile(pool);
}

/* ---- spawning ---- */

struct pool_worker *pool_spawn(struct pool *pool, int slot, struct pool_worker *replaces, struct build *build)
{
    uv_process_options_t options;
    uv_stdio_container_t stdio[5];
    char *args[2];
    struct pool_worker *w = calloc(1, sizeof(*w));
    int rc;

    if (w == NULL || (w->in = malloc(CONTROL_FRAME_MAX)) == NULL) {
        free(w);
        log_emit(LOG_ERROR, "spawn_failed", json_pack("{s:i, s:s}", "slot", slot, "error", "out of memory"));
        return NULL;
    }
    w->pool = pool;
    w->slot = slot;
    w->kill_reason = -1;
    w->started_ms = w->last_pong_ms = w->ready_clock_ms = pool_now_ms(pool);
    w->replaces = replaces;
    w->build = build;
    build_ref(build);
    uv_pipe_init(pool->sup->loop, &w->control, 0);
    w->control.data = w;
    w->process.data = w;

    memset(&options, 0, sizeof(options));
    /* From the descriptor the supervisor holds, not the path on disk. */
    args[0] = build->path;
    args[1] = NULL;
    options.file = build->exec_path;
    options.args = args;
    options.env = pool->env;
    options.exit_cb = pool_on_exit;
    /* Its own session: a terminal's Ctrl-C reaches the supervisor, which
     * drains the workers, instead of every process at once. */
    options.flags = UV_PROCESS_DETACHED;
    stdio[0].flags = UV_IGNORE;
    stdio[1].flags = UV_INHERIT_FD;
    stdio[1].data.fd = STDOUT_FILENO;
    stdio[2].flags = UV_INHERIT_FD;
    stdio[2].data.fd = STDERR_FILENO;
    stdio[3].flags = UV_INHERIT_FD;
    stdio[3].data.fd = pool->sup->listen_fd;
    stdio[4].flags = UV_CREATE_PIPE | UV_READABLE_PIPE | UV_WRITABLE_PIPE;
    stdio[4].data.stream = (uv_stream_t *)&w->control;
    options.stdio = stdio;
    options.stdio_count = 5;

    rc = uv_spawn(pool->sup->loop, &w->process, &options);
    w->handles_open = 2;
    w->next = pool->workers;
    pool->workers = w;
    if (rc != 0) {
        log_emit(LOG_ERROR, "spawn_failed",
                 json_pack("{s:i, s:s, s:s}", "slot", slot, "binary", build->path, "error", uv_strerror(rc)));
        /* Counts as a crash of the slot, so a missing binary backs off. */
        w->state = WORKER_EXITED;
        pool_count_restart(pool, w, REASON_CRASH);
        if (replaces == NULL)
            pool_slot_backoff(pool, w, 1);
        if (replaces != NULL)
            replaces->being_replaced = 0;
        w->replaces = NULL;
        uv_close((uv_handle_t *)&w->process, pool_on_handle_close);
        uv_close((uv_handle_t *)&w->control, pool_on_handle_close);
        {
            char detail[96];
            snprintf(detail, sizeof(detail), "could not be started: %s", uv_strerror(rc));
            rollout_on_exit(pool, w, 0, detail); /* a build that cannot even start halts its rollout */
        }
        return NULL;
    }
    w->pid = w->process.pid;
    if (replaces != NULL)
        replaces->being_replaced = 1;
    uv_read_start((uv_stream_t *)&w->control, pool_on_alloc, pool_on_read);
    log_emit(LOG_INFO, "worker_start",
             json_pack("{s:i, s:i, s:s, s:s, s:i}", "slot", slot, "worker_pid", w->pid, "binary", build->path,
                       "binary_sha256", build->sha256, "replaces", replaces != NULL ? replaces->pid : 0));
    return w;
}

struct pool_worker *pool_slot_worker(struct pool *pool, int slot)
{
    struct pool_worker *found = NULL;

    for (struct pool_worker *w = pool->workers; w != NULL; w = w->next)
        if (w->slot == slot && (w->state == WORKER_STARTING || w->state == WORKER_READY) &&
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
    if (old->being_replaced || old->state != WORKER_READY)
        return NULL;
    old->kill_reason = (int)reason;
    log_emit(LOG_INFO, "worker_replace",
             json_pack("{s:i, s:i, s:s}", "slot", old->slot, "worker_pid", old->pid, "reason",
                       pool_reason_names[reason]));
    return pool_spawn(old->pool, old->slot, old, build);
}

void pool_reconcile(struct pool *pool)
{
    if (pool->sup->state != SUPERVISOR_RUNNING)
        return;
    for (int slot = 0; slot < POOL_SLOTS_MAX; slot++) {
        struct pool_worker *w = pool_slot_worker(pool, slot);

        if (slot >= pool->target) {
            /* Scaled down: drain whatever still serves these slots. */
            for (struct pool_worker *o = pool->workers; o != NULL; o = o->next)
                if (o->slot == slot && (o->state == WORKER_STARTING || o->state == WORKER_READY))
                    pool_worker_drain(o, REASON_SCALE);
            continue;
        }
        if (w == NULL && !pool->slots[slot].in_backoff)
            pool_spawn(pool, slot, NULL, pool->build);
    }
    /* Nobody accepting (every worker gone): the first hello'd one serves. */
    if (!pool_any_accepting(pool)) {
        for (struct pool_worker *w = pool->workers; w != NULL; w = w->next)
            if (w->state == WORKER_STARTING && w->hello) {
                pool_worker_accept(w);
                break;
            }
    }
    rollout_step(pool);
}

/* The slot's one worker, when it has exactly one (none being replaced). */
static struct pool_worker *pool_slot_sole(struct pool *pool, int slot)
{
    struct pool_worker *sole = NULL;

    for (struct pool_worker *w = pool->workers; w != NULL; w = w->next) {
        if (w->slot != slot || w->state == WORKER_EXITED)
            continue;
        if (sole != NULL || w->being_replaced || w->replaces != NULL ||
            (w->state != WORKER_STARTING && w->state != WORKER_READY))
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
            pool->slots[s].in_backoff = 0;
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
        pool->slots[s].in_backoff = 0;
        uv_timer_stop(&pool->slots[s].timer);
    }
    for (struct pool_worker *w = pool->workers; w != NULL; w = w->next) {
        if (w->state == WORKER_EXITED)
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

    for (struct pool_worker *w = pool->workers; w != NULL; w = w->next)
        if (w->state == WORKER_READY && w->db_up)
            others_db_up = 1;

    for (struct pool_worker *w = pool->workers; w != NULL; w = w->next) {
        /* Each worker by its own build's settings: a rollout's new workers
         * by the new limits and timeouts, the old ones by theirs. */
        const struct config *cfg = w->build != NULL ? &w->build->cfg : &pool->sup->cfg;
        uint64_t soft = (uint64_t)cfg->memory_soft_limit_mb << 20, hard = (uint64_t)cfg->memory_hard_limit_mb << 20;
        struct control_msg ping;

        if (w->state == WORKER_EXITED || w->killed)
            continue;
        w->rss_bytes = memwatch_rss_bytes(w->pid);
        if (w->rss_bytes > hard) {
            char detail[64];
            snprintf(detail, sizeof(detail), "rss %llu MiB over %d MiB", (unsigned long long)(w->rss_bytes >> 20),
                     cfg->memory_hard_limit_mb);
            pool_worker_kill(w, REASON_MEMORY, detail);
            continue;
        }
        if (now - w->last_pong_ms > (uint64_t)cfg->health_timeout_ms) {
            pool_worker_kill(w, REASON_HANG, "no pong within health_timeout_ms");
            continue;
        }
        if (w->state == WORKER_DRAINING && now - w->drain_ms > (uint64_t)cfg->drain_timeout_ms + 1000) {
            pool_worker_kill(w, w->kill_reason >= 0 ? (enum pool_reason)w->kill_reason : REASON_SCALE,
                             "still draining after drain_timeout_ms");
            continue;
        }
        /* A rollout's new worker cannot be expected to reach PostgreSQL while
         * no serving worker does: its ready clock starts again when the
         * database is back, so the rollout waits instead of rolling back. */
        if (w->state == WORKER_STARTING && !others_db_up && w->hello && rollout_active(pool) &&
            w->build != pool->good)
            w->ready_clock_ms = now;
        if (w->state == WORKER_STARTING && !w->reported_ready &&
            now - w->ready_clock_ms > (uint64_t)cfg->ready_timeout_ms) {
            if (others_db_up || !w->hello) {
                pool_worker_kill(w, REASON_HANG, "not ready within ready_timeout_ms");
                continue;
            }
            /* The database is down for everyone: not this worker's fault.
             * A rollout waits; otherwise the worker serves (503s) as the others do. */
            if (!(rollout_active(pool) && w->build != pool->good))
                pool_worker_accept(w);
        }
        if (w->rss_bytes > soft && rollout_on_probation(pool, w))
            rollout_on_memory(pool, w);
        else if (w->state == WORKER_READY && w->rss_bytes > soft && !w->being_replaced)
            pool_replace(w, REASON_MEMORY, pool_build_for(pool, w));
        if (w->hello) {
            memset(&ping, 0, sizeof(ping));
            ping.type = CONTROL_PING;
            ping.seq = ++w->ping_seq;
            pool_send(w, &ping);
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
    free(pool->rollout.rejected_settings);
    pool->rollout.rejected_settings = NULL;
}
