/* worker/hash_memory.c - Argon2's working memory on huge pages
 * (worker/hash_memory.h says why).
 */
#include "hash_memory.h"

#include <stdint.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HASH_MEMORY_OFF 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define HASH_MEMORY_OFF 1
#endif

#ifndef HASH_MEMORY_OFF

#define HASH_MEMORY_HUGE ((size_t)2 << 20) /* x86-64 and arm64 (4 KiB base pages) */

static _Thread_local int hash_memory_active;

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

static void *hash_memory_sys_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    /* syscall() returns -1 with errno set on failure: MAP_FAILED. */
    return (void *)syscall(SYS_mmap, addr, len, prot, flags, fd, off);
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
    void *p = hash_memory_sys_mmap(NULL, total, prot, flags & ~MAP_POPULATE, -1, 0);

    if (p == MAP_FAILED)
        return p;
    base = (uintptr_t)p;
    start = (base + HASH_MEMORY_HUGE - 1) & ~(uintptr_t)(HASH_MEMORY_HUGE - 1);
    end = (start + len + page - 1) & ~(uintptr_t)(page - 1);
    limit = base + total;
    if (start > base)
        (void)syscall(SYS_munmap, base, start - base);
    if (limit > end)
        (void)syscall(SYS_munmap, end, limit - end);
    /* Refused (no THP in this kernel): the region works on small pages. */
    (void)madvise((void *)start, len, MADV_HUGEPAGE);
#ifdef MADV_POPULATE_WRITE
    if (flags & MAP_POPULATE)
        (void)madvise((void *)start, len, MADV_POPULATE_WRITE); /* Linux 5.14; else faults on touch */
#endif
    return (void *)start;
}

/* The one mmap of the process (see hash_memory.h). */
void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    if (hash_memory_active && addr == NULL && fd == -1 && off == 0 && (flags & MAP_ANONYMOUS) &&
        (flags & (MAP_FIXED | MAP_SHARED)) == 0 && len >= HASH_MEMORY_HUGE && len <= SIZE_MAX / 2)
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

#endif
