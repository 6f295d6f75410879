/* worker/db.h - PostgreSQL on the worker's event loop.
 *
 * A small pool of non-blocking libpq connections, each watched by a
 * uv_poll_t. Queries use statements prepared on every connection at
 * connect time. A dropped connection reconnects by itself with backoff.
 *
 * Several hosts (SPEC section 9): the URL may name a list; each connection
 * tries them one at a time from the one that last served, with a deadline
 * each, read-write sessions only, keepalives and tcp_user_timeout. Names
 * are resolved on a thread of the pool's own and given to libpq as
 * hostaddr, so nothing blocks the loop. A connection that answers with
 * SQLSTATE 57P01-57P03, 25006 (a demoted node) or class 08 is rebuilt.
 * While no connection is up, a query waits for one as long as the
 * database has been lost for less than the failover wait, then fails (the
 * caller answers 503); the query in flight on a lost connection is sent
 * again on the next one (every statement is safe to repeat: 008).
 */
#ifndef VERONA_WORKER_DB_H
#define VERONA_WORKER_DB_H

#include <libpq-fe.h>
#include <uv.h>

#define DB_PARAMS_MAX 9
#define DB_PENDING_MAX 4096
#define DB_HOSTS_MAX 8
#define DB_HOST_LABEL_MAX 280

/* The prepared statements; their SQL is in db.c beside the names. */
enum db_statement {
    DB_SCHEMA_VERSION = 0,
    DB_LOGIN_BEGIN,
    DB_LOGIN_FAILED,
    DB_LOGIN_SUCCEEDED,
    DB_ATTEMPT_CANCEL,
    DB_LOGIN_UNAVAILABLE,
    DB_LOGIN_AUDIT,
    DB_SESSION_GET,
    DB_SESSION_TOUCH,
    DB_LOGOUT,
    DB_PASSWORD_BEGIN,
    DB_PASSWORD_SET,
    DB_REGISTER_WAIT,
    DB_REGISTER,
    DB_SWEEP,
    DB_HASH_PARAMS,
    DB_PROBE,
    DB_STATEMENT_COUNT
};

/* `res` is NULL when the query could not run (no connection, connection
 * lost); otherwise its status may still be an error. The pool clears `res`
 * after the callback returns. */
typedef void (*db_query_cb)(void *arg, PGresult *res);

/* A query in flight. The caller owns it and the parameter memory until
 * the callback runs; the callback runs exactly once. */
struct db_query {
    enum db_statement statement;
    int nparams;
    const char *values[DB_PARAMS_MAX];
    int lengths[DB_PARAMS_MAX];
    int formats[DB_PARAMS_MAX];
    db_query_cb cb;
    void *arg;
    int retried;           /* sent again after a lost connection (the pool sets it) */
    struct db_query *next; /* pending list; the pool's */
};

enum db_conn_state {
    DB_CONN_DOWN = 0,   /* waiting for the retry timer */
    DB_CONN_CONNECTING, /* PQconnectPoll in progress */
    DB_CONN_PREPARING,  /* preparing statement `prepared` */
    DB_CONN_CHECKING,   /* reading the schema version (statement 0) */
    DB_CONN_IDLE,       /* ready for a query */
    DB_CONN_BUSY,       /* one query in flight */
};

struct db;

struct db_conn {
    struct db *db;
    PGconn *pg;              /* owned; NULL when down */
    uv_poll_t *poll;         /* owned; freed in its close callback */
    int fd;                  /* the socket `poll` watches, -1 if none */
    enum db_conn_state state;
    int prepared;            /* statements prepared so far */
    struct db_query *query;  /* in flight (BUSY) */
    PGresult *result;        /* first result of the query in flight */
    uv_timer_t retry;
    int backoff_ms;
    int host;                /* index in db->hosts being tried or used */
    int cycle_fails;         /* failed tries since the last pass over every host */
    int lost_cause;          /* why the query in flight failed: DB_LOST_* (db.c) */
    uint64_t sent_ms;        /* when the query in flight was sent */
};

/* One host of the URL: its name as written ("" = libpq's default socket),
 * its port ("" = default), and its numeric address once resolved (or at
 * once for a literal; "" for a socket folder, which is not resolved). */
struct db_host {
    char name[256];
    char port[16];
    char addr[64];
    int needs_resolve;
    uint64_t silent_until_ms;  /* a connect timed out: tried last until then */
};

struct db_resolver;

