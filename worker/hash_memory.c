/* worker/hash_memory.c - Argon2's working memory on huge pages
 * (worker/hash_memory.h says why).
 */
#include "hash_memory.h"

#include <errno.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

/* With 64-bit file offsets the headers rename mmap to mmap64, and
 * libsodium's calls (to mmap) would never reach the definition below. */
#if defined(_FILE_OFFSET_BITS) && _FILE_OFFSET_BITS == 64
#error "worker/hash_memory.c must be built without _FILE_OFFSET_BITS=64"
#endif

/* Sanitizers that intercept mmap themselves keep theirs. */
#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || __has_feature(memory_sanitizer) || \
    __has_feature(hwaddress_sanitizer)
#define HASH_MEMORY_OFF 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__) || defined(__SANITIZE_HWADDRESS__)
#define HASH_MEMORY_OFF 1
#endif

#ifndef HASH_MEMORY_OFF

#define HASH_MEMORY_HUGE ((size_t)2 << 20) /* x86-64 and arm64 (4 KiB base pages) */

static _Thread_local int hash_memory_active;
static _Thread_local unsigned long hash_memory_count;

void hash_memory_begin(void)
{
    hash_memory_active = 1;
}

void hash_memory_end(void)
{
    hash_memory_active = 0;
}

int hash_memory_enabled(void)
{
    return 1;
}

unsigned long hash_memory_placed(void)
{
    return hash_memory_count;
}

static void *hash_memory_sys_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    /* syscall() returns -1 with errno set on failure: MAP_FAILED. */
    return (void *)syscall(SYS_mmap, (long)addr, (long)len, (long)prot, (long)flags, (long)fd, (long)off);
}

static int hash_memory_sys_munmap(uintptr_t addr, size_t len)
{
    return (int)syscall(SYS_munmap, (long)addr, (long)len);
}

/* `len` bytes on a huge page boundary: map 2 MiB more, give back the
 * slack on both sides, advise the rest. MAP_POPULATE (Debian's libsodium
 * asks for it) would fault every small page in before the advice: the
 * pages are populated after it instead. */
static void *hash_memory_map_huge(size_t len, int prot, int flags)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t total = len + HASH_MEMORY_HUGE;
    uintptr_t base, start, end, limit;
    int saved;
    void *p = hash_memory_sys_mmap(NULL, total, prot, flags & ~MAP_POPULATE, -1, 0);

    if (p == MAP_FAILED)
        return p;
    base = (uintptr_t)p;
    start = (base + HASH_MEMORY_HUGE - 1) & ~(uintptr_t)(HASH_MEMORY_HUGE - 1);
    end = (start + len + page - 1) & ~(uintptr_t)(page - 1);
    limit = base + total;
    /* Trimming can fail at vm.max_map_count (a split needs a new area):
     * then nothing of this try stays mapped, and the plain call serves. */
    if (start > base && hash_memory_sys_munmap(base, start - base) != 0) {
        (void)hash_memory_sys_munmap(base, total);
        return hash_memory_sys_mmap(NULL, len, prot, flags, -1, 0);
    }
    if (limit > end && hash_memory_sys_munmap(end, limit - end) != 0) {
        (void)hash_memory_sys_munmap(start, limit - start);
        return hash_memory_sys_mmap(NULL, len, prot, flags, -1, 0);
    }
    /* Advice refused (no THP in this kernel, before Linux 5.14 for the
     * populate): the region works on small pages, or faults on touch. */
    saved = errno;
    (void)madvise((void *)start, len, MADV_HUGEPAGE);
#ifdef MADV_POPULATE_WRITE
    if (flags & MAP_POPULATE)
        (void)madvise((void *)start, len, MADV_POPULATE_WRITE);
#endif
    errno = saved;
    hash_memory_count++;
    return (void *)start;
}

/* The one mmap of the process (see hash_memory.h). Only a plain private
 * read-write anonymous mapping, as Argon2's, is placed. */
__attribute__((visibility("default"))) void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    int plain = flags & ~(MAP_POPULATE | MAP_NORESERVE);

    if (hash_memory_active && addr == NULL && fd == -1 && off == 0 && plain == (MAP_PRIVATE | MAP_ANONYMOUS) &&
        prot == (PROT_READ | PROT_WRITE) && len >= HASH_MEMORY_HUGE && len <= SIZE_MAX / 2)
        return hash_memory_map_huge(len, prot, flags);
    return hash_memory_sys_mmap(addr, len, prot, flags, fd, off);
}

#else

void hash_memory_begin(void)
{
}

void hash_memory_end(void)
{
}

int hash_memory_enabled(void)
{
    return 0;
}

unsigned long hash_memory_placed(void)
{
    return 0;
}

#endif
