/* supervisor/upgrade.c - the old image's half of `ctl upgrade`
 * (supervisor/upgrade.h): refusals, the dry run, the settling, the exec.
 * The new image's half is supervisor/takeover.c.
 */
#include "upgrade.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../proto/log.h"
#include "supervisor.h"
#include "upgrade_state.h"

#define UPGRADE_SETTLE_POLL_MS 10

static void upgrade_on_close(uv_handle_t *h)
{
    struct upgrade *u = h->data;

    u->handles--;
}

void upgrade_init(struct upgrade *u, struct supervisor *sup)
{
    memset(u, 0, sizeof(*u));
    u->sup = sup;
    u->state_fd = -1;
    u->client_fd = -1;
    uv_timer_init(sup->loop, &u->timer);
    u->timer.data = u;
}

int upgrade_running(const struct upgrade *u)
{
    return u->running;
}

/* Why an upgrade cannot go on now, or NULL. */
static const char *upgrade_refusal(struct upgrade *u)
{
    struct supervisor *sup = u->sup;

    if (sup->state != SUPERVISOR_RUNNING)
        return "the supervisor is stopping";
    if (rollout_active(&sup->pool.rollout))
        return "rollout in progress";
    for (const struct pool_worker *w = sup->pool.workers; w != NULL; w = w->next)
        if (pool_worker_phase(w) == PHASE_STARTING)
            return "a worker is starting";
    return NULL;
}

/* A new file in memory holding the state; -1 with a message. */
static int upgrade_write_state(struct upgrade *u, int client_fd, unsigned flags, char *err, size_t errsize)
{
    json_t *doc = upgrade_state_dump(u->sup, client_fd, err, errsize);
    char *text;
    size_t len, done = 0;
    int fd;

    if (doc == NULL)
        return -1;
    text = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    if (text == NULL) {
        snprintf(err, errsize, "out of memory");
        return -1;
    }
    len = strlen(text);
    fd = memfd_create("verona-supervisor-state", flags);
    if (fd < 0) {
        snprintf(err, errsize, "memfd_create: %s", strerror(errno));
        free(text);
        return -1;
    }
    while (done < len) {
        ssize_t n = write(fd, text + done, len - done);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            snprintf(err, errsize, "writing the state: %s", strerror(errno));
            free(text);
            close(fd);
            return -1;
        }
        done += (size_t)n;
    }
    free(text);
    return fd;
}

static void upgrade_refuse(struct upgrade *u, const char *reason)
{
    log_emit(LOG_WARN, "supervisor_upgrade_refused", json_pack("{s:s, s:s}", "reason", reason, "binary", u->sup->self_path));
    uv_timer_stop(&u->timer);
    if (u->state_fd >= 0)
        close(u->state_fd);
    u->state_fd = -1;
    u->running = 0;
    if (u->refused != NULL)
        u->refused(u->arg, reason);
    u->refused = NULL;
    u->client_fd = -1;
}

/* ---- the exec ---- */

static int upgrade_cloexec(int fd, int on)
{
    int flags = fcntl(fd, F_GETFD);

    if (flags < 0)
        return -1;
    return fcntl(fd, F_SETFD, on ? flags | FD_CLOEXEC : flags & ~FD_CLOEXEC);
}

/* Every descriptor the state names, in fds[] (at most `max`). */
static int upgrade_fds(struct upgrade *u, int state_fd, int *fds, int max)
{
    struct supervisor *sup = u->sup;
    uv_os_fd_t fd;
    int n = 0;

    fds[n++] = state_fd;
    fds[n++] = sup->listen_fd;
    if (uv_fileno((uv_handle_t *)&sup->admin.server, &fd) == 0)
        fds[n++] = fd;
    if (uv_fileno((uv_handle_t *)&sup->metrics.server, &fd) == 0)
        fds[n++] = fd;
    if (u->client_fd >= 0)
        fds[n++] = u->client_fd;
    for (struct pool_worker *w = sup->pool.workers; w != NULL && n < max; w = w->next)
        if (w->state != WORKER_EXITED && uv_fileno((uv_handle_t *)&w->control, &fd) == 0)
            fds[n++] = fd;
    return n;
}

