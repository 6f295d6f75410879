/* worker/http.c - the HTTP/1.1 server of worker/http.h.
 *
 * A connection is one state machine (enum http_conn_state). Bytes are read
 * into `in`, parsed by http_parser, which is paused at the end of each
 * message; the request is then handled (maybe asynchronously) and parsing
 * resumes after its answer, so pipelined requests are answered in order.
 * A connection is freed when its handles are closed and no request of it
 * is in flight (`refs`).
 */
#include "http.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sodium.h>

#include "../proto/config.h"
#include "../proto/log.h"

#define HTTP_IN_MAX (HTTP_HEADERS_MAX_BYTES + HTTP_BODY_MAX_BYTES + 8192)
/* A client's share of a worker's memory (SPEC 5): past this many answer
 * bytes it has not taken, its connection is neither read nor parsed until
 * the writes drain; and a last answer not taken within the close timeout
 * drops the connection. */
#define HTTP_UNSENT_MAX (64 * 1024)
#define HTTP_CLOSE_TIMEOUT_MS 10000

enum http_conn_state {
    HTTP_CONN_IDLE = 0, /* keep-alive, waiting for a request's first byte */
    HTTP_CONN_READING,  /* inside a request: header timeout runs */
    HTTP_CONN_HANDLING, /* a complete request is with its handler */
    HTTP_CONN_CLOSING,  /* answering the last time or closed */
};

struct http_conn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    http_parser parser;
    struct http_server *server;
    struct http_conn *next, *prev;   /* server->conns */
    enum http_conn_state state;
    int refs;                        /* tcp + timer handles + request in flight */
    char *in;                        /* owned: bytes read, not yet parsed */
    size_t in_len;
    size_t header_bytes;
    int last_was_value;              /* header callbacks: field after value = new header */
    int in_trailers;                 /* the headers are complete: fields now are a chunked body's trailers */
    int error_status;                /* set by a callback to reject the request */
    int close_after_write;
    int reading;
    int processing;                  /* inside http_conn_process() */
    int peer_done;                   /* the peer sent EOF */
    struct http_request req;
};

struct http_write {
    uv_write_t req;
    struct http_conn *conn;
    int close_after;
    char data[];
};

static http_parser_settings http_settings;

static void http_conn_fail(struct http_conn *c, int status);

const char *http_status_text(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 411: return "Length Required";
    case 413: return "Payload Too Large";
    case 415: return "Unsupported Media Type";
    case 417: return "Expectation Failed";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return "Unknown";
    }
}

static void http_conn_set_state(struct http_conn *c, enum http_conn_state next)
{
    c->state = next;
}

static void http_server_accept(struct http_server *server);

static void http_conn_unref(struct http_conn *c)
{
    struct http_server *server = c->server;

    if (--c->refs > 0)
        return;
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        server->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    server->stats.connections_open--;
    if (c->in != NULL) {
        sodium_memzero(c->in, HTTP_IN_MAX);
        free(c->in);
    }
    if (c->req.body != NULL) {
        sodium_memzero(c->req.body, HTTP_BODY_MAX_BYTES + 1);
        free(c->req.body);
    }
    free(c);
    if (server->at_cap && server->stats.connections_open < server->max_connections && !server->draining) {
        server->at_cap = 0;
        http_server_accept(server); /* the one libuv held; it watches again */
    }
    if (server->draining && server->listener_closed && server->conns == NULL &&
        server->on_drained != NULL)
        server->on_drained(server);
}

static void http_conn_on_close(uv_handle_t *h)
{
    http_conn_unref(h->data);
}

static void http_conn_close(struct http_conn *c)
{
    if (uv_is_closing((uv_handle_t *)&c->tcp))
        return;
    http_conn_set_state(c, HTTP_CONN_CLOSING);
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->tcp, http_conn_on_close);
    uv_close((uv_handle_t *)&c->timer, http_conn_on_close);
}

static void http_conn_on_timeout(uv_timer_t *t)
{
    struct http_conn *c = t->data;

    if (c->state == HTTP_CONN_READING) {
        /* A slow client: tell it why, then hang up. */
        http_conn_fail(c, 408);
        return;
    }
    http_conn_close(c);
}

