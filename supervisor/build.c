/* supervisor/build.c - worker binaries held open (supervisor/build.h). */
#include "build.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int build_locate(const struct config *cfg, char *path, size_t size, char *err, size_t errsize)
{
    char self[2048];
    ssize_t len;
    char *slash;

    if (cfg->worker_binary[0] != '\0') {
        snprintf(path, size, "%s", cfg->worker_binary);
        return 0;
    }
    len = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (len <= 0) {
        snprintf(err, errsize, "cannot find my own path to locate verona-worker");
        return -1;
    }
    self[len] = '\0';
    slash = strrchr(self, '/');
    if (slash != NULL)
        *slash = '\0';
    snprintf(path, size, "%s/verona-worker", self);
    return 0;
}

static int build_hash(int fd, char *hex, size_t size)
{
    crypto_hash_sha256_state st;
    unsigned char digest[crypto_hash_sha256_BYTES], buf[65536];
    off_t offset = 0;
    ssize_t n;

    crypto_hash_sha256_init(&st);
    while ((n = pread(fd, buf, sizeof(buf), offset)) > 0) {
        crypto_hash_sha256_update(&st, buf, (unsigned long long)n);
        offset += n;
    }
    if (n < 0)
        return -1;
    crypto_hash_sha256_final(&st, digest);
    sodium_bin2hex(hex, size, digest, sizeof(digest));
    return 0;
}

struct build *build_open(const struct config *cfg, char *err, size_t errsize)
{
    struct build *build = calloc(1, sizeof(*build));
    struct stat st;

    if (build == NULL) {
        snprintf(err, errsize, "out of memory");
        return NULL;
    }
    build->fd = -1;
    if (build_locate(cfg, build->path, sizeof(build->path), err, errsize) != 0)
        goto fail;
    if (access(build->path, X_OK) != 0) {
        char where[PATH_MAX + 16];
        int e = errno;

        snprintf(err, errsize, "%sworker_binary %.200s: %s",
                 config_where(cfg, "worker_binary", NULL, where, sizeof(where)), build->path, strerror(e));
        goto fail;
    }
    /* Not close-on-exec: a #! script build needs /proc/self/fd/N to stay
     * open for its interpreter. Workers inherit it; it costs them nothing. */
    build->fd = open(build->path, O_RDONLY);
    if (build->fd < 0 || fstat(build->fd, &st) != 0) {
        snprintf(err, errsize, "worker_binary %.200s: %s", build->path, strerror(errno));
        goto fail;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(err, errsize, "worker_binary %.200s: not a regular file", build->path);
        goto fail;
    }
    if (build_hash(build->fd, build->sha256, sizeof(build->sha256)) != 0) {
        snprintf(err, errsize, "worker_binary %.200s: read failed: %s", build->path, strerror(errno));
        goto fail;
    }
    snprintf(build->exec_path, sizeof(build->exec_path), "/proc/self/fd/%d", build->fd);
    build->cfg = *cfg;
    build->refs = 1;
    return build;
fail:
    if (build->fd >= 0)
        close(build->fd);
    free(build);
    return NULL;
}

void build_ref(struct build *build)
{
    build->refs++;
}

void build_unref(struct build *build)
{
    if (build == NULL || --build->refs > 0)
        return;
    close(build->fd);
    free(build);
}

int build_same(const struct build *a, const struct build *b)
{
    char *ra, *rb;
    int same;

    if (strcmp(a->sha256, b->sha256) != 0)
        return 0;
    ra = config_render(&a->cfg);
    rb = config_render(&b->cfg);
    same = ra != NULL && rb != NULL && strcmp(ra, rb) == 0;
    free(ra);
    free(rb);
    return same;
}
