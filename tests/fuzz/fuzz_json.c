/* tests/fuzz/fuzz_json.c - libFuzzer target for JSON body extraction and
 * validation: the bytes after the first become the body of a well-formed
 * POST to /v1/login, /v1/users or /v1/password (the first byte picks),
 * sent to the real worker (tests/fuzz/worker_harness.c). Every body gets
 * one answer, and only one the API documents for it: 400 with an error
 * code, 401 (no session for the password change), 429, or 503 (the
 * harness's database is never up); never 500, never a crash. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "worker_harness.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const paths[] = { "/v1/login", "/v1/users", "/v1/password" };
    static char request[20000];
    char answer[512];
    const char *path;
    int head, status;

    if (size < 1 || size > 16384)
        return 0; /* the body limit is 16 KiB (over it: 413, the HTTP target's business) */
    path = paths[data[0] % 3];
    head = snprintf(request, sizeof(request),
                    "POST %s HTTP/1.1\r\nHost: fuzz\r\nContent-Type: application/json\r\n%s"
                    "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                    path, data[0] % 3 == 2 ? "Authorization: Bearer AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\r\n" : "",
                    size - 1);
    memcpy(request + head, data + 1, size - 1);
    harness_worker_exchange(request, (size_t)head + size - 1, answer, sizeof(answer));
    if (sscanf(answer, "HTTP/1.1 %d ", &status) != 1) {
        fprintf(stderr, "fuzz_json: no answer to %s\n", path);
        abort();
    }
    if (status != 400 && status != 401 && status != 429 && status != 503) {
        fprintf(stderr, "fuzz_json: %s answered %d:\n%s\n", path, status, answer);
        abort();
    }
    return 0;
}
