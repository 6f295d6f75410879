/* worker/http_write.c - the response writer (worker/http_internal.h):
 * an answer's head, the bodies of the answers the server gives itself,
 * and writing pieces to a socket without a copy when it takes them. It
 * knows nothing of connections: a queued write reports its end through
 * the callback it was given.
 */
#include "http_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct http_write {
    uv_write_t req;
    http_written_cb done;
    void *arg;
    int close_after;
    char data[];
};

static void http_write_on_done(uv_write_t *w, int status)
{
    struct http_write *hw = (struct http_write *)w;

    hw->done(hw->arg, status, hw->close_after);
    free(hw);
}

/* Straight to the socket when it takes them all (the usual case: no
 * allocation, no copy, no write request, no change to the loop's epoll
 * set), else what is left as one buffer (one allocation, one copy). */
int http_write(uv_stream_t *stream, const uv_buf_t *parts, int count, int close_after, http_written_cb done,
               void *arg)
{
    struct http_write *hw;
    uv_buf_t buf;
    size_t len = 0, at = 0, skip = 0;

    for (int i = 0; i < count; i++)
        len += parts[i].len;
    if (!close_after) {
        int n = uv_try_write(stream, parts, (unsigned)count);

        if (n > 0 && (size_t)n == len)
            return 0;
        if (n > 0)
            skip = (size_t)n; /* the socket is full: queue the rest */
    }
    hw = malloc(sizeof(*hw) + (len - skip));
    if (hw == NULL)
        return -ENOMEM;
    for (int i = 0; i < count; i++) {
        size_t from = skip > at ? skip - at : 0;

        if (parts[i].len > from)
            memcpy(hw->data + (at + from - skip), parts[i].base + from, parts[i].len - from);
        at += parts[i].len;
    }
    len -= skip;
    hw->done = done;
    hw->arg = arg;
    hw->close_after = close_after;
    buf = uv_buf_init(hw->data, (unsigned)len);
    if (uv_write(&hw->req, stream, &buf, 1, http_write_on_done) != 0) {
        free(hw);
        return -EPIPE;
    }
    return 1;
}

int http_response_head(char *head, size_t size, int status, size_t body_len, int keep_alive)
{
    char length[48] = "";
    int n;

    /* A 204 has no body and no Content-Length (RFC 9110, 8.6). */
    if (status != 204)
        snprintf(length, sizeof(length), "Content-Length: %zu\r\n", body_len);
    n = snprintf(head, size,
                 "HTTP/1.1 %d %s\r\n"
                 "%s"
                 "%s"
                 "%s"
                 "Cache-Control: no-store\r\n"
                 "\r\n",
                 status, http_status_text(status), length,
                 status == 204 || body_len == 0 ? "" : "Content-Type: application/json\r\n",
                 keep_alive ? "" : "Connection: close\r\n");
    return n > 0 && (size_t)n < size ? n : -1;
}

const char *http_error_body(int status)
{
    static const struct {
        int status;
        const char *body;
    } bodies[] = {
        { 400, "{\"error\":\"invalid_request\",\"message\":\"malformed HTTP request\"}" },
        { 408, "{\"error\":\"request_timeout\",\"message\":\"request not received in time\"}" },
        { 413, "{\"error\":\"body_too_large\",\"message\":\"request body over 16 KiB\"}" },
        { 417, "{\"error\":\"expectation_failed\",\"message\":\"only Expect: 100-continue is supported\"}" },
        { 431, "{\"error\":\"headers_too_large\",\"message\":\"request headers over 8 KiB or 100 fields\"}" },
        { 503, "{\"error\":\"unavailable\",\"message\":\"out of memory\"}" },
    };

    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++)
        if (bodies[i].status == status)
            return bodies[i].body;
    return bodies[0].body;
}