static void http_conn_arm_timer(struct http_conn *c, uint64_t ms)
{
    uv_timer_start(&c->timer, http_conn_on_timeout, ms, 0);
}

static void http_request_reset(struct http_request *req)
{
    if (req->body != NULL)
        sodium_memzero(req->body, req->body_len);
    req->path = NULL;
    req->text_len = 0;
    req->header_count = 0;
    req->body_len = 0;
    req->keep_alive = 0;
    req->route_data = NULL;
    req->route = -1; /* none yet: the counters go by the path */
    req->start_ns = uv_hrtime();
}

/* Appends parser data to the request's text area; 0 or -1 when full. */
static int http_text_append(struct http_conn *c, const char *at, size_t len)
{
    struct http_request *req = &c->req;

    c->header_bytes += len;
    if (c->header_bytes > HTTP_HEADERS_MAX_BYTES || req->text_len + len + 1 >= sizeof(req->text)) {
        c->error_status = 431;
        return -1;
    }
    memcpy(req->text + req->text_len, at, len);
    req->text_len += (unsigned)len;
    req->text[req->text_len] = '\0';
    return 0;
}

/* Ends the current string in `text` (a NUL) so each piece stays a C string. */
static int http_text_terminate(struct http_conn *c)
{
    struct http_request *req = &c->req;

    if (req->text_len + 1 >= sizeof(req->text)) {
        c->error_status = 431;
        return -1;
    }
    req->text_len++; /* keep the NUL written by http_text_append */
    req->text[req->text_len] = '\0';
    return 0;
}

static int http_on_message_begin(http_parser *p)
{
    struct http_conn *c = p->data;

    http_request_reset(&c->req);
    c->header_bytes = 0;
    c->last_was_value = 0;
    c->in_trailers = 0;
    c->error_status = 0;
    if (c->state == HTTP_CONN_IDLE) {
        http_conn_set_state(c, HTTP_CONN_READING);
        http_conn_arm_timer(c, HTTP_HEADER_TIMEOUT_MS);
    }
    return 0;
}

static int http_on_url(http_parser *p, const char *at, size_t len)
{
    return http_text_append(p->data, at, len) == 0 ? 0 : 1;
}

static int http_on_header_field(http_parser *p, const char *at, size_t len)
{
    struct http_conn *c = p->data;
    struct http_request *req = &c->req;

    /* The trailers of a chunked body are never headers: a client (or a
     * proxy that forwards them) could otherwise add an X-Forwarded-For
     * after the one the proxy wrote. They are read past and dropped. */
    if (c->in_trailers)
        return 0;

    if (req->header_count == 0 && !c->last_was_value && req->path == NULL) {
        /* First header: the URL is complete. */
        if (http_text_terminate(c) != 0)
            return 1;
        req->path = req->text;
    }
    if (c->last_was_value || req->header_count == 0) {
        if (c->last_was_value && http_text_terminate(c) != 0)
            return 1;
        if (req->header_count == 0 || c->last_was_value) {
            if (req->header_count == HTTP_HEADERS_MAX_COUNT) {
                c->error_status = 431;
                return 1;
            }
            req->headers[req->header_count].name_off = req->text_len;
            req->headers[req->header_count].name_len = 0;
            req->header_count++;
            c->header_bytes += 4; /* its ": " and CRLF count toward the 8 KiB too */
        }
        c->last_was_value = 0;
    }
    /* "Name : value" is a request smuggling shape (RFC 9112 5.1): refuse it. */
    if (memchr(at, ' ', len) != NULL || memchr(at, '\t', len) != NULL) {
        c->error_status = 400;
        return 1;
    }
    req->headers[req->header_count - 1].name_len += (unsigned)len;
    return http_text_append(c, at, len) == 0 ? 0 : 1;
}

static int http_on_header_value(http_parser *p, const char *at, size_t len)
{
    struct http_conn *c = p->data;
    struct http_request *req = &c->req;
    struct http_header *h;

    if (c->in_trailers)
        return 0;
    h = &req->headers[req->header_count - 1];
    if (!c->last_was_value) {
        if (http_text_terminate(c) != 0)
            return 1;
        h->value_off = req->text_len;
        h->value_len = 0;
        c->last_was_value = 1;
    }
    h->value_len += (unsigned)len;
    return http_text_append(c, at, len) == 0 ? 0 : 1;
}

