/* worker/http.h - the HTTP/1.1 server of a worker: connections on the
 * shared listening socket, parsing (Node's http_parser), limits, timeouts,
 * keep-alive, pipelining (one request handled at a time per connection,
 * answered in order) and graceful drain.
 */
#ifndef VERONA_WORKER_HTTP_H
#define VERONA_WORKER_HTTP_H

#include <http_parser.h>
#include <stddef.h>
#include <sys/socket.h>
#include <uv.h>

#include "../proto/config.h"

#define HTTP_HEADERS_MAX_BYTES 8192
#define HTTP_HEADERS_MAX_COUNT 100
#define HTTP_BODY_MAX_BYTES 16384
#define HTTP_HEADER_TIMEOUT_MS 10000
#define HTTP_IDLE_TIMEOUT_MS 60000
/* A method http_parser does not know (the handler answers 404 or 405). */
#define HTTP_METHOD_UNKNOWN ((enum http_method)255)
/* Every worker's uv_listen (a listen() again on the shared socket) keeps
 * the supervisor's backlog, never shrinks it. */
#define HTTP_BACKLOG CONFIG_LISTEN_BACKLOG
#define HTTP_DRAIN_IDLE_MS 1000     /* while draining, an idle connection closes after this */

struct http_conn;
struct http_server;

struct http_header {
    unsigned name_off, name_len;
    unsigned value_off, value_len;
};

/* The request being handled. Lives inside its connection; valid until the
 * handler calls http_respond(). Strings are NUL-terminated. */
struct http_request {
    struct http_conn *conn;
    enum http_method method;
    const char *path;            /* without the query string */
    char text[HTTP_HEADERS_MAX_BYTES + HTTP_HEADERS_MAX_COUNT * 2 + 2]; /* url, names, values */
    unsigned text_len;
    struct http_header headers[HTTP_HEADERS_MAX_COUNT];
    int header_count;
    char *body;                  /* malloc'd on the first body byte, NUL-terminated */
    size_t body_len;
    int keep_alive;
    struct sockaddr_storage peer;
    void *route_data;            /* the handler's, for the request's lifetime */
    int route;                   /* the handler's label for it (-1 until it sets one; the counters' route) */
    uint64_t start_ns;           /* first byte of the request (uv_hrtime) */
};

/* Called once a request has been read whole; must lead to exactly one
 * http_respond() for it, now or later. */
typedef void (*http_handler_cb)(struct http_server *server, struct http_request *req);

/* Counters the worker reports (cumulative). */
struct http_stats {
    unsigned long long connections_accepted;
    unsigned long long requests;
    int connections_open;
    int requests_in_flight;
};

struct http_server {
    uv_loop_t *loop;
    uv_tcp_t listener;
    int listening;
    int draining;
    int listener_closed;
    http_handler_cb handler;
    void *data;                  /* the handler's context */
    struct http_conn *conns;     /* open connections (intrusive list) */
    struct http_stats stats;
    /* Told of every answer, refused requests included (may be NULL): the
     * worker counts requests by route and status, and their latency. */
    void (*on_answered)(struct http_server *server, const struct http_request *req, int status,
                        uint64_t latency_us);
    void (*on_drained)(struct http_server *server); /* last connection gone while draining */
    int max_connections;         /* 0: no cap; at the cap no connection is taken until one closes */
    int at_cap;
};

/* Opens `address` (host:port) or adopts the listening descriptor `fd`
 * (when >= 0); does not accept until http_server_start(). Returns 0 or a
 * negative errno with a message in err. */
int http_server_init(struct http_server *server, uv_loop_t *loop, const char *address, int fd,
                     http_handler_cb handler, void *data, char *err, size_t errsize);

/* Starts accepting connections. */
int http_server_start(struct http_server *server);

/* Stops accepting; idle keep-alive connections are closed, busy ones get
 * `Connection: close` on their answer. on_drained runs when none is left. */
void http_server_drain(struct http_server *server);

/* Answers `req`. `headers` are extra "Name: value\r\n" lines (or NULL). */
void http_respond(struct http_request *req, int status, const char *headers, const char *body,
                  size_t body_len);

/* The value of a header (case-insensitive name), or NULL. */
const char *http_request_header(const struct http_request *req, const char *name);

/* How many times the header appears. */
int http_request_header_count(const struct http_request *req, const char *name);

/* Every line of header `name`, in order, joined by ", " into buf (as RFC
 * 9110 reads repeated fields), or NULL when there is none. */
const char *http_request_header_all(const struct http_request *req, const char *name, char *buf, size_t size);

/* 1 when the client has closed its side (or the connection broke) while
 * the request is in flight: its answer may still be read (a half-close),
 * but work that only waits can stop. */
int http_request_peer_gone(const struct http_request *req);

/* The reason phrase of a status code. */
const char *http_status_text(int status);

#endif
