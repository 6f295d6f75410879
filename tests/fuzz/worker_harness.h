/* tests/fuzz/worker_harness.h - a real verona-worker inside a libFuzzer
 * process, for the HTTP and JSON targets: worker/main.c's worker_setup
 * with every module (http.c, routes.c, login.c, account.c, auth.c, db.c,
 * ...) on a libuv loop, listening on 127.0.0.1, its database an address
 * where nothing listens (so every query fails at once: 503). Each input
 * goes over a real TCP connection; the worker's answers are read until it
 * closes the connection. */
#ifndef VERONA_TESTS_FUZZ_WORKER_HARNESS_H
#define VERONA_TESTS_FUZZ_WORKER_HARNESS_H

#include <stddef.h>

/* Sets up the worker once (aborts on failure). */
void harness_worker_once(void);

/* Sends `data` on a new connection, half-closes it and reads every answer
 * until the worker closes. Aborts when the worker does not close within
 * 5 s of the client's end, or when an answer is a 500 (an internal error
 * has no business answering a client's bytes). Returns the bytes of
 * answer (their count); the first `outsize` are in `out` if not NULL. */
size_t harness_worker_exchange(const void *data, size_t size, char *out, size_t outsize);

#endif