static int http_write_raw(struct http_conn *c, const uv_buf_t *parts, int count, int close_after);

/* A header's value (empty when the field had none). */
static const char *http_header_value(const struct http_request *req, const struct http_header *h)
{
    return h->value_len == 0 && h->value_off == 0 ? "" : req->text + h->value_off;
}

/* 1 when the request expects 100-continue, 0 when it expects nothing, -1
 * when any Expect field asks for something else. */
static int http_request_expect(const struct http_request *req)
{
    int found = 0;

    for (int i = 0; i < req->header_count; i++) {
        const struct http_header *h = &req->headers[i];

        if (strcasecmp(req->text + h->name_off, "expect") != 0)
            continue;
        if (strcasecmp(http_header_value(req, h), "100-continue") != 0)
            return -1;
        found = 1;
    }
    return found;
}

static int http_on_headers_complete(http_parser *p)
{
    struct http_conn *c = p->data;
    struct http_request *req = &c->req;
    int expect;
    char *q;

    /* Any return but 0, 1 or 2 makes the parser stop with an error. */
    if (req->path == NULL) {
        if (http_text_terminate(c) != 0)
            return -1;
        req->path = req->text;
    } else if (c->last_was_value && http_text_terminate(c) != 0) {
        return -1;
    }
    if (p->http_major != 1) {
        c->error_status = 400;
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
        c->error_status = 413;
        return -1;
    }
    expect = http_request_expect(req);
    if (expect < 0) {
        c->error_status = 417; /* RFC 9110 10.1.1: an expectation we cannot meet */
        return -1;
    }
    if (expect > 0 &&
        (p->flags & F_CHUNKED || (p->content_length > 0 && p->content_length != ULLONG_MAX))) {
        const uv_buf_t interim = uv_buf_init((char *)"HTTP/1.1 100 Continue\r\n\r\n", 25);
        http_write_raw(c, &interim, 1, 0);
    }
    c->in_trailers = 1;
    return 0;
}

