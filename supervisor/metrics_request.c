/* supervisor/metrics_request.c - see metrics_request.h. */
#include "metrics_request.h"

#include <string.h>

static void metrics_request_set(struct metrics_request *req, int status, const char *reason, const char *message)
{
    req->status = status;
    req->reason = reason;
    req->message = message;
}

/* The end of the head: a blank line (CRLF or bare LF), or NULL. */
static const char *metrics_request_end(const char *in, size_t len)
{
    for (size_t i = 0; i + 1 < len; i++) {
        if (in[i] != '\n')
            continue;
        if (in[i + 1] == '\n' || (in[i + 1] == '\r' && i + 2 < len && in[i + 2] == '\n'))
            return in + i;
    }
    return NULL;
}

/* A token of the request line: printable, no space. Its length. */
static size_t metrics_request_token(const char *at, const char *end)
{
    size_t n = 0;

    while (at + n < end && at[n] > ' ' && at[n] < 0x7f)
        n++;
    return n;
}

/* The path is `name`, or `name` and a query string. */
static int metrics_request_is(const char *path, size_t len, const char *name)
{
    size_t n = strlen(name);

    return len >= n && memcmp(path, name, n) == 0 && (len == n || path[n] == '?');
}

int metrics_request_parse(const char *in, size_t len, struct metrics_request *req)
{
    const char *line_end, *at, *method, *path;
    size_t method_len, path_len;

    memset(req, 0, sizeof(*req));
    if (metrics_request_end(in, len) == NULL) {
        if (len < METRICS_REQUEST_MAX)
            return 0;
        metrics_request_set(req, 431, "Request Header Fields Too Large", "request head over 8 KiB\n");
        return 1;
    }
    line_end = memchr(in, '\n', len); /* there is one: the head ended */
    if (line_end > in && line_end[-1] == '\r')
        line_end--;
    /* METHOD SP PATH SP HTTP/1.x */
    method = in;
    method_len = metrics_request_token(method, line_end);
    at = method + method_len;
    if (method_len == 0 || method_len > 15 || at >= line_end || *at != ' ') {
        metrics_request_set(req, 400, "Bad Request", "malformed request\n");
        return 1;
    }
    path = at + 1;
    path_len = metrics_request_token(path, line_end);
    at = path + path_len;
    if (path_len == 0 || path_len > 255 || line_end - at != 9 || memcmp(at, " HTTP/1.", 8) != 0 ||
        (at[8] != '0' && at[8] != '1')) {
        metrics_request_set(req, 400, "Bad Request", "malformed request\n");
        return 1;
    }
    if (metrics_request_is(path, path_len, "/metrics")) {
        req->page = METRICS_PAGE_METRICS;
    } else if (metrics_request_is(path, path_len, "/")) {
        req->page = METRICS_PAGE_STATUS;
    } else {
        metrics_request_set(req, 404, "Not Found", "only / and /metrics here\n");
        return 1;
    }
    if (method_len == 3 && memcmp(method, "GET", 3) == 0) {
        metrics_request_set(req, 200, "OK", NULL);
        return 1;
    }
    if (method_len == 4 && memcmp(method, "HEAD", 4) == 0) {
        metrics_request_set(req, 200, "OK", NULL);
        req->head = 1;
        return 1;
    }
    metrics_request_set(req, 405, "Method Not Allowed", "GET only\n");
    return 1;
}