/* The signals serve.c handles whose default action would end or stop
 * the process: held back from just before the exec until the new image
 * handles them (its serve_run unblocks them), so a TERM, HUP or USR2 in
 * between waits instead of killing the supervisor. */
static void upgrade_signal_set(sigset_t *set)
{
    static const int held[] = { SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGTTIN, SIGTTOU, SIGUSR2, SIGPIPE };

    sigemptyset(set);
    for (size_t i = 0; i < sizeof(held) / sizeof(held[0]); i++)
        sigaddset(set, held[i]);
}

void upgrade_signals_unblock(void)
{
    sigset_t set;

    upgrade_signal_set(&set);
    sigprocmask(SIG_UNBLOCK, &set, NULL);
}

static void upgrade_exec(struct upgrade *u)
{
    struct supervisor *sup = u->sup;
    int fds[POOL_SLOTS_MAX * 4 + 8], n, fd;
    char err[256], fd_text[16];
    sigset_t held;
    char *args[5];

    fd = upgrade_write_state(u, u->client_fd, 0, err, sizeof(err));
    if (fd < 0) {
        upgrade_refuse(u, err);
        return;
    }
    if (lseek(fd, 0, SEEK_SET) != 0) {
        snprintf(err, sizeof(err), "lseek: %s", strerror(errno));
        close(fd);
        upgrade_refuse(u, err);
        return;
    }
    n = upgrade_fds(u, fd, fds, (int)(sizeof(fds) / sizeof(fds[0])));
    for (int i = 0; i < n; i++)
        upgrade_cloexec(fds[i], 0);
    snprintf(fd_text, sizeof(fd_text), "%d", fd);
    args[0] = sup->self_path;
    args[1] = "serve";
    args[2] = "--takeover";
    args[3] = fd_text;
    args[4] = NULL;
    log_emit(LOG_INFO, "supervisor_upgrade_exec",
             json_pack("{s:s, s:s, s:s, s:i}", "from", VERONA_BUILD_ID, "to", u->to_build_id, "binary", sup->self_path,
                       "workers", pool_live_count(&sup->pool)));
    upgrade_signal_set(&held);
    sigprocmask(SIG_BLOCK, &held, NULL);
    execv(sup->self_path, args);
    /* Still here: nothing was handed over. */
    snprintf(err, sizeof(err), "exec %.200s: %s", sup->self_path, strerror(errno));
    sigprocmask(SIG_UNBLOCK, &held, NULL);
    for (int i = 1; i < n; i++)
        upgrade_cloexec(fds[i], 1);
    close(fd);
    upgrade_refuse(u, err);
}

/* ---- settling: no worker starts, no control message half written ---- */

static void upgrade_on_settle(uv_timer_t *t)
{
    struct upgrade *u = t->data;
    struct supervisor *sup = u->sup;
    const char *why = upgrade_refusal(u);
    int queued = 0;

    if (sup->state != SUPERVISOR_RUNNING || rollout_active(&sup->pool.rollout)) {
        upgrade_refuse(u, why);
        return;
    }
    /* A reaped worker whose handles still close holds a build reference
     * the state would not name: its descriptor would outlive the exec
     * with no owner (builds are not close-on-exec). */
    for (struct pool_worker *w = sup->pool.workers; w != NULL; w = w->next)
        if (w->state == WORKER_EXITED || uv_stream_get_write_queue_size((uv_stream_t *)&w->control) > 0)
            queued = 1;
    if (why == NULL && !queued) {
        upgrade_exec(u);
        return;
    }
    if (uv_now(sup->loop) >= u->settle_until_ms) {
        char reason[160];

        snprintf(reason, sizeof(reason), "%s after %d s",
                 why != NULL ? why : "control messages still queued or a worker's exit still closing",
                 UPGRADE_SETTLE_MS / 1000);
        upgrade_refuse(u, reason);
        return;
    }
    uv_timer_start(&u->timer, upgrade_on_settle, UPGRADE_SETTLE_POLL_MS, 0);
}

