/* supervisor/build.h - a build: one worker binary held open by the
 * supervisor (so deleting or overwriting the file cannot lose it) and the
 * settings its workers get. Workers are spawned from the open descriptor
 * (/proc/self/fd/N), never from the path. Reference counted: the pool's
 * current and last good builds and every worker hold a reference.
 */
#ifndef VERONA_SUPERVISOR_BUILD_H
#define VERONA_SUPERVISOR_BUILD_H

#include <limits.h>

#include "../proto/config.h"

struct build {
    int refs;
    int fd;                 /* the binary; inherited by workers, harmless there */
    char path[PATH_MAX];    /* where it was opened from */
    char exec_path[32];     /* /proc/self/fd/N */
    char sha256[65];        /* of the content, hex */
    struct config cfg;      /* the settings its workers get */
};

/* Opens the worker binary `cfg` names (worker_binary, or verona-worker
 * beside verona) and hashes it. Returns a build with one reference, or
 * NULL with a message in err. */
struct build *build_open(const struct config *cfg, char *err, size_t errsize);

void build_ref(struct build *build);
void build_unref(struct build *build);

/* 1 when the two builds would make the same workers (binary and settings). */
int build_same(const struct build *a, const struct build *b);

#endif
