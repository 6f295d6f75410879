/* worker/http_parse.c - http_parser's callbacks (worker/http_internal.h):
 * they build the request (URL, headers, body) within the limits of
 * worker/http.h and record what the connection must do about it (a
 * request began; it expects 100-continue; why it is refused), acting on
 * nothing themselves. Each message ends with the parser paused.
 */
#include "http_internal.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

/* Appends parser data to the request's text area; 0 or -1 when full. */
static int http_text_append(struct http_reader *rd, const char *at, size_t len)
{
    struct http_request *req = rd->req;

    rd->header_bytes += len;
    if (rd->header_bytes > HTTP_HEADERS_MAX_BYTES || req->text_len + len + 1 >= sizeof(req->text)) {
        rd->error_status = 431;
        return -1;
    }
    memcpy(req->text + req->text_len, at, len);
    req->text_len += (unsigned)len;
    req->text[req->text_len] = '\0';
    return 0;
}

/* Ends the current string in `text` (a NUL) so each piece stays a C string. */
static int http_text_terminate(struct http_reader *rd)
{
    struct http_request *req = rd->req;

    if (req->text_len + 1 >= sizeof(req->text)) {
        rd->error_status = 431;
        return -1;
    }
    req->text_len++; /* keep the NUL written by http_text_append */
    req->text[req->text_len] = '\0';
    return 0;
}

static int http_on_message_begin(http_parser *p)
{
    struct http_reader *rd = p->data;

    http_request_reset(rd->req);
    rd->header_bytes = 0;
    rd->last_was_value = 0;
    rd->in_trailers = 0;
    rd->error_status = 0;
    rd->began = 1; /* the connection arms the header timeout */
    return 0;
}

static int http_on_url(http_parser *p, const char *at, size_t len)
{
    return http_text_append(p->data, at, len) == 0 ? 0 : 1;
}

static int http_on_header_field(http_parser *p, const char *at, size_t len)
{
    struct http_reader *rd = p->data;
    struct http_request *req = rd->req;

    /* The trailers of a chunked body are never headers: a client (or a
     * proxy that forwards them) could otherwise add an X-Forwarded-For
     * after the one the proxy wrote. They are read past and dropped. */
    if (rd->in_trailers)
        return 0;

    if (req->header_count == 0 && !rd->last_was_value && req->path == NULL) {
        /* First header: the URL is complete. */
        if (http_text_terminate(rd) != 0)
            return 1;
        req->path = req->text;
    }
    if (rd->last_was_value || req->header_count == 0) {
        if (rd->last_was_value && http_text_terminate(rd) != 0)
            return 1;
        if (req->header_count == 0 || rd->last_was_value) {
            if (req->header_count == HTTP_HEADERS_MAX_COUNT) {
                rd->error_status = 431;
                return 1;
            }
            req->headers[req->header_count].name_off = req->text_len;
            req->headers[req->header_count].name_len = 0;
            req->header_count++;
            rd->header_bytes += 4; /* its ": " and CRLF count toward the 8 KiB too */
        }
        rd->last_was_value = 0;
    }
    /* "Name : value" is a request smuggling shape (RFC 9112 5.1): refuse it. */
    if (memchr(at, ' ', len) != NULL || memchr(at, '\t', len) != NULL) {
        rd->error_status = 400;
        return 1;
    }
    req->headers[req->header_count - 1].name_len += (unsigned)len;
    return http_text_append(rd, at, len) == 0 ? 0 : 1;
}

static int http_on_header_value(http_parser *p, const char *at, size_t len)
{
    struct http_reader *rd = p->data;
    struct http_request *req = rd->req;
    struct http_header *h;

    if (rd->in_trailers)
        return 0;
    h = &req->headers[req->header_count - 1];
    if (!rd->last_was_value) {
        if (http_text_terminate(rd) != 0)
            return 1;
        h->value_off = req->text_len;
        h->value_len = 0;
        rd->last_was_value = 1;
    }
    h->value_len += (unsigned)len;
    return http_text_append(rd, at, len) == 0 ? 0 : 1;
}

static int http_on_headers_complete(http_parser *p)
{
    struct http_reader *rd = p->data;
    struct http_request *req = rd->req;
    int expect;
    char *q;

    /* Any return but 0, 1 or 2 makes the parser stop with an error. */
    if (req->path == NULL) {
        if (http_text_terminate(rd) != 0)
            return -1;
        req->path = req->text;
    } else if (rd->last_was_value && http_text_terminate(rd) != 0) {
        return -1;
    }
    if (p->http_major != 1) {
        rd->error_status = 400;
        return -1;
    }
    q = strchr(req->text, '?');
    if (q != NULL && req->path == req->text)
        *q = '\0';
    /* A field value has no trailing blanks (RFC 9110 5.5; http_parser
     * drops only the leading ones). */
    for (int i = 0; i < req->header_count; i++) {
        struct http_header *h = &req->headers[i];
        char *value = req->text + h->value_off;

        while (h->value_len > 0 && (value[h->value_len - 1] == ' ' || value[h->value_len - 1] == '\t'))
            value[--h->value_len] = '\0';
    }
    if (p->content_length != ULLONG_MAX && p->content_length > HTTP_BODY_MAX_BYTES) {
        rd->error_status = 413;
        return -1;
    }
    expect = http_request_expect(req);
    if (expect < 0) {
        rd->error_status = 417; /* RFC 9110 10.1.1: an expectation we cannot meet */
        return -1;
    }
    if (expect > 0 &&
        (p->flags & F_CHUNKED || (p->content_length > 0 && p->content_length != ULLONG_MAX))) {
        rd->wants_continue = 1; /* the connection writes the interim answer */
    }
    rd->in_trailers = 1;
    return 0;
}

static int http_on_body(http_parser *p, const char *at, size_t len)
{
    struct http_reader *rd = p->data;
    struct http_request *req = rd->req;

    if (req->body_len + len > HTTP_BODY_MAX_BYTES) {
        rd->error_status = 413;
        return 1;
    }
    if (req->body == NULL) {
        req->body = malloc(HTTP_BODY_MAX_BYTES + 1);
        if (req->body == NULL) {
            rd->error_status = 503;
            return 1;
        }
    }
    memcpy(req->body + req->body_len, at, len);
    req->body_len += len;
    req->body[req->body_len] = '\0';
    return 0;
}

static int http_on_message_complete(http_parser *p)
{
    struct http_reader *rd = p->data;

    rd->req->keep_alive = http_should_keep_alive(p); /* and not while draining: the connection says */
    rd->req->method = (enum http_method)p->method;
    http_parser_pause(p, 1);
    return 0;
}

const http_parser_settings http_reader_settings = {
    .on_message_begin = http_on_message_begin,
    .on_url = http_on_url,
    .on_header_field = http_on_header_field,
    .on_header_value = http_on_header_value,
    .on_headers_complete = http_on_headers_complete,
    .on_body = http_on_body,
    .on_message_complete = http_on_message_complete,
};