typedef void (*db_state_cb)(void *arg, int up);
/* The primary the pool reaches changed (from: "" the first time). */
typedef void (*db_primary_cb)(void *arg, const char *from, const char *to);

struct db {
    uv_loop_t *loop;
    char *url;                /* owned */
    struct db_conn *conns;    /* owned, `size` of them */
    int size;
    int up;                   /* connections IDLE or BUSY */
    struct db_query *pending_head, *pending_tail;
    int pending;
    int closing;
    int handles_open;         /* timers + polls not yet closed */
    int schema_required;      /* the migrations this build needs */
    int schema_version;       /* as the last connection read it */
    int schema_warned;        /* schema_too_old logged since a connection was last up */
    int schema_old;           /* the last connection attempt found an older schema */
    db_state_cb on_state;     /* called when `up` changes from/to 0 */
    void *on_state_arg;
    uint64_t last_answer_ms;  /* the last time PostgreSQL answered a query */
    uv_timer_t probe;         /* asks PostgreSQL something when all is quiet */
    struct db_query probe_query;
    int probe_busy;

    PQconninfoOption *options;  /* the URL parsed (owned), host/port/hostaddr aside */
    struct db_host hosts[DB_HOSTS_MAX];
    int host_count;
    int host_next;            /* where a new connection starts */
    struct db_resolver *resolver; /* NULL when every host is numeric or a socket */
    uv_async_t resolved;      /* the resolver's "new addresses" */
    int failover_wait_ms;
    uv_timer_t wait_timer;    /* ends the wait of queued queries */
    uint64_t down_since_ms;   /* when `up` last fell to 0 (or start) */
    int ever_up;
    char primary[DB_HOST_LABEL_MAX]; /* host:port the pool last reached, "" */
    uint64_t primary_changes;
    db_primary_cb on_primary;
    void *on_primary_arg;
};

/* Starts connecting `size` connections to `url`. A connection reads the
 * schema version before it prepares anything, and is up only when the
 * database has `schema_required` migrations: on an older schema it logs
 * `schema_too_old` (once a series) and retries. Returns 0 or -ENOMEM. */
int db_init(struct db *db, uv_loop_t *loop, const char *url, int size, int schema_required,
            db_state_cb on_state, void *on_state_arg);

/* How long queries wait for a primary while none is up (0: never). */
void db_set_failover_wait(struct db *db, int ms);

/* 1 while the database has been lost for less than the failover wait
 * (after it was up once): requests wait, and /readyz stays 200. */
int db_in_failover_wait(const struct db *db);

/* A statement's SQL and how many parameters it takes (worker/db_query.c). */
const char *db_statement_sql(enum db_statement s);
int db_statement_params(enum db_statement s);

/* Sets `q` up for `statement`, no parameters yet; its answer goes to
 * cb(arg, result). */
void db_query_init(struct db_query *q, enum db_statement statement, db_query_cb cb, void *arg);

/* Appends a text parameter (NULL: SQL NULL). The value must live until
 * the answer. */
void db_query_text(struct db_query *q, const char *value);

/* Appends a binary parameter of `length` bytes (a token hash). */
void db_query_binary(struct db_query *q, const void *value, int length);

/* Runs `q`, now or when a connection frees up; with no connection up it
 * waits for one (db_in_failover_wait), else the callback runs at once with
 * NULL (before db_query_send returns). Clears q->retried. */
void db_query_send(struct db *db, struct db_query *q);

/* 1 when at least one connection is up and PostgreSQL answers: not when
 * a query has waited over 2.5 s for an answer and none came in that time
 * (a frozen server keeps its connections open). After every quiet half
 * second a probe query runs, so a stall shows without traffic. */
int db_is_up(const struct db *db);

/* /readyz: 1 while PostgreSQL answers, and during a failover until it has
 * been lost (or silent) for the failover wait, so that a balancer keeps
 * the hosts whose requests wait for a new primary (SPEC 10.3). */
int db_ready_for_balancer(const struct db *db);

/* 1 when none is up because the database lacks this build's migrations. */
int db_schema_too_old(const struct db *db);

/* Fails pending queries, closes connections and handles. The loop must run
 * until the handles are closed (`handles_open` reaches 0). */
void db_close(struct db *db);

/* Frees what db_init allocated, once `handles_open` is 0. */
void db_free(struct db *db);

/* 1 for a result that carries rows or a completed command. */
int db_result_ok(const PGresult *res);

#endif
