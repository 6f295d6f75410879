/* tests/unit/test_hash_memory.c - Argon2's memory on huge pages
 * (worker/hash_memory.h): inside a begin/end pair a large anonymous
 * mapping lands on a 2 MiB boundary and works, with MAP_POPULATE too;
 * outside it, and for small or file mappings, mmap is the plain system
 * call; a hash inside the pair gives the same answers. (A no-op under
 * AddressSanitizer: `make check` runs these under UBSan as well.) */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../../worker/hash_memory.h"

#define MIB ((size_t)1 << 20)

static int aligned_2m(const void *p)
{
    return ((uintptr_t)p & (2 * MIB - 1)) == 0;
}

START_TEST(large_anonymous_maps_land_on_huge_page_boundaries)
{
    size_t len = 19 * MIB + 4096; /* not a multiple of 2 MiB, as Argon2's need not be */
    unsigned char *p;

    if (!hash_memory_enabled())
        return;
    for (int populate = 0; populate < 2; populate++) {
        hash_memory_begin();
        p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | (populate ? MAP_POPULATE : 0),
                 -1, 0);
        hash_memory_end();
        ck_assert(p != MAP_FAILED);
        ck_assert(aligned_2m(p));
        /* Fresh anonymous memory reads as zero and takes writes at both ends. */
        ck_assert_int_eq(p[0], 0);
        ck_assert_int_eq(p[len - 1], 0);
        memset(p, 0x5a, len);
        ck_assert_int_eq(p[len - 1], 0x5a);
        ck_assert_int_eq(munmap(p, len), 0);
    }
}
END_TEST

START_TEST(other_maps_are_left_alone)
{
    size_t small = 64 * 1024;
    unsigned long placed = hash_memory_placed();
    void *p;
    int fd;

    /* Outside a pair: nothing changes, even for a large map. */
    for (int i = 0; i < 8; i++) {
        p = mmap(NULL, 3 * MIB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        ck_assert(p != MAP_FAILED);
        ck_assert_int_eq(munmap(p, 3 * MIB), 0);
    }
    hash_memory_begin();
    p = mmap(NULL, small, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ck_assert(p != MAP_FAILED);
    ck_assert_int_eq(munmap(p, small), 0);
    /* A file mapping inside a pair is the file's. */
    fd = open("/proc/self/exe", O_RDONLY);
    ck_assert_int_ge(fd, 0);
    p = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, fd, 0);
    hash_memory_end();
    ck_assert(p != MAP_FAILED);
    ck_assert(memcmp(p, "\177ELF", 4) == 0);
    ck_assert_int_eq(munmap(p, 4096), 0);
    close(fd);
    /* Errors are the system call's. */
    hash_memory_begin();
    p = mmap(NULL, 4 * MIB, PROT_READ, MAP_PRIVATE, -1, 0); /* no MAP_ANONYMOUS, no file */
    ck_assert(p == MAP_FAILED);
    ck_assert_int_eq(errno, EBADF);
    /* Read-only, shared or huge-page-backed mappings are left as asked. */
    p = mmap(NULL, 4 * MIB, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ck_assert(p != MAP_FAILED);
    ck_assert_int_eq(munmap(p, 4 * MIB), 0);
    p = mmap(NULL, 4 * MIB, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    ck_assert(p != MAP_FAILED);
    ck_assert_int_eq(munmap(p, 4 * MIB), 0);
    hash_memory_end();
    ck_assert(hash_memory_placed() == placed); /* none of these was placed */
}
END_TEST

START_TEST(hashes_inside_a_pair_verify_as_before)
{
    char hash[crypto_pwhash_STRBYTES];

    unsigned long placed = hash_memory_placed();

    ck_assert_int_eq(crypto_pwhash_str(hash, "correct horse", 13, 1, 8 * MIB), 0);
    ck_assert(hash_memory_placed() == placed); /* outside a pair: untouched */
    hash_memory_begin();
    ck_assert_int_eq(crypto_pwhash_str_verify(hash, "correct horse", 13), 0);
    /* libsodium's own allocation reached the override (where it is on). */
    ck_assert(hash_memory_placed() == placed + (hash_memory_enabled() ? 1 : 0));
    ck_assert_int_eq(crypto_pwhash_str_verify(hash, "correct horsf", 13), -1);
    ck_assert_int_eq(crypto_pwhash_str(hash, "battery staple", 14, 1, 8 * MIB), 0);
    hash_memory_end();
    ck_assert_int_eq(crypto_pwhash_str_verify(hash, "battery staple", 14), 0);
}
END_TEST

Suite *hash_memory_suite(void)
{
    Suite *s = suite_create("hash_memory");
    TCase *tc = tcase_create("core");

    tcase_add_test(tc, large_anonymous_maps_land_on_huge_page_boundaries);
    tcase_add_test(tc, other_maps_are_left_alone);
    tcase_add_test(tc, hashes_inside_a_pair_verify_as_before);
    suite_add_tcase(s, tc);
    return s;
}