static int http_on_body(http_parser *p, const char *at, size_t len)
{
    struct http_conn *c = p->data;
    struct http_request *req = &c->req;

    if (req->body_len + len > HTTP_BODY_MAX_BYTES) {
        c->error_status = 413;
        return 1;
    }
    if (req->body == NULL) {
        req->body = malloc(HTTP_BODY_MAX_BYTES + 1);
        if (req->body == NULL) {
            c->error_status = 503;
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
    struct http_conn *c = p->data;

    c->req.keep_alive = http_should_keep_alive(p) && !c->server->draining;
    c->req.method = (enum http_method)p->method;
    http_parser_pause(p, 1);
    return 0;
}

int http_request_peer_gone(const struct http_request *req)
{
    return req->conn->peer_done || uv_is_closing((const uv_handle_t *)&req->conn->tcp);
}

const char *http_request_header(const struct http_request *req, const char *name)
{
    for (int i = 0; i < req->header_count; i++) {
        const struct http_header *h = &req->headers[i];
        if (strcasecmp(req->text + h->name_off, name) == 0)
            return http_header_value(req, h);
    }
    return NULL;
}

int http_request_header_count(const struct http_request *req, const char *name)
{
    int n = 0;

    for (int i = 0; i < req->header_count; i++)
        n += strcasecmp(req->text + req->headers[i].name_off, name) == 0;
    return n;
}

const char *http_request_header_all(const struct http_request *req, const char *name, char *buf, size_t size)
{
    size_t n = 0;
    int found = 0;

    if (size == 0)
        return NULL;
    buf[0] = '\0';
    for (int i = 0; i < req->header_count; i++) {
        const struct http_header *h = &req->headers[i];
        const char *value;
        int len;

        if (strcasecmp(req->text + h->name_off, name) != 0)
            continue;
        value = http_header_value(req, h);
        len = snprintf(buf + n, size - n, "%s%s", found ? ", " : "", value);
        if (len < 0 || (size_t)len >= size - n)
            return NULL; /* cannot happen within the header limit */
        n += (size_t)len;
        found = 1;
    }
    return found ? buf : NULL;
}

static void http_conn_process(struct http_conn *c);

/* 1 while the client has more answer bytes waiting than its share. */
static int http_conn_backlogged(const struct http_conn *c)
{
    return c->tcp.write_queue_size > HTTP_UNSENT_MAX;
}

static void http_on_write(uv_write_t *w, int status)
{
    struct http_write *hw = (struct http_write *)w;
    struct http_conn *c = hw->conn;

    if (status < 0 || hw->close_after)
        http_conn_close(c);
    else if (!uv_is_closing((uv_handle_t *)&c->tcp) && !http_conn_backlogged(c) && !c->reading)
        http_conn_process(c); /* the client took its answers: read and parse again */
    http_conn_unref(c);
    free(hw);
}

/* Writes the pieces: straight to the socket when it takes them all (the
 * usual case: no allocation, no copy, no write request, no change to the
 * loop's epoll set), else what is left as one buffer (one allocation, one
 * copy) owned by a write request until its callback. A write that closes
 * the connection always takes the request path, which closes after it. */
static int http_write_raw(struct http_conn *c, const uv_buf_t *parts, int count, int close_after)
{
    struct http_write *hw;
    uv_buf_t buf;
    size_t len = 0, at = 0, skip = 0;

    if (uv_is_closing((uv_handle_t *)&c->tcp))
        return -EPIPE;
    for (int i = 0; i < count; i++)
        len += parts[i].len;
    if (!close_after) {
        int n = uv_try_write((uv_stream_t *)&c->tcp, parts, (unsigned)count);

        if (n > 0 && (size_t)n == len)
            return 0;
        if (n > 0)
            skip = (size_t)n; /* the socket is full: queue the rest */
    }
    hw = malloc(sizeof(*hw) + (len - skip));
    if (hw == NULL) {
        http_conn_close(c);
        return -ENOMEM;
    }
    for (int i = 0; i < count; i++) {
        size_t from = skip > at ? skip - at : 0;

        if (parts[i].len > from)
            memcpy(hw->data + (at + from - skip), parts[i].base + from, parts[i].len - from);
        at += parts[i].len;
    }
    len -= skip;
    hw->conn = c;
    hw->close_after = close_after;
    if (close_after)
        http_conn_arm_timer(c, HTTP_CLOSE_TIMEOUT_MS); /* a last answer never taken drops the connection */
    buf = uv_buf_init(hw->data, (unsigned)len);
    c->refs++;
    if (uv_write(&hw->req, (uv_stream_t *)&c->tcp, &buf, 1, http_on_write) != 0) {
        c->refs--;
        free(hw);
        http_conn_close(c);
        return -EPIPE;
    }
    return 0;
}

static void http_conn_read_start(struct http_conn *c);

void http_respond(struct http_request *req, int status, const char *headers, const char *body,
                  size_t body_len)
{
    struct http_conn *c = req->conn;
    struct http_server *server = c->server;
    char head[512], length[48] = "";
    int keep_alive = req->keep_alive && !server->draining && !c->close_after_write;
    /* The answer to HEAD has GET's head, Content-Length included, and no body. */
    size_t body_sent = status == 204 || req->method == HTTP_HEAD ? 0 : body_len;
    int n;

    /* A 204 has no body and no Content-Length (RFC 9110, 8.6). */
    if (status != 204)
        snprintf(length, sizeof(length), "Content-Length: %zu\r\n", body_len);
    n = snprintf(head, sizeof(head),
                 "HTTP/1.1 %d %s\r\n"
                 "%s"
                 "%s"
                 "%s"
                 "Cache-Control: no-store\r\n"
                 "\r\n",
                 status, http_status_text(status), length,
                 status == 204 || body_len == 0 ? "" : "Content-Type: application/json\r\n",
                 keep_alive ? "" : "Connection: close\r\n");
    if (n > 0 && (size_t)n < sizeof(head)) {
        /* Extra headers go before the blank line ending the head. */
        const uv_buf_t parts[4] = {
            uv_buf_init(head, (unsigned)n - 2),
            uv_buf_init((char *)(headers != NULL ? headers : ""), headers != NULL ? (unsigned)strlen(headers) : 0),
            uv_buf_init((char *)"\r\n", 2),
            uv_buf_init((char *)body, (unsigned)body_sent),
        };
        http_write_raw(c, parts, 4, !keep_alive);
    }
    server->stats.requests_in_flight--;
    server->stats.requests++;
    if (server->on_answered != NULL)
        server->on_answered(server, req, status, (uv_hrtime() - req->start_ns) / 1000);
    if (req->body != NULL)
        sodium_memzero(req->body, req->body_len);
    if (c->state == HTTP_CONN_HANDLING) {
        if (keep_alive) {
            http_conn_set_state(c, HTTP_CONN_IDLE);
            http_conn_arm_timer(c, HTTP_IDLE_TIMEOUT_MS);
        } else {
            http_conn_set_state(c, HTTP_CONN_CLOSING);
            http_conn_arm_timer(c, HTTP_CLOSE_TIMEOUT_MS);
        }
    }
    http_conn_process(c); /* next pipelined request, if any */
    http_conn_unref(c);   /* the request's reference */
}

static void http_conn_fail(struct http_conn *c, int status)
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
    const char *body = bodies[0].body;

    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++)
        if (bodies[i].status == status)
            body = bodies[i].body;
    c->req.keep_alive = 0;
    c->close_after_write = 1;
    /* Refused before its headers ended, the path may still hold its query. */
    if (c->req.path != NULL && c->req.path == c->req.text)
        c->req.text[strcspn(c->req.text, "?")] = '\0';
    http_conn_set_state(c, HTTP_CONN_HANDLING);
    c->refs++;
    c->server->stats.requests_in_flight++;
    http_respond(&c->req, status, NULL, body, strlen(body));
}

