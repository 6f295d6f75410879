/* tests/fuzz/fuzz_metrics.c - libFuzzer target for the request head of
 * metrics_listen (supervisor/metrics_request.c). Any bytes, fed whole and
 * then as they might arrive (in two reads), must give "more to come" only
 * while the head is open and under 8 KiB, and otherwise one of the
 * documented answers, the same for both; no crash, no undefined
 * behaviour, no read past what arrived. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../supervisor/metrics_request.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(const struct metrics_request *req, int rc, size_t size)
{
    if (rc == 0) {
        if (size >= METRICS_REQUEST_MAX)
            abort(); /* a full buffer must be answered */
        return;
    }
    if (rc != 1 || req->reason == NULL)
        abort();
    switch (req->status) {
    case 200:
        if (req->page != METRICS_PAGE_METRICS && req->page != METRICS_PAGE_STATUS)
            abort();
        break;
    case 400:
    case 404:
    case 405:
    case 431:
        if (req->message == NULL || req->head)
            abort();
        break;
    default:
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct metrics_request whole, part;
    char *copy;
    int rc, rc_part;
    size_t cut;

    if (size > METRICS_REQUEST_MAX)
        size = METRICS_REQUEST_MAX; /* the listener reads no more */
    /* An exact-size copy, so ASan sees any read past the bytes received. */
    copy = malloc(size ? size : 1);
    if (copy == NULL)
        return 0;
    memcpy(copy, data, size);
    rc = metrics_request_parse(copy, size, &whole);
    check(&whole, rc, size);
    /* The first read's answer, if it had one, is the one given. */
    cut = size / 2;
    rc_part = metrics_request_parse(copy, cut, &part);
    check(&part, rc_part, cut);
    if (rc_part == 1 && (rc != 1 || part.status != whole.status || part.head != whole.head || part.page != whole.page))
        abort();
    free(copy);
    return 0;
}
