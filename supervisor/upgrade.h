/* supervisor/upgrade.h - `verona ctl upgrade` and SIGUSR2: the running
 * supervisor replaces itself with the `verona` binary now on disk, in
 * place (the same pid: workers stay its children, systemd's main pid
 * does not change), its workers untouched (SPEC.md section 6).
 *
 *   1. Refused while stopping, during a rollout, while a worker starts,
 *      or while another upgrade runs (SPEC 10.12).
 *   2. The dry run: the new binary reads a copy of the state
 *      (supervisor/upgrade_state.h) from a memfd, `verona serve
 *      --takeover-check 3`, and must answer "ok BUILD_ID" on its stdout
 *      within UPGRADE_CHECK_MS. A binary that is missing, cannot be
 *      executed, crashes, or cannot read the state is refused with the
 *      reason; nothing has changed.
 *   3. The hand-over: once no worker starts and no control message is
 *      half written, the state is written again, the descriptors it names
 *      lose close-on-exec, and the supervisor execs `verona serve
 *      --takeover FD` (supervisor/takeover.c). The asking ctl gets its
 *      answer from the new image.
 */
#ifndef VERONA_SUPERVISOR_UPGRADE_H
#define VERONA_SUPERVISOR_UPGRADE_H

#include <stddef.h>
#include <uv.h>

#include "../proto/control.h"

#define UPGRADE_CHECK_MS 20000  /* the dry run's deadline */
#define UPGRADE_SETTLE_MS 10000 /* the wait for starting workers and queued writes before the exec */

struct supervisor;

/* Told when an upgrade is refused after it started (code 1, reason). */
typedef void (*upgrade_refused_cb)(void *arg, const char *reason);

struct upgrade {
    struct supervisor *sup;
    int running;                 /* a dry run or the settling before the exec */
    uv_process_t check;
    uv_pipe_t out;               /* the dry run's stdout */
    uv_timer_t timer;            /* the dry run's deadline, then the settling's polls */
    int handles;                 /* check + out open */
    int check_exited;
    int64_t check_status;
    int check_signal;
    char answer[256];            /* what the dry run said */
    size_t answer_len;
    int state_fd;                /* the dry run's copy, or -1 */
    uint64_t settle_until_ms;
    char to_build_id[CONTROL_BUILD_ID_MAX];
    int client_fd;               /* the asking ctl's socket, or -1 (SIGUSR2) */
    upgrade_refused_cb refused;
    void *arg;
};

void upgrade_init(struct upgrade *u, struct supervisor *sup);

/* Starts an upgrade. `client_fd` (or -1) is answered by the new image;
 * `refused` is called if it is refused later. Returns 0 when started, or
 * 1 with the reason in err when refused now (logged either way). */
int upgrade_start(struct upgrade *u, int client_fd, upgrade_refused_cb refused, void *arg, char *err,
                  size_t errsize);

/* 1 while an upgrade runs (reload, scale and recycle wait for it). */
int upgrade_running(const struct upgrade *u);

/* The supervisor stops: an upgrade that runs is given up. */
void upgrade_cancel(struct upgrade *u, const char *why);

/* Lets through the signals an upgrade held back across its exec; called
 * once the supervisor handles them (a no-op at a first start). */
void upgrade_signals_unblock(void);

/* Closes its handles (at the supervisor's end). */
void upgrade_fini(struct upgrade *u);

#endif
