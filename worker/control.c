/* worker/control.c - the worker's end of the control protocol
 * (proto/control.h): hello, settings, accept, ping/pong, drain, goodbye.
 * It drives the worker's life (worker/worker.c) and hears back from it
 * through w->on_ready and w->on_goodbye. Its own state is
 * w->control_state, changed only by worker_control_set_state().
 */
#include "control.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <unistd.h>

#include "../proto/hash_gate.h"
#include "../proto/log.h"
#include "worker.h"

#define WORKER_CONTROL_BUFFER CONTROL_FRAME_MAX

static void worker_control_set_state(struct worker *w, enum worker_control_state next)
{
    static const char *const names[] = { "none", "open", "closed", "lost" };

    if (w->control_state == next)
        return;
    log_emit(LOG_DEBUG, "control_state", json_pack("{s:s, s:s}", "from", names[w->control_state], "to", names[next]));
    w->control_state = next;
}

static void worker_control_on_write(uv_write_t *req, int status)
{
    (void)status; /* a dead supervisor shows up as EOF on the read side */
    free(req->data);
    free(req);
}

static void worker_control_send(struct worker *w, const struct control_msg *msg)
{
    uv_write_t *req;
    uv_buf_t buf;
    char *frame;
    size_t len;

    if (w->control_state != WORKER_CONTROL_OPEN || control_msg_encode(msg, &frame, &len) != 0)
        return;
    req = malloc(sizeof(*req));
    if (req == NULL) {
        free(frame);
        return;
    }
    req->data = frame;
    buf = uv_buf_init(frame, (unsigned)len);
    if (uv_write(req, (uv_stream_t *)&w->control, &buf, 1, worker_control_on_write) != 0) {
        free(frame);
        free(req);
    }
}

/* The worker became ready (once: worker.c's STARTING -> READY). */
static void worker_control_on_ready(struct worker *w)
{
    struct control_msg msg;

#ifdef VERONA_TEST_HOOKS
    /* Test builds only: a build that never becomes ready (the rollout tests). */
    if (getenv("VERONA_TEST_NEVER_READY") != NULL)
        return;
#endif
    memset(&msg, 0, sizeof(msg));
    msg.type = CONTROL_READY;
    worker_control_send(w, &msg);
}

static void worker_control_on_close(uv_handle_t *h)
{
    (void)h;
}

static void worker_control_pong(struct worker *w, uint64_t seq);

/* The worker ends: its last counters, then goodbye, then the socket closes. */
static void worker_control_on_goodbye(struct worker *w, const char *reason)
{
    struct control_msg msg;

    if (w->control_state != WORKER_CONTROL_OPEN)
        return;
    /* An unasked pong first: the requests served since the last ping
     * reach the supervisor's totals. */
    worker_control_pong(w, 0);
    memset(&msg, 0, sizeof(msg));
    msg.type = CONTROL_GOODBYE;
    snprintf(msg.reason, sizeof(msg.reason), "%s", reason);
    worker_control_send(w, &msg);
    worker_control_set_state(w, WORKER_CONTROL_CLOSED);
    uv_read_stop((uv_stream_t *)&w->control);
    /* uv_write() above wrote both small frames at once (the queue was
     * empty, the socket has room); a frame still queued would be cancelled
     * here, costing only the last counters. */
    uv_close((uv_handle_t *)&w->control, worker_control_on_close);
}

static void worker_control_pong(struct worker *w, uint64_t seq)
{
    struct control_msg *msg = calloc(1, sizeof(*msg));

    if (msg == NULL)
        return;
    msg->type = CONTROL_PONG;
    msg->seq = seq;
    snprintf(msg->state, sizeof(msg->state), "%s",
             w->state >= WORKER_DRAINING ? "draining" : w->http.listening ? "ready" : "starting");
    msg->connections = w->http.stats.connections_open;
    msg->in_flight = w->http.stats.requests_in_flight;
    msg->hash_queue = w->auth.queued;
    msg->db_up = db_is_up(&w->db);
    msg->counters = w->counters;
    msg->counters.connections_accepted = w->http.stats.connections_accepted;
    msg->counters.session_cache_hits = w->sessions.hits;
    msg->counters.session_cache_misses = w->sessions.misses;
    msg->counters.db_primary_changes = w->db.primary_changes;
    snprintf(msg->db_host, sizeof(msg->db_host), "%s", w->db.primary);
    worker_control_send(w, msg);
    free(msg);
}

static void worker_control_fail(const char *what)
{
    log_emit(LOG_ERROR, "control_protocol_error", json_pack("{s:s}", "error", what));
    _exit(1); /* the supervisor replaces us; nothing here can be trusted */
}

