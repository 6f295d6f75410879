/* worker/http.c - the HTTP/1.1 server of worker/http.h: the listener,
 * and each connection's machine (enum http_conn_state).
 *
 * Bytes are read into `in` and parsed by http_parser, whose callbacks
 * (worker/http_parse.c) build the request and record what happened; the
 * connection acts on that once the parser returns. The parser pauses at
 * the end of each message; the request is then handled (maybe
 * asynchronously) and parsing resumes after its answer, so pipelined
 * requests are answered in order. Answers go out through the response
 * writer (worker/http_write.c). A connection is freed when its handles
 * are closed and no request of it is in flight (`refs`).
 */
#include "http_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
    struct http_reader rd;           /* the parser's record of the request being read */
    int close_after_write;
    int reading;
    int processing;                  /* inside http_conn_process() */
    int peer_done;                   /* the peer sent EOF */
    struct http_request req;
};

static void http_conn_fail(struct http_conn *c, int status);

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

int http_request_peer_gone(const struct http_request *req)
{
    return req->conn->peer_done || uv_is_closing((const uv_handle_t *)&req->conn->tcp);
}

static void http_conn_process(struct http_conn *c);

/* 1 while the client has more answer bytes waiting than its share. */
static int http_conn_backlogged(const struct http_conn *c)
{
    return c->tcp.write_queue_size > HTTP_UNSENT_MAX;
}

/* A queued answer went out (or failed). */
static void http_conn_on_written(void *arg, int status, int close_after)
{
    struct http_conn *c = arg;

    if (status < 0 || close_after)
        http_conn_close(c);
    else if (!uv_is_closing((uv_handle_t *)&c->tcp) && !http_conn_backlogged(c) && !c->reading)
        http_conn_process(c); /* the client took its answers: read and parse again */
    http_conn_unref(c);
}

/* Writes an answer's pieces (worker/http_write.c); a queued write holds a
 * reference. A last answer never taken drops the connection. */
static int http_write_raw(struct http_conn *c, const uv_buf_t *parts, int count, int close_after)
{
    int rc;

    if (uv_is_closing((uv_handle_t *)&c->tcp))
        return -EPIPE;
    if (close_after)
        http_conn_arm_timer(c, HTTP_CLOSE_TIMEOUT_MS);
    rc = http_write((uv_stream_t *)&c->tcp, parts, count, close_after, http_conn_on_written, c);
    if (rc == 1)
        c->refs++;
    else if (rc < 0)
        http_conn_close(c);
    return rc < 0 ? rc : 0;
}

static void http_conn_read_start(struct http_conn *c);

void http_respond(struct http_request *req, int status, const char *headers, const char *body,
                  size_t body_len)
{
    struct http_conn *c = req->conn;
    struct http_server *server = c->server;
    char head[512];
    int keep_alive = req->keep_alive && !server->draining && !c->close_after_write;
    /* The answer to HEAD has GET's head, Content-Length included, and no body. */
    size_t body_sent = status == 204 || req->method == HTTP_HEAD ? 0 : body_len;
    int n = http_response_head(head, sizeof(head), status, body_len, keep_alive);

    if (n > 0) {
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
    const char *body = http_error_body(status);

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
    if (c->server->draining)
        c->req.keep_alive = 0;
    c->refs++;
    c->req.conn = c;
    c->server->stats.requests_in_flight++;
    c->server->handler(c->server, &c->req);
}

/* A request line whose method http_parser does not know (see
 * http_request_line_unknown): handed to the handler, which answers it as
 * a method its route does not allow; the connection closes after the
 * answer. 0 when handed over, -1 (answer 400) when the line is malformed
 * or not there whole (split over reads). */
static int http_conn_unknown_method(struct http_conn *c)
{
    if (http_request_line_unknown(c->in, c->in_len, &c->req) != 0)
        return -1;
    c->close_after_write = 1;
    c->in_len = 0;
    http_conn_dispatch(c);
    return 0;
}

/* Acts on what the parser recorded: a request began (the header
 * timeout runs from its first byte), it expects 100-continue. */
static void http_conn_after_parse(struct http_conn *c)
{
    if (c->rd.began) {
        c->rd.began = 0;
        if (c->state == HTTP_CONN_IDLE) {
            http_conn_set_state(c, HTTP_CONN_READING);
            http_conn_arm_timer(c, HTTP_HEADER_TIMEOUT_MS);
        }
    }
    if (c->rd.wants_continue) {
        const uv_buf_t interim = uv_buf_init((char *)"HTTP/1.1 100 Continue\r\n\r\n", 25);

        c->rd.wants_continue = 0;
        http_write_raw(c, &interim, 1, 0);
    }
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
        size_t n = http_parser_execute(&c->parser, &http_reader_settings, c->in, c->in_len);
        enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);

        http_conn_after_parse(c);
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
            int status = c->rd.error_status != 0 ? c->rd.error_status : 400;
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
    c->rd.req = &c->req;
    c->parser.data = &c->rd;
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
