/* worker/http_internal.h - what the files of the HTTP server share and
 * nothing else of the worker uses: the request parser's record
 * (worker/http_parse.c), the request helpers (worker/http_request.c) and
 * the response writer (worker/http_write.c). The connection machine that
 * drives them is worker/http.c.
 */
#ifndef VERONA_WORKER_HTTP_INTERNAL_H
#define VERONA_WORKER_HTTP_INTERNAL_H

#include "http.h"

/* ---- the request parser (worker/http_parse.c) ---- */

/* What http_parser's callbacks build and record, the parser's `data`.
 * The callbacks fill the request and act on nothing else: the connection
 * reads `began` and `wants_continue` once http_parser_execute returns and
 * acts then (the header timeout, the interim answer). */
struct http_reader {
    struct http_request *req;
    size_t header_bytes;
    int last_was_value;          /* header callbacks: field after value = new header */
    int in_trailers;             /* the headers are complete: fields now are a chunked body's trailers */
    int error_status;            /* set by a callback to reject the request */
    int began;                   /* a request's first byte was parsed */
    int wants_continue;          /* the request expects 100-continue and has a body */
};

/* The callbacks; each message ends with the parser paused (HPE_PAUSED). */
extern const http_parser_settings http_reader_settings;

/* ---- the request (worker/http_request.c) ---- */

/* Empties `req` for the next request on its connection (its body zeroed). */
void http_request_reset(struct http_request *req);

/* A header's value (empty when the field had none). */
const char *http_header_value(const struct http_request *req, const struct http_header *h);

/* 1 when the request expects 100-continue, 0 when it expects nothing, -1
 * when any Expect field asks for something else. */
int http_request_expect(const struct http_request *req);

/* A request line whose method http_parser does not know ("BREW /
 * HTTP/1.1", a lower-case "get") at the start of in[0..len): when the
 * line is otherwise well formed and whole, `req` is reset to it (its path,
 * method HTTP_METHOD_UNKNOWN) and 0 is returned; -1 when it is malformed
 * or not there whole. */
int http_request_line_unknown(const char *in, size_t len, struct http_request *req);

/* ---- the response writer (worker/http_write.c) ---- */

/* A queued write ended: `status` < 0 when it failed. */
typedef void (*http_written_cb)(void *arg, int status, int close_after);

/* Writes the pieces to `stream`: straight to the socket when it takes
 * them all (returns 0: no callback), else what is left as one buffer
 * owned by a write request (returns 1: done(arg, ...) when it ends). A
 * write that closes the connection always takes the request path.
 * Negative (-ENOMEM, -EPIPE) when nothing could be queued. */
int http_write(uv_stream_t *stream, const uv_buf_t *parts, int count, int close_after, http_written_cb done,
               void *arg);

/* The head of an answer (status line, Content-Length unless 204, the
 * JSON Content-Type when there is a body, Connection: close unless kept
 * alive, Cache-Control) into head[size], ending in the blank line; its
 * length, or -1 when it does not fit. */
int http_response_head(char *head, size_t size, int status, size_t body_len, int keep_alive);

/* The JSON body of an answer the server gives itself (400, 408, 413,
 * 417, 431, 503; 400's for any other). */
const char *http_error_body(int status);

#endif
