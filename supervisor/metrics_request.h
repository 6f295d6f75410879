/* supervisor/metrics_request.h - the request head of metrics_listen
 * (/metrics and the status page at /),
 * parsed apart from the listener so that it can be tested and fuzzed
 * alone (tests/fuzz/fuzz_metrics.c). One request a connection; only the
 * request line matters.
 */
#ifndef VERONA_SUPERVISOR_METRICS_REQUEST_H
#define VERONA_SUPERVISOR_METRICS_REQUEST_H

#include <stddef.h>

#define METRICS_REQUEST_MAX 8192 /* bytes of request head */

enum metrics_page { METRICS_PAGE_METRICS, METRICS_PAGE_STATUS };

struct metrics_request {
    int status;          /* the answer's HTTP status; 200: serve `page` */
    enum metrics_page page; /* /metrics, or / (the status page) */
    const char *reason;  /* its reason phrase */
    const char *message; /* the plain-text body of a refusal */
    int head;            /* HEAD: headers only */
};

/* Looks at the `len` bytes received so far (NULs and all). Returns 0
 * while the head is incomplete and under METRICS_REQUEST_MAX, else 1
 * with `req` filled: 200 for GET or HEAD of /metrics or / (the status
 * page; a query string is ignored), 400 malformed, 404 another path, 405
 * another method, 431 a head over the limit. */
int metrics_request_parse(const char *in, size_t len, struct metrics_request *req);

#endif
