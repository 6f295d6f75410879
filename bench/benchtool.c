/* bench/benchtool.c - helpers for `make bench`:
 *   benchtool ceiling THREADS SECONDS OPS MEM_KIB [huge]
 *       Argon2id verify rate of THREADS threads calling
 *       crypto_pwhash_str_verify in a loop (the machine's login ceiling),
 *       and the time of one verify; prints "verifies_per_s single_ms".
 *       With "huge", each verify's memory is on huge pages, as the
 *       worker's are (worker/hash_memory.h).
 *   benchtool hash PASSWORD OPS MEM_KIB    prints one crypto_pwhash_str
 *   benchtool tokens N                     prints N lines "token<TAB>hex(BLAKE2b-256(token))"
 */
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../worker/hash_memory.h"

static char bench_hash[crypto_pwhash_STRBYTES];
static double bench_deadline;
static int bench_huge;
static unsigned long long bench_counts[64];

static double bench_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *bench_verify_loop(void *arg)
{
    unsigned long long *count = arg;

    while (bench_now() < bench_deadline) {
        if (bench_huge)
            hash_memory_begin();
        if (crypto_pwhash_str_verify(bench_hash, "bench password 1", 16) != 0)
            abort();
        hash_memory_end();
        (*count)++;
    }
    return NULL;
}

int main(int argc, char **argv)
{
    if (sodium_init() < 0)
        return 1;
    if ((argc == 6 || (argc == 7 && strcmp(argv[6], "huge") == 0)) && strcmp(argv[1], "ceiling") == 0) {
        int threads = atoi(argv[2]);
        double seconds = atof(argv[3]), start, single;
        unsigned long long ops = strtoull(argv[4], NULL, 10), total = 0;
        size_t mem = strtoull(argv[5], NULL, 10) * 1024;
        pthread_t tids[64];

        bench_huge = argc == 7;
        if (threads < 1 || threads > 64 || crypto_pwhash_str(bench_hash, "bench password 1", 16, ops, mem) != 0)
            return 2;
        start = bench_now();
        for (int i = 0; i < 5; i++) {
            if (bench_huge)
                hash_memory_begin();
            if (crypto_pwhash_str_verify(bench_hash, "bench password 1", 16) != 0)
                return 1;
            hash_memory_end();
        }
        single = (bench_now() - start) / 5 * 1000;
        bench_deadline = bench_now() + seconds;
        start = bench_now();
        for (int i = 0; i < threads; i++)
            pthread_create(&tids[i], NULL, bench_verify_loop, &bench_counts[i]);
        for (int i = 0; i < threads; i++) {
            pthread_join(tids[i], NULL);
            total += bench_counts[i];
        }
        printf("%.1f %.2f\n", (double)total / (bench_now() - start), single);
        return 0;
    }
    if (argc == 5 && strcmp(argv[1], "hash") == 0) {
        char out[crypto_pwhash_STRBYTES];
        if (crypto_pwhash_str(out, argv[2], strlen(argv[2]), strtoull(argv[3], NULL, 10),
                              strtoull(argv[4], NULL, 10) * 1024) != 0)
            return 1;
        printf("%s\n", out);
        return 0;
    }
    if (argc == 3 && strcmp(argv[1], "tokens") == 0) {
        long n = atol(argv[2]);
        for (long i = 0; i < n; i++) {
            unsigned char raw[32], hash[32];
            char token[44], hex[65];
            randombytes_buf(raw, sizeof(raw));
            sodium_bin2base64(token, sizeof(token), raw, sizeof(raw), sodium_base64_VARIANT_URLSAFE_NO_PADDING);
            crypto_generichash(hash, sizeof(hash), (unsigned char *)token, strlen(token), NULL, 0);
            sodium_bin2hex(hex, sizeof(hex), hash, sizeof(hash));
            printf("%s\t%s\n", token, hex);
        }
        return 0;
    }
    fprintf(stderr, "usage: benchtool ceiling THREADS SECONDS OPS MEM_KIB | hash PASSWORD OPS MEM_KIB | tokens N\n");
    return 2;
}
