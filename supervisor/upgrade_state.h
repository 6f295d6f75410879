/* supervisor/upgrade_state.h - the supervisor's state as `ctl upgrade`
 * hands it to the next image of the supervisor (same pid, after exec):
 * one JSON document, versioned, that names the descriptors which stay
 * open across the exec (the listening, admin and metrics sockets, every
 * worker's control socket, the held builds, the asking ctl's socket).
 *
 * The old image writes it (upgrade_state_dump); the new one reads it
 * whole before it touches anything (upgrade_state_parse), first in a dry
 * run on a copy, through a pipe, then for real (supervisor/takeover.c).
 */
#ifndef VERONA_SUPERVISOR_UPGRADE_STATE_H
#define VERONA_SUPERVISOR_UPGRADE_STATE_H

#include <jansson.h>
#include <limits.h>
#include <stdint.h>
#include <time.h>

#include "../proto/config.h"
#include "pool.h"

/* Bumped whenever the document changes shape: a build refuses a version
 * it was not built for (never a half takeover). */
#define UPGRADE_STATE_VERSION 1

struct supervisor;

struct upgrade_slot {
    enum pool_slot_state state;
    int failures;
    uint64_t restarts;
    uint64_t backoff_left_ms;
};

/* A parsed state: what the new image rebuilds the supervisor from. */
struct upgrade_state {
    char build_id[CONTROL_BUILD_ID_MAX]; /* of the image that wrote it */
    char self_path[PATH_MAX];            /* the `verona` binary to exec at the next upgrade */
    char config_path[PATH_MAX];
    char admin_path[PATH_MAX];
    struct config cfg;                   /* the supervisor's running settings */
    time_t started_at;
    uint64_t started_ms;
    unsigned upgrades;                   /* before this one */
    int file_workers;
    int listen_fd, admin_fd, metrics_fd, client_fd; /* client: the asking ctl, or -1 */
    int gate;
    int build_count;
    struct build **builds;               /* owned references */
    int build, good;                     /* indexes: what empty slots get; the last good build */
    int target;
    uint64_t restarts[REASON_COUNT];
    struct control_counters gone;
    struct upgrade_slot slots[POOL_SLOTS_MAX];
    struct rollout rollout;              /* at rest (no rollout runs): names and counts */
    int worker_count;
    struct pool_worker **workers;        /* owned until adopted (set to NULL then) */
    int *worker_fds;                     /* their control sockets */
};

/* The version this build reads and writes (test builds:
 * VERONA_TEST_STATE_VERSION pretends another). */
int upgrade_state_version(void);

/* The running supervisor's state; `client_fd` is the asking ctl's socket
 * or -1. A new reference, or NULL with a message. */
json_t *upgrade_state_dump(struct supervisor *sup, int client_fd, char *err, size_t errsize);

/* Reads a whole document: 0, or -1 with a message that says what is
 * wrong (the version first). `dry`: a dry run, which holds none of the
 * descriptors (builds get fd -1). Release with upgrade_state_fini(). */
int upgrade_state_parse(const char *text, size_t len, int dry, struct upgrade_state *st, char *err,
                        size_t errsize);

void upgrade_state_fini(struct upgrade_state *st);

#endif
