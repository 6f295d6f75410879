/* proto/control.h - the control protocol between `verona serve` and each
 * `verona-worker`, over the worker's own socketpair (fd 4).
 *
 * A frame is an 8-byte header and a JSON object:
 *
 *   offset 0  u8   magic 'V'
 *   offset 1  u8   protocol version (CONTROL_VERSION)
 *   offset 2  u8   message type (enum control_type)
 *   offset 3  u8   0 (reserved)
 *   offset 4  u32  payload length, big-endian
 *   offset 8  payload: one JSON object, UTF-8, no duplicate keys
 *
 * A whole frame is at most CONTROL_FRAME_MAX bytes. Anything else (bad
 * magic, other version, unknown type, oversized, bad JSON, a missing or
 * mistyped member) is a protocol error: the supervisor kills that worker,
 * the worker exits.
 *
 * The conversation:
 *   worker -> HELLO {pid, versions[], build_id}
 *   supervisor -> SETTINGS {settings: "key = value\n..."}
 *   worker -> READY {}              its loop runs, SELECT 1 and the schema check passed
 *   supervisor -> ACCEPT {}         start accepting on the shared socket
 *   supervisor -> PING {seq}        every health_interval_ms
 *   worker -> PONG {seq, state, counters...}   from the worker's event loop
 *   supervisor -> DRAIN {}          stop accepting, finish, exit
 *   worker -> PONG {seq 0, ...}      unasked, its final counters, then
 *   worker -> GOODBYE {reason}      just before it exits
 */
#ifndef VERONA_PROTO_CONTROL_H
#define VERONA_PROTO_CONTROL_H

#include <stddef.h>
#include <stdint.h>

#define CONTROL_VERSION 1
#define CONTROL_HEADER_SIZE 8
#define CONTROL_FRAME_MAX 65536
#define CONTROL_FD 4
#define CONTROL_LISTEN_FD 3
#define CONTROL_BUILD_ID_MAX 64

enum control_type {
    CONTROL_HELLO = 1,
    CONTROL_SETTINGS,
    CONTROL_READY,
    CONTROL_ACCEPT,
    CONTROL_PING,
    CONTROL_PONG,
    CONTROL_DRAIN,
    CONTROL_GOODBYE,
    CONTROL_TYPE_MAX = CONTROL_GOODBYE
};

/* The routes and statuses counters are kept by. */
enum control_route {
    ROUTE_USERS = 0,
    ROUTE_LOGIN,
    ROUTE_SESSION,
    ROUTE_LOGOUT,
    ROUTE_PASSWORD,
    ROUTE_HEALTHZ,
    ROUTE_READYZ,
    ROUTE_OTHER,
    ROUTE_COUNT
};

enum control_login_result {
    LOGIN_SUCCESS = 0,
    LOGIN_INVALID_CREDENTIALS,
    LOGIN_THROTTLED,
    LOGIN_UNAVAILABLE,
    LOGIN_INVALID_REQUEST,
    LOGIN_RESULT_COUNT
};

#define CONTROL_STATUS_COUNT 17   /* the codes of control_statuses[], then "other" */
#define CONTROL_LATENCY_BUCKETS 12 /* upper bounds in control_latency_bounds_us[], then +Inf */

extern const char *const control_route_names[ROUTE_COUNT];
extern const char *const control_login_result_names[LOGIN_RESULT_COUNT];
extern const int control_statuses[CONTROL_STATUS_COUNT - 1];
extern const uint64_t control_latency_bounds_us[CONTROL_LATENCY_BUCKETS - 1];

/* A worker's cumulative counters (since it started). */
struct control_counters {
    uint64_t requests[ROUTE_COUNT][CONTROL_STATUS_COUNT];
    uint64_t latency[ROUTE_COUNT][CONTROL_LATENCY_BUCKETS]; /* per bucket, not cumulative */
    uint64_t latency_sum_us[ROUTE_COUNT];
    uint64_t logins[LOGIN_RESULT_COUNT];
    uint64_t connections_accepted;
    uint64_t session_cache_hits;   /* session checks answered from the worker's cache */
    uint64_t session_cache_misses; /* and those that asked PostgreSQL */
    uint64_t db_primary_changes;   /* the primary the worker reaches changed (SPEC 9) */
};

/* Adds every counter of `c` into `sum` (the struct is all uint64_t). */
void control_counters_add(struct control_counters *sum, const struct control_counters *c);

#define CONTROL_DB_HOST_MAX 280

/* One decoded or to-be-encoded message. Only the members of its type
 * matter. */
struct control_msg {
    enum control_type type;
    /* HELLO */
    int pid;
    int version;
    char build_id[CONTROL_BUILD_ID_MAX];
    /* SETTINGS */
    char *settings;           /* decoded: owned (control_msg_fini); encoded: borrowed */
    /* PING, PONG */
    uint64_t seq;
    /* PONG */
    char state[16];           /* "starting", "ready", "draining" */
    int connections;
    int in_flight;
    int hash_queue;
    int db_up;
    char db_host[CONTROL_DB_HOST_MAX]; /* host:port of the primary in use, "" when none yet */
    struct control_counters counters;
    /* GOODBYE */
    char reason[64];
};

/* Index of a status code in control_statuses (the last index: other). */
int control_status_index(int status);

/* Bucket of a latency in microseconds. */
int control_latency_bucket(uint64_t us);

/* Encodes `msg` as one frame into a malloc'd buffer (*out, *len).
 * Returns 0, or -1 (out of memory, or a frame over CONTROL_FRAME_MAX). */
int control_msg_encode(const struct control_msg *msg, char **out, size_t *len);

/* Decodes the frame at the start of buf[0..len). Returns the frame's size
 * (> 0) with *msg filled, 0 when more bytes are needed, or -1 with a
 * message in err when the bytes are not a valid frame. `msg->settings`
 * (SETTINGS) points into a copy owned by *msg: release with
 * control_msg_fini(). */
long control_msg_decode(const char *buf, size_t len, struct control_msg *msg, char *err,
                        size_t errsize);

/* Releases what control_msg_decode allocated. */
void control_msg_fini(struct control_msg *msg);

/* The name of a message type ("hello", ...), or "unknown". */
const char *control_type_name(int type);

#endif