/* ---- the dry run ---- */

static void upgrade_on_check_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct upgrade *u = h->data;

    (void)suggested;
    *buf = uv_buf_init(u->answer + u->answer_len, (unsigned)(sizeof(u->answer) - 1 - u->answer_len));
}

static void upgrade_on_check_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct upgrade *u = s->data;

    (void)buf;
    if (nread < 0 || u->answer_len + (size_t)nread >= sizeof(u->answer) - 1) {
        uv_read_stop(s);
        if (nread > 0)
            u->answer_len += (size_t)nread;
        return;
    }
    u->answer_len += (size_t)nread;
}

static void upgrade_on_check_deadline(uv_timer_t *t)
{
    struct upgrade *u = t->data;

    snprintf(u->answer, sizeof(u->answer), "no answer within %d s", UPGRADE_CHECK_MS / 1000);
    u->answer_len = strlen(u->answer);
    uv_process_kill(&u->check, SIGKILL);
}

/* What the dry run said, judged: NULL when the new binary took the copy over. */
static const char *upgrade_check_verdict(struct upgrade *u, char *reason, size_t size)
{
    char *nl;

    u->answer[u->answer_len] = '\0';
    nl = strchr(u->answer, '\n');
    if (nl != NULL)
        *nl = '\0';
    if (u->check_signal != 0) {
        snprintf(reason, size, "the new binary %s (signal %d) in the dry run%s%s",
                 u->check_signal == SIGKILL ? "was killed" : "crashed", u->check_signal,
                 u->answer[0] != '\0' ? ": " : "", u->answer);
        return reason;
    }
    if (u->check_status != 0 || strncmp(u->answer, "ok ", 3) != 0) {
        const char *said = strncmp(u->answer, "refused: ", 9) == 0 ? u->answer + 9 : u->answer;

        snprintf(reason, size, "the new binary cannot take the state over (exit status %lld): %s",
                 (long long)u->check_status, said[0] != '\0' ? said : "it said nothing");
        return reason;
    }
    snprintf(u->to_build_id, sizeof(u->to_build_id), "%s", u->answer + 3);
    return NULL;
}

static void upgrade_on_check_exit(uv_process_t *p, int64_t status, int term_signal)
{
    struct upgrade *u = p->data;
    char reason[400];
    const char *verdict;
    uv_os_fd_t fd;

    u->check_exited = 1;
    u->check_status = status;
    u->check_signal = term_signal;
    uv_timer_stop(&u->timer);
    /* Whatever it wrote before it exited and the loop has not read yet. */
    if (!uv_is_closing((uv_handle_t *)&u->out) && uv_fileno((uv_handle_t *)&u->out, &fd) == 0) {
        while (u->answer_len < sizeof(u->answer) - 1) {
            ssize_t n = read(fd, u->answer + u->answer_len, sizeof(u->answer) - 1 - u->answer_len);

            if (n <= 0)
                break;
            u->answer_len += (size_t)n;
        }
    }
    uv_close((uv_handle_t *)&u->check, upgrade_on_close);
    uv_close((uv_handle_t *)&u->out, upgrade_on_close);
    close(u->state_fd);
    u->state_fd = -1;
    if (u->sup->state != SUPERVISOR_RUNNING) {
        upgrade_refuse(u, "the supervisor is stopping");
        return;
    }
    verdict = upgrade_check_verdict(u, reason, sizeof(reason));
    if (verdict != NULL) {
        upgrade_refuse(u, verdict);
        return;
    }
    log_emit(LOG_INFO, "supervisor_upgrade_checked",
             json_pack("{s:s, s:s}", "binary", u->sup->self_path, "to", u->to_build_id));
    u->settle_until_ms = uv_now(u->sup->loop) + UPGRADE_SETTLE_MS;
    upgrade_on_settle(&u->timer);
}

