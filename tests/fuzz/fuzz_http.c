/* tests/fuzz/fuzz_http.c - libFuzzer target for a worker's HTTP request
 * handling through routing: raw bytes on a real connection to the real
 * worker (tests/fuzz/worker_harness.c), parsed by http.c's callbacks and
 * dispatched by routes.c to every handler. Whatever the bytes, the worker
 * answers or refuses, closes the connection after the client's end, frees
 * it, and never answers 500; no crash, leak or undefined behaviour. */
#include <stddef.h>
#include <stdint.h>

#include "worker_harness.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    harness_worker_exchange(data, size, NULL, 0);
    return 0;
}
