/* supervisor/pool_worker.c - one worker process of the pool
 * (supervisor/pool.h): its spawn with the shared socket on fd 3 and a
 * control socketpair on fd 4, the control conversation, its state
 * machine (pool_worker_set_state), kill, drain and exit. What its exit
 * means for its slot (restart counts, backoff, the rollout) is the
 * pool's: it hears of it through pool->on_worker_exit.
 */
#include "pool.h"

#include <ctype.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../proto/log.h"
#include "supervisor.h"

const char *const pool_reason_names[REASON_COUNT] = {
    "crash", "hang", "memory", "reload", "scale", "recycle",
};

static const char *const pool_state_names[] = { "spawned", "configured", "ready", "draining",
                                                "killed", "exiting", "exited" };
static const char *const pool_phase_names[] = { "starting", "ready", "draining", "exited" };

const char *pool_worker_state_name(enum pool_worker_state state)
{
    return (unsigned)state < sizeof(pool_state_names) / sizeof(pool_state_names[0]) ? pool_state_names[state] : "?";
}

const char *pool_worker_phase_name(enum pool_worker_phase phase)
{
    return (unsigned)phase < sizeof(pool_phase_names) / sizeof(pool_phase_names[0]) ? pool_phase_names[phase] : "?";
}

enum pool_worker_phase pool_worker_phase(const struct pool_worker *w)
{
    switch (w->state == WORKER_KILLED ? w->killed_in : w->state) {
    case WORKER_SPAWNED:
    case WORKER_CONFIGURED:
        return PHASE_STARTING;
    case WORKER_READY:
        return PHASE_READY;
    case WORKER_DRAINING:
        return PHASE_DRAINING;
    default:
        return PHASE_GONE;
    }
}

int pool_worker_holds_slot(const struct pool_worker *w)
{
    enum pool_worker_phase phase = pool_worker_phase(w);

    return phase == PHASE_STARTING || phase == PHASE_READY;
}

int pool_worker_being_replaced(const struct pool_worker *w)
{
    for (const struct pool_worker *o = w->pool->workers; o != NULL; o = o->next)
        if (o->replaces == w)
            return 1;
    return 0;
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


/* ---- sending ---- */

static void pool_on_write(uv_write_t *req, int status)
{
    (void)status; /* a dead worker shows up as its exit */
    free(req->data);
    free(req);
}

int pool_worker_send(struct pool_worker *w, const struct control_msg *msg)
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
    pool_worker_send(w, &msg);
}

/* ---- killing and draining ---- */

void pool_worker_kill(struct pool_worker *w, enum pool_reason reason, const char *detail)
{
    if (w->state >= WORKER_KILLED)
        return;
    w->killed_in = w->state;
    pool_worker_set_state(w, WORKER_KILLED);
    if (w->kill_reason < 0)
        w->kill_reason = (int)reason;
    snprintf(w->kill_detail, sizeof(w->kill_detail), "%s: %s", pool_reason_names[reason], detail);
    log_emit(LOG_WARN, "worker_kill",
             json_pack("{s:i, s:i, s:s, s:s}", "slot", w->slot, "worker_pid", w->pid, "reason",
                       w->pool->sup->state != SUPERVISOR_RUNNING ? "stop" : pool_reason_names[reason], "detail",
                       detail));
    if (w->adopted)
        kill(w->pid, SIGKILL); /* not reaped yet (state < EXITED): still our child */
    else
        uv_process_kill(&w->process, SIGKILL);
}