/* Hands the request in c->req to the handler; it holds a reference on
 * the connection until http_respond(). */
static void http_conn_dispatch(struct http_conn *c)
{
    uv_timer_stop(&c->timer);
    http_conn_set_state(c, HTTP_CONN_HANDLING);
    c->refs++;
    c->req.conn = c;
    c->server->stats.requests_in_flight++;
    c->server->handler(c->server, &c->req);
}

/* RFC 9110 5.6.2 token characters. */
static int http_is_tchar(unsigned char ch)
{
    return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
           (ch != '\0' && strchr("!#$%&'*+-.^_`|~", ch) != NULL);
}

/* A request line whose method http_parser does not know ("BREW / HTTP/1.1",
 * a lower-case "get"): when the line is otherwise well formed, the handler
 * answers it as any method its route does not allow (404 or 405 with
 * Allow). The rest of the request cannot be framed, so the connection
 * closes after the answer. 0 when handed to the handler, -1 (answer 400)
 * when the line is malformed or not there whole (split over reads). */
static int http_conn_unknown_method(struct http_conn *c)
{
    const char *p = c->in, *end = c->in + c->in_len, *target, *stop;
    size_t method_len = 0, path_len;

    while (p < end && (*p == '\r' || *p == '\n'))
        p++;
    while (p + method_len < end && http_is_tchar((unsigned char)p[method_len]))
        method_len++;
    if (method_len == 0 || p + method_len >= end || p[method_len] != ' ')
        return -1;
    target = p + method_len + 1;
    stop = memchr(target, ' ', (size_t)(end - target));
    /* The whole line: " HTTP/1.0" or " HTTP/1.1", then CRLF (or LF). */
    if (stop == NULL || *target != '/' || end - stop < 10 ||
        (memcmp(stop, " HTTP/1.1", 9) != 0 && memcmp(stop, " HTTP/1.0", 9) != 0) ||
        !(stop[9] == '\n' || (stop[9] == '\r' && end - stop >= 11 && stop[10] == '\n')))
        return -1;
    path_len = 0;
    for (const char *t = target; t < stop; t++) {
        if ((unsigned char)*t <= 0x20 || (unsigned char)*t == 0x7f)
            return -1;
        if (*t == '?' && path_len == 0)
            path_len = (size_t)(t - target);
    }
    if (path_len == 0)
        path_len = (size_t)(stop - target);
    if (path_len >= sizeof(c->req.text))
        return -1;
    http_request_reset(&c->req);
    memcpy(c->req.text, target, path_len);
    c->req.text[path_len] = '\0';
    c->req.text_len = (unsigned)path_len + 1;
    c->req.path = c->req.text;
    c->req.method = HTTP_METHOD_UNKNOWN;
    c->close_after_write = 1;
    c->in_len = 0;
    http_conn_dispatch(c);
    return 0;
}