int upgrade_start(struct upgrade *u, int client_fd, upgrade_refused_cb refused, void *arg, char *err,
                  size_t errsize)
{
    struct supervisor *sup = u->sup;
    uv_process_options_t options;
    uv_stdio_container_t stdio[4];
    char *args[5];
    const char *why = u->running ? "upgrade in progress" : upgrade_refusal(u);
    int rc;

    if (why == NULL && u->handles > 0)
        why = "the last dry run is still closing";
    if (why != NULL) {
        snprintf(err, errsize, "%s", why);
        log_emit(LOG_WARN, "supervisor_upgrade_refused", json_pack("{s:s, s:s}", "reason", why, "binary", sup->self_path));
        return 1;
    }
    u->state_fd = upgrade_write_state(u, -1, MFD_CLOEXEC, err, errsize);
    if (u->state_fd < 0) {
        log_emit(LOG_WARN, "supervisor_upgrade_refused", json_pack("{s:s, s:s}", "reason", err, "binary", sup->self_path));
        return 1;
    }
    u->running = 1;
    u->client_fd = client_fd;
    u->refused = refused;
    u->arg = arg;
    u->answer_len = 0;
    u->check_exited = 0;
    log_emit(LOG_INFO, "supervisor_upgrade_start", json_pack("{s:s, s:s}", "binary", sup->self_path, "from", VERONA_BUILD_ID));

    uv_pipe_init(sup->loop, &u->out, 0);
    u->out.data = u;
    u->check.data = u;
    memset(&options, 0, sizeof(options));
    args[0] = sup->self_path;
    args[1] = "serve";
    args[2] = "--takeover-check";
    args[3] = "3";
    args[4] = NULL;
    options.file = sup->self_path;
    options.args = args;
    options.exit_cb = upgrade_on_check_exit;
    stdio[0].flags = UV_IGNORE;
    stdio[1].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
    stdio[1].data.stream = (uv_stream_t *)&u->out;
    stdio[2].flags = UV_INHERIT_FD;
    stdio[2].data.fd = STDERR_FILENO;
    stdio[3].flags = UV_INHERIT_FD;
    stdio[3].data.fd = u->state_fd;
    options.stdio = stdio;
    options.stdio_count = 4;
    rc = uv_spawn(sup->loop, &u->check, &options);
    u->handles = 2;
    if (rc != 0) {
        uv_close((uv_handle_t *)&u->check, upgrade_on_close);
        uv_close((uv_handle_t *)&u->out, upgrade_on_close);
        snprintf(err, errsize, "cannot run %.200s: %s", sup->self_path, uv_strerror(rc));
        u->refused = NULL; /* answered by the return value */
        upgrade_refuse(u, err);
        return 1;
    }
    uv_read_start((uv_stream_t *)&u->out, upgrade_on_check_alloc, upgrade_on_check_read);
    uv_timer_start(&u->timer, upgrade_on_check_deadline, UPGRADE_CHECK_MS, 0);
    return 0;
}

void upgrade_cancel(struct upgrade *u, const char *why)
{
    if (!u->running)
        return;
    if (!u->check_exited && u->handles > 0) {
        /* Its exit refuses the upgrade: the supervisor no longer runs. */
        uv_process_kill(&u->check, SIGKILL);
        return;
    }
    upgrade_refuse(u, why);
}

void upgrade_fini(struct upgrade *u)
{
    if (!uv_is_closing((uv_handle_t *)&u->timer))
        uv_close((uv_handle_t *)&u->timer, NULL);
    if (u->state_fd >= 0)
        close(u->state_fd);
    u->state_fd = -1;
}