void pool_worker_drain(struct pool_worker *w, enum pool_reason reason)
{
    if (w->state >= WORKER_DRAINING)
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

int pool_worker_any_accepting(const struct pool *pool)
{
    for (const struct pool_worker *w = pool->workers; w != NULL; w = w->next)
        if (w->state == WORKER_READY)
            return 1;
    return 0;
}

/* Lets `w` take traffic, and drains the worker it replaces. */
void pool_worker_accept(struct pool_worker *w)
{
    if (w->state != WORKER_SPAWNED && w->state != WORKER_CONFIGURED)
        return;
    w->ready_ms = pool_now_ms(w->pool);
    pool_send_simple(w, CONTROL_ACCEPT);
    pool_worker_set_state(w, WORKER_READY);
    if (w->replaces != NULL) {
        struct pool_worker *old = w->replaces;
        w->replaces = NULL;
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

        if (w->state == WORKER_DRAINING)
            return; /* drained before its settings: it exits at the DRAIN already sent */
        if (w->state != WORKER_SPAWNED) {
            pool_worker_kill(w, REASON_CRASH, "second hello");
            return;
        }
        snprintf(w->build_id, sizeof(w->build_id), "%s", msg->build_id);
        text = config_render(&w->build->cfg);
        if (text == NULL) {
            pool_worker_kill(w, REASON_CRASH, "out of memory");
            return;
        }
        memset(&settings, 0, sizeof(settings));
        settings.type = CONTROL_SETTINGS;
        settings.settings = text;
        pool_worker_send(w, &settings);
        free(text);
        pool_worker_set_state(w, WORKER_CONFIGURED);
        /* Cold start, or every worker gone: serve at once (503s while the
         * database is down beat a refused connection). */
        if (!pool_worker_any_accepting(pool) && w->replaces == NULL)
            pool_worker_accept(w);
        return;
    }
    case CONTROL_READY:
        w->db_up = 1;
        log_emit(LOG_INFO, "worker_ready",
                 json_pack("{s:i, s:i, s:s, s:I}", "slot", w->slot, "worker_pid", w->pid, "build_id",
                           w->build_id, "startup_ms", (json_int_t)(pool_now_ms(pool) - w->started_ms)));
        pool_worker_accept(w); /* when it is not serving yet */
        rollout_on_ready(&pool->rollout, w->slot, w->pid, w->build, pool_now_ms(pool));
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
    w->pool->on_worker_news(w->pool);
}

/* Reads what a worker wrote before it exited and the loop has not yet
 * read: its final counters (a last pong before its goodbye), so the
 * requests it served since the last ping are counted. The socket holds
 * everything the dead process wrote; the read is non-blocking. */
static void pool_worker_read_rest(struct pool_worker *w)
{
    uv_os_fd_t fd;

    if (w->state == WORKER_KILLED || uv_is_closing((uv_handle_t *)&w->control) ||
        uv_fileno((uv_handle_t *)&w->control, &fd) != 0)
        return;
    pool_worker_set_state(w, WORKER_EXITING);
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

    while (used < w->in_len && w->state != WORKER_EXITED && w->state != WORKER_KILLED) {
        struct control_msg msg;
        char err[256];
        long n = control_msg_decode(w->in + used, w->in_len - used, &msg, err, sizeof(err));

        if (n < 0 || (n == 0 && w->in_len == CONTROL_FRAME_MAX)) {
            if (w->state != WORKER_EXITING) /* an exited worker's pid may belong to another process */
                pool_worker_kill(w, REASON_CRASH, n < 0 ? err : "frame over 64 KiB");
            break;
        }
        if (n == 0)
            break;
        used += (size_t)n;
        /* From an exited worker only its last counters and goodbye matter. */
        if (w->state != WORKER_EXITING || msg.type == CONTROL_PONG || msg.type == CONTROL_GOODBYE)
            pool_worker_on_message(w, &msg);
        control_msg_fini(&msg);
    }
    memmove(w->in, w->in + used, w->in_len - used);
    w->in_len -= used;
}

/* ---- exits ---- */

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

static void pool_worker_exited(struct pool_worker *w, int64_t exit_status, int term_signal)
{
    struct pool *pool = w->pool;
    /* What it was doing when it died (a killed one: when it was killed). */
    enum pool_worker_state was = w->state == WORKER_KILLED ? w->killed_in : w->state;
    int killed = w->state == WORKER_KILLED;
    int planned = was == WORKER_DRAINING && !killed;
    int was_surge = w->replaces != NULL;
    enum pool_reason reason = w->kill_reason >= 0 ? (enum pool_reason)w->kill_reason : REASON_CRASH;
    struct pool_worker_exit how;
    char detail[160];

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
    pool_worker_set_state(w, WORKER_EXITED);
    w->replaces = NULL;
    control_counters_add(&pool->gone, &w->counters);
    if (planned)
        detail[0] = '\0';
    else if (killed && w->kill_detail[0] != '\0')
        snprintf(detail, sizeof(detail), "was killed (%s)", w->kill_detail);
    else if (term_signal != 0)
        snprintf(detail, sizeof(detail), "killed by signal %d (%s)", term_signal, pool_reason_names[reason]);
    else
        snprintf(detail, sizeof(detail), "exited with status %lld", (long long)exit_status);
    how.reason = reason;
    how.status = exit_status;
    how.unplanned = !planned;
    /* Drained on purpose, or already being replaced: its slot is served. */
    how.slot_served = was == WORKER_DRAINING || pool_worker_being_replaced(w) || was_surge;
    how.spawn_failed = 0;
    how.detail = detail;
    if (!w->adopted)
        uv_close((uv_handle_t *)&w->process, pool_on_handle_close);
    if (!uv_is_closing((uv_handle_t *)&w->control))
        uv_close((uv_handle_t *)&w->control, pool_on_handle_close);
    pool->on_worker_exit(pool, w, &how);
}

static void pool_on_exit(uv_process_t *proc, int64_t exit_status, int term_signal)
{
    pool_worker_exited(proc->data, exit_status, term_signal);
}

void pool_worker_reap_adopted(struct pool *pool)
{
    int again = 1;

    /* An exit changes the list (a replacement is spawned): start over. */
    while (again) {
        again = 0;
        for (struct pool_worker *w = pool->workers; w != NULL; w = w->next) {
            int status;
            pid_t got;

            if (!w->adopted || w->state == WORKER_EXITED)
                continue;
            do
                got = waitpid(w->pid, &status, WNOHANG);
            while (got < 0 && errno == EINTR);
            if (got != w->pid)
                continue;
            pool_worker_exited(w, WIFEXITED(status) ? WEXITSTATUS(status) : 0,
                               WIFSIGNALED(status) ? WTERMSIG(status) : 0);
            again = 1;
            break;
        }
    }
}

int pool_worker_adopt(struct pool *pool, struct pool_worker *w, int control_fd, char *err, size_t errsize)
{
    int rc;

    w->pool = pool;
    w->adopted = 1;
    uv_pipe_init(pool->sup->loop, &w->control, 0);
    w->control.data = w;
    rc = uv_pipe_open(&w->control, control_fd);
    if (rc != 0)
        close(control_fd); /* the handle never owned it */
    else
        rc = uv_read_start((uv_stream_t *)&w->control, pool_on_alloc, pool_on_read);
    if (rc != 0) {
        snprintf(err, errsize, "worker %d: control socket %d: %s", w->pid, control_fd, uv_strerror(rc));
        w->handles_open = 1;
        uv_close((uv_handle_t *)&w->control, pool_on_handle_close); /* then released */
        return -1;
    }
    w->handles_open = 1; /* the control socket; there is no process handle */
    w->next = pool->workers;
    pool->workers = w;
    log_emit(LOG_INFO, "worker_adopted",
             json_pack("{s:i, s:i, s:s}", "slot", w->slot, "worker_pid", w->pid, "state",
                       pool_worker_state_name(w->state)));
    return 0;
}

/* ---- spawning ---- */

struct pool_worker *pool_worker_spawn(struct pool *pool, int slot, struct pool_worker *replaces, struct build *build)
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
        /* Counts as a crash of the slot, so a missing binary backs off; a
         * build that cannot even start halts its rollout. */
        struct pool_worker_exit how = { .reason = REASON_CRASH, .status = 1, .unplanned = 1,
                                        .slot_served = replaces != NULL, .spawn_failed = 1 };
        char detail[96];

        pool_worker_set_state(w, WORKER_EXITED);
        w->replaces = NULL;
        uv_close((uv_handle_t *)&w->process, pool_on_handle_close);
        uv_close((uv_handle_t *)&w->control, pool_on_handle_close);
        snprintf(detail, sizeof(detail), "could not be started: %s", uv_strerror(rc));
        how.detail = detail;
        pool->on_worker_exit(pool, w, &how);
        return NULL;
    }
    w->pid = w->process.pid;
    uv_read_start((uv_stream_t *)&w->control, pool_on_alloc, pool_on_read);
    log_emit(LOG_INFO, "worker_start",
             json_pack("{s:i, s:i, s:s, s:s, s:i}", "slot", slot, "worker_pid", w->pid, "binary", build->path,
                       "binary_sha256", build->sha256, "replaces", replaces != NULL ? replaces->pid : 0));
    return w;
}