/* Parses what is buffered: hands each complete request to the handler
 * and goes on with the next pipelined one once it is answered. Not
 * reentrant: http_respond() from inside a handler lets this loop go on. */
static void http_conn_process(struct http_conn *c)
{
    if (c->processing)
        return;
    c->processing = 1;
    c->refs++;
    while ((c->state == HTTP_CONN_IDLE || c->state == HTTP_CONN_READING) && c->in_len > 0 &&
           !uv_is_closing((uv_handle_t *)&c->tcp) && !http_conn_backlogged(c)) {
        size_t n = http_parser_execute(&c->parser, &http_settings, c->in, c->in_len);
        enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);

        if (e == HPE_INVALID_METHOD && http_conn_unknown_method(c) == 0)
            break;
        if (n > c->in_len)
            n = c->in_len;
        memmove(c->in, c->in + n, c->in_len - n);
        c->in_len -= n;
        if (e == HPE_PAUSED) {
            http_parser_pause(&c->parser, 0);
            http_conn_dispatch(c);
            continue;
        }
        if (e != HPE_OK) {
            int status = c->error_status != 0 ? c->error_status : 400;
            if (e == HPE_HEADER_OVERFLOW)
                status = 431;
            http_conn_fail(c, status);
            break;
        }
    }
    /* The peer is done and everything it sent is answered. */
    if (c->peer_done && c->state == HTTP_CONN_IDLE && c->in_len == 0 && !uv_is_closing((uv_handle_t *)&c->tcp))
        http_conn_close(c);
    /* Read more while there is room, also during a request (pipelining). */
    if (!c->reading && !c->peer_done && c->in_len < HTTP_IN_MAX && c->state != HTTP_CONN_CLOSING &&
        !uv_is_closing((uv_handle_t *)&c->tcp) && !http_conn_backlogged(c))
        http_conn_read_start(c);
    else if (c->reading && http_conn_backlogged(c)) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = 0;
    }
    c->processing = 0;
    http_conn_unref(c);
}

static void http_conn_on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct http_conn *c = h->data;

    (void)suggested;
    *buf = uv_buf_init(c->in + c->in_len, (unsigned)(HTTP_IN_MAX - c->in_len));
}

static void http_conn_on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    struct http_conn *c = stream->data;

    (void)buf;
    if (nread == 0)
        return;
    if (nread < 0) {
        /* EOF or error. A request in flight may still be answered. */
        uv_read_stop(stream);
        c->reading = 0;
        c->peer_done = 1;
        /* A half-close still gets answers to what it sent (pipelined
         * requests included); the connection closes once they are out. */
        if (nread == UV_EOF && (c->state == HTTP_CONN_HANDLING || c->in_len > 0))
            http_conn_process(c);
        else
            http_conn_close(c);
        return;
    }
    c->in_len += (size_t)nread;
    if (c->in_len == HTTP_IN_MAX) {
        uv_read_stop(stream);
        c->reading = 0;
    }
    http_conn_process(c);
}

static void http_conn_read_start(struct http_conn *c)
{
    if (uv_read_start((uv_stream_t *)&c->tcp, http_conn_on_alloc, http_conn_on_read) == 0)
        c->reading = 1;
    else
        http_conn_close(c);
}

/* Takes the connection libuv has accepted and serves it. */
static void http_server_accept(struct http_server *server)
{
    uv_stream_t *listener = (uv_stream_t *)&server->listener;
    struct http_conn *c;
    int len = sizeof(c->req.peer);

    c = calloc(1, sizeof(*c));
    if (c != NULL)
        c->in = malloc(HTTP_IN_MAX);
    if (c == NULL || c->in == NULL) {
        /* Accept and drop, or the listener would spin on the pending one. */
        uv_tcp_t *t = malloc(sizeof(*t));
        if (c != NULL)
            free(c);
        if (t != NULL && uv_tcp_init(server->loop, t) == 0) {
            if (uv_accept(listener, (uv_stream_t *)t) == 0)
                uv_close((uv_handle_t *)t, (uv_close_cb)free);
            else
                uv_close((uv_handle_t *)t, (uv_close_cb)free);
        } else {
            free(t);
        }
        return;
    }
    c->server = server;
    uv_tcp_init(server->loop, &c->tcp);
    uv_timer_init(server->loop, &c->timer);
    c->tcp.data = c;
    c->timer.data = c;
    c->refs = 2;
    c->next = server->conns;
    if (server->conns != NULL)
        server->conns->prev = c;
    server->conns = c;
    server->stats.connections_open++;
    if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0) {
        http_conn_close(c);
        return;
    }
    server->stats.connections_accepted++;
    uv_tcp_nodelay(&c->tcp, 1);
    uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&c->req.peer, &len);
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    c->req.conn = c;
    http_conn_set_state(c, HTTP_CONN_IDLE);
    /* Until its first request, a connection gets the header timeout (as
     * nginx's client_header_timeout): one that never sends is cut off
     * then, not kept as long as an idle keep-alive connection. */
    http_conn_arm_timer(c, HTTP_HEADER_TIMEOUT_MS);
    http_conn_read_start(c);
}

