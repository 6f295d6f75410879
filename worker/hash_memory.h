/* worker/hash_memory.h - Argon2's working memory on huge pages.
 *
 * libsodium maps each hash's memory (argon2_memlimit_kib: 19 MiB by
 * default) with its own mmap() call and reads it at random. On 4 KiB pages
 * that is some 4,900 page faults a hash, each zeroing a page, and a TLB
 * miss on nearly every block it reads: on the 2-core development machine
 * 7 of a login's 17 ms of CPU were the kernel's. A region that asks for
 * transparent huge pages (madvise(MADV_HUGEPAGE), as Debian's default
 * "madvise" mode wants) before its first touch takes ten faults and few
 * TLB misses: the same verify runs in about 10 ms instead of 18.
 *
 * libsodium does not ask, so the worker defines mmap() itself (the
 * executable's definition is the one shared libraries bind to). Outside a
 * hash_memory_begin() / hash_memory_end() pair on the calling thread it is
 * exactly the system call; inside, an anonymous mapping of 2 MiB or more
 * is placed on a 2 MiB boundary and advised to use huge pages. Nothing is
 * kept: libsodium wipes and unmaps the region when the hash ends. Under
 * the sanitizers that intercept mmap themselves (address, thread,
 * memory) both calls do nothing.
 */
#ifndef VERONA_WORKER_HASH_MEMORY_H
#define VERONA_WORKER_HASH_MEMORY_H

/* Around one crypto_pwhash call on this thread. */
void hash_memory_begin(void);
void hash_memory_end(void);

/* 1 when this build places hash memory on huge pages (not under ASan). */
int hash_memory_enabled(void);

/* How many mappings this thread has placed so far (for tests: proves
 * that libsodium's allocation reaches the override). */
unsigned long hash_memory_placed(void);

#endif
