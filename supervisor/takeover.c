/* supervisor/takeover.c - the new image's half of `ctl upgrade`
 * (supervisor/upgrade.h): `verona serve --takeover-check FD` (the dry
 * run: read the state, say "ok BUILD_ID" or why not) and `verona serve
 * --takeover FD` (the same pid after the exec: rebuild the supervisor
 * from the state, adopt the sockets and the workers, carry on).
 */
#include "takeover.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../proto/config.h"
#include "../proto/log.h"
#include "supervisor.h"
#include "upgrade_state.h"

#define TAKEOVER_STATE_MAX (64L << 20)

/* The whole state from descriptor `fd_text`, from its start; NULL with a message. */
static char *takeover_read(const char *fd_text, size_t *len, int *fd_out, char *err, size_t errsize)
{
    long fd;
    struct stat st;
    char *text;
    size_t done = 0;

    if (config_parse_long(fd_text, 0, 1 << 20, &fd) != 0 || fstat((int)fd, &st) != 0 || st.st_size <= 0 ||
        st.st_size > TAKEOVER_STATE_MAX) {
        snprintf(err, errsize, "no state on descriptor '%.16s'", fd_text);
        return NULL;
    }
    text = malloc((size_t)st.st_size + 1);
    if (text == NULL) {
        snprintf(err, errsize, "out of memory");
        return NULL;
    }
    while (done < (size_t)st.st_size) {
        ssize_t n = pread((int)fd, text + done, (size_t)st.st_size - done, (off_t)done);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            snprintf(err, errsize, "reading the state: %s", n < 0 ? strerror(errno) : "cut short");
            free(text);
            return NULL;
        }
        done += (size_t)n;
    }
    text[done] = '\0';
    *len = done;
    *fd_out = (int)fd;
    return text;
}

int takeover_check_main(const char *fd_text)
{
    struct upgrade_state st;
    char err[CONFIG_ERROR_MAX + 128];
    size_t len;
    int fd;
    char *text = takeover_read(fd_text, &len, &fd, err, sizeof(err));

    if (text == NULL || upgrade_state_parse(text, len, 1, &st, err, sizeof(err)) != 0) {
        printf("refused: %s\n", err);
        free(text);
        return 1;
    }
    printf("ok %s\n", VERONA_BUILD_ID);
    upgrade_state_fini(&st);
    free(text);
    return 0;
}

static void takeover_cloexec(int fd)
{
    int flags = fcntl(fd, F_GETFD);

    if (flags >= 0)
        fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
}

int takeover_load(struct supervisor *sup, const char *fd_text, char *err, size_t errsize)
{
    struct upgrade_state st;
    size_t len;
    int fd;
    char *text = takeover_read(fd_text, &len, &fd, err, errsize);
    uint64_t now;

    if (text == NULL)
        return -1;
    close(fd);
    if (upgrade_state_parse(text, len, 0, &st, err, errsize) != 0) {
        free(text);
        return -1;
    }
    free(text);
    /* Nothing handed over leaks into the workers started from now on. */
    takeover_cloexec(st.listen_fd);
    takeover_cloexec(st.admin_fd);
    takeover_cloexec(st.metrics_fd);
    if (st.client_fd >= 0)
        takeover_cloexec(st.client_fd);
    for (int i = 0; i < st.worker_count; i++)
        takeover_cloexec(st.worker_fds[i]);

    sup->cfg = st.cfg;
    snprintf(sup->config_path, sizeof(sup->config_path), "%s", st.config_path);
    snprintf(sup->self_path, sizeof(sup->self_path), "%s", st.self_path);
    snprintf(sup->upgraded_from, sizeof(sup->upgraded_from), "%s", st.build_id);
    sup->started_at = st.started_at;
    sup->started_ms = st.started_ms;
    sup->upgrades = st.upgrades + 1;
    sup->upgraded_at = time(NULL);
    sup->file_workers = st.file_workers;
    sup->listen_fd = st.listen_fd;
    sup->takeover_client_fd = st.client_fd;
    sup->loop = uv_default_loop();
    if (admin_adopt(&sup->admin, sup, st.admin_path, st.admin_fd, err, errsize) != 0 ||
        metrics_adopt(&sup->metrics, sup, st.metrics_fd, err, errsize) != 0)
        goto fail;
    build_ref(st.builds[st.build]); /* pool_init takes it */
    if (pool_init(&sup->pool, sup, st.builds[st.build], err, errsize) != 0)
        goto fail;
    pool_set_gate(&sup->pool, st.gate); /* and removes the one pool_init made */
    build_unref(sup->pool.good);
    sup->pool.good = st.builds[st.good];
    build_ref(sup->pool.good);
    sup->pool.target = st.target;
    memcpy(sup->pool.restarts, st.restarts, sizeof(st.restarts));
    sup->pool.gone = st.gone;
    sup->pool.rollout = st.rollout;
    st.rollout.rejected_settings = NULL; /* the pool's now */
    for (int s = 0; s < POOL_SLOTS_MAX; s++)
        pool_slot_restore(&sup->pool, s, st.slots[s].state, st.slots[s].failures, st.slots[s].restarts,
                          st.slots[s].backoff_left_ms);
    now = uv_now(sup->loop);
    for (int i = 0; i < st.worker_count; i++) {
        struct pool_worker *w = st.workers[i];

        st.workers[i] = NULL; /* the pool's from here, even when the adoption fails */
        /* The hand-over's pause is ours, not the worker's: its pong clock restarts. */
        w->last_pong_ms = now;
        if (pool_worker_adopt(&sup->pool, w, st.worker_fds[i], err, errsize) != 0)
            goto fail;
    }
    upgrade_state_fini(&st);
    return 0;
fail:
    upgrade_state_fini(&st);
    return -1;
}

void takeover_done(struct supervisor *sup)
{
    char answer[256];
    int n;

    log_emit(LOG_INFO, "supervisor_upgrade",
             json_pack("{s:s, s:s, s:i, s:i}", "from", sup->upgraded_from, "to", VERONA_BUILD_ID, "upgrades",
                       (int)sup->upgrades, "workers", pool_live_count(&sup->pool)));
    if (sup->takeover_client_fd < 0)
        return;
    n = snprintf(answer, sizeof(answer), "0\nupgraded: build %s -> %s, pid %d, %d workers kept, upgrade %u\n",
                 sup->upgraded_from, VERONA_BUILD_ID, (int)getpid(), pool_live_count(&sup->pool), sup->upgrades);
    /* One short answer on a fresh socket; a ctl that left gets nothing (no SIGPIPE). */
    if (send(sup->takeover_client_fd, answer, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT) != n)
        log_emit(LOG_WARN, "supervisor_upgrade_answer_lost", json_pack("{s:s}", "error", strerror(errno)));
    close(sup->takeover_client_fd);
    sup->takeover_client_fd = -1;
}