static void worker_control_handle(struct worker *w, struct control_msg *msg)
{
    char err[CONFIG_ERROR_MAX];
    int rc;

    switch (msg->type) {
    case CONTROL_SETTINGS:
        if (w->state != WORKER_UNCONFIGURED)
            return; /* settings change by replacing the worker, never in place */
        config_defaults(&w->cfg);
        if (config_load_string(&w->cfg, msg->settings, "settings", err, sizeof(err)) != 0 ||
            config_finish(&w->cfg, err, sizeof(err)) != 0) {
            log_emit(LOG_ERROR, "bad_settings", json_pack("{s:s}", "error", err));
            exit(2);
        }
        rc = worker_setup(w, CONTROL_LISTEN_FD);
        if (rc != 0)
            exit(rc);
        return;
    case CONTROL_ACCEPT:
        if (w->state == WORKER_STARTING || w->state == WORKER_READY) {
            rc = http_server_start(&w->http);
            if (rc != 0) {
                log_emit(LOG_ERROR, "accept_failed", json_pack("{s:s}", "error", uv_strerror(rc)));
                exit(1);
            }
            log_emit(LOG_INFO, "accepting", NULL);
        }
        return;
    case CONTROL_PING:
        worker_control_pong(w, msg->seq);
        return;
    case CONTROL_DRAIN:
        worker_stop(w, "drain");
        return;
    default:
        worker_control_fail("unexpected message from the supervisor");
    }
}

static void worker_control_on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct worker *w = h->data;

    (void)suggested;
    *buf = uv_buf_init(w->control_in + w->control_len,
                       (unsigned)(WORKER_CONTROL_BUFFER - w->control_len));
}

/* Waits (up to `ms`) for the dying supervisor to finish dying: its pidfd
 * turns readable only after the kernel has handed its children to another
 * parent. */
static void worker_control_wait_supervisor_exit(const struct worker *w, int ms)
{
    struct pollfd p = { .fd = pidfd_open(w->supervisor_pid, 0), .events = POLLIN };

    if (p.fd < 0)
        return; /* ESRCH: gone already */
    while (poll(&p, 1, ms) < 0 && errno == EINTR)
        ;
    close(p.fd);
}

void worker_control_orphan_gate(struct worker *w, int wait_ms)
{
    /* A supervisor that died without removing its hash gate (SIGKILL, a
     * crash) leaves it to its orphans, so no semaphore outlives the
     * cluster; they hash ungated from then on. Only once this process has
     * really been handed to another parent: the kernel closes a dying
     * process's files (the EOF here) before it reparents its children
     * (later still for a big process, whose memory it frees first), so a
     * worker leaving after that EOF waits for the reparenting. A supervisor
     * that is alive keeps its gate. */
    if (w->control_state == WORKER_CONTROL_NONE)
        return;
    if (w->control_state == WORKER_CONTROL_LOST && wait_ms > 0 && getppid() == w->supervisor_pid)
        worker_control_wait_supervisor_exit(w, wait_ms);
    if (getppid() != w->supervisor_pid)
        hash_gate_remove(hash_gate_from_env());
}

static void worker_control_on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct worker *w = s->data;
    size_t used = 0;

    (void)buf;
    if (nread < 0) {
        log_emit(LOG_WARN, "supervisor_gone", NULL);
        worker_control_set_state(w, WORKER_CONTROL_LOST);
        worker_control_orphan_gate(w, 0);
        uv_read_stop(s);
        uv_close((uv_handle_t *)s, worker_control_on_close);
        if (w->state == WORKER_UNCONFIGURED)
            exit(1);
        worker_stop(w, "supervisor gone");
        return;
    }
    w->control_len += (size_t)nread;
    while (used < w->control_len) {
        struct control_msg msg;
        char err[256];
        long n = control_msg_decode(w->control_in + used, w->control_len - used, &msg, err,
                                    sizeof(err));
        if (n < 0)
            worker_control_fail(err);
        if (n == 0)
            break;
        used += (size_t)n;
        worker_control_handle(w, &msg);
        control_msg_fini(&msg);
        if (w->control_state != WORKER_CONTROL_OPEN)
            return;
    }
    memmove(w->control_in, w->control_in + used, w->control_len - used);
    w->control_len -= used;
}

int worker_control_start(struct worker *w, int fd)
{
    struct control_msg msg;
    int rc;

    w->control_in = malloc(WORKER_CONTROL_BUFFER);
    if (w->control_in == NULL)
        return UV_ENOMEM;
    uv_pipe_init(w->loop, &w->control, 0);
    w->control.data = w;
    rc = uv_pipe_open(&w->control, fd);
    if (rc == 0)
        rc = uv_read_start((uv_stream_t *)&w->control, worker_control_on_alloc, worker_control_on_read);
    if (rc != 0)
        return rc;
    w->supervisor_pid = getppid();
    w->on_ready = worker_control_on_ready;
    w->on_goodbye = worker_control_on_goodbye;
    worker_control_set_state(w, WORKER_CONTROL_OPEN);
    memset(&msg, 0, sizeof(msg));
    msg.type = CONTROL_HELLO;
    msg.pid = (int)getpid();
    snprintf(msg.build_id, sizeof(msg.build_id), "%s", worker_build_id);
    worker_control_send(w, &msg);
    return 0;
}