static void http_server_on_connection(uv_stream_t *listener, int status)
{
    struct http_server *server = listener->data;

    if (status < 0 || server->draining)
        return;
    if (server->max_connections > 0 && server->stats.connections_open >= server->max_connections) {
        /* At the cap: leave it. libuv keeps the one connection it took
         * and stops watching the shared socket, so the backlog goes to the
         * other workers; a connection closing here takes it (below). */
        server->at_cap = 1;
        return;
    }
    http_server_accept(server);
}

int http_server_init(struct http_server *server, uv_loop_t *loop, const char *address, int fd,
                     http_handler_cb handler, void *data, char *err, size_t errsize)
{
    struct sockaddr_storage ss;
    int rc;

    memset(server, 0, sizeof(*server));
    http_settings.on_message_begin = http_on_message_begin;
    http_settings.on_url = http_on_url;
    http_settings.on_header_field = http_on_header_field;
    http_settings.on_header_value = http_on_header_value;
    http_settings.on_headers_complete = http_on_headers_complete;
    http_settings.on_body = http_on_body;
    http_settings.on_message_complete = http_on_message_complete;
    server->loop = loop;
    server->handler = handler;
    server->data = data;
    uv_tcp_init(loop, &server->listener);
    server->listener.data = server;
    if (fd >= 0) {
        rc = uv_tcp_open(&server->listener, fd);
        if (rc != 0) {
            snprintf(err, errsize, "listening descriptor %d: %s", fd, uv_strerror(rc));
            return rc;
        }
        return 0;
    }
    if (config_address_parse(address, &ss) != 0) {
        snprintf(err, errsize, "listen: '%.64s' is not HOST:PORT", address);
        return -EINVAL;
    }
    rc = uv_tcp_bind(&server->listener, (const struct sockaddr *)&ss, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&server->listener, HTTP_BACKLOG, NULL);
    if (rc == 0)
        return 0;
    snprintf(err, errsize, "cannot listen on %s: %s", address, uv_strerror(rc));
    return rc;
}

int http_server_start(struct http_server *server)
{
    int rc;

    if (server->listening || server->draining)
        return 0;
    rc = uv_listen((uv_stream_t *)&server->listener, HTTP_BACKLOG, http_server_on_connection);
    if (rc == 0)
        server->listening = 1;
    return rc;
}

static void http_server_on_listener_close(uv_handle_t *h)
{
    struct http_server *server = h->data;

    server->listener_closed = 1;
    if (server->conns == NULL && server->on_drained != NULL)
        server->on_drained(server);
}

void http_server_drain(struct http_server *server)
{
    struct http_conn *c, *next;

    if (server->draining)
        return;
    server->draining = 1;
    /* Closing our copy of the listening socket leaves it open in the
     * supervisor and the other workers, which accept what is queued. */
    uv_close((uv_handle_t *)&server->listener, http_server_on_listener_close);
    for (c = server->conns; c != NULL; c = next) {
        next = c->next;
        /* Closing an idle keep-alive connection races with a request the
         * client may be sending on it right now, which it would see fail.
         * Give each a short grace instead: a busy client's next request is
         * answered with Connection: close, a quiet one is closed. */
        c->close_after_write = 1;
        if (c->state == HTTP_CONN_IDLE && c->in_len == 0)
            http_conn_arm_timer(c, HTTP_DRAIN_IDLE_MS);
    }
}
