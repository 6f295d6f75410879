/* worker/db_conn.c - one connection of the pool (worker/db.h): its
 * machine (enum db_conn_state, changed only through db_conn_set_state(),
 * which keeps the pool's count of connections up), connecting host after
 * host, preparing the statements, the schema check, sending a query and
 * reading its answer, losing the connection and retrying; and handing the
 * queued queries to idle connections (db_dispatch). The loop drives it
 * through uv_poll_t events on PQsocket() and a retry timer. The pool's
 * own life and its public calls are worker/db.c's.
 */
#include "db_conn.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "../proto/log.h"
#include "db_hosts.h"

#define DB_BACKOFF_MIN_MS 100
#define DB_BACKOFF_MAX_MS 2000
/* With several hosts a pass costs little (a demoted node refuses at once)
 * and a new primary should be found soon after its promotion. */
#define DB_BACKOFF_MAX_MULTI_MS 500
/* A host whose connect timed out (cut off, powered down) is tried after
 * the others for this long, so that each pass does not wait on it. */
#define DB_SILENT_SKIP_MS 5000
/* A connect or a query that takes longer is given up (its request gets a
 * 503) and the connection is rebuilt: a server that vanished silently
 * (failover, partition, a stopped host) must not hang requests. */
#define DB_DEADLINE_MS 5000
/* One host's connect (TCP, TLS, auth, the read-write check) may take this
 * long before the next host is tried. */
#define DB_CONNECT_HOST_MS 3000
/* A query sent again after lost connections at most this often. */
#define DB_RETRIES_MAX 3
/* db_conn.lost_cause: what is known of a query in flight that failed. */
enum { DB_LOST_UNKNOWN = 0, DB_LOST_ABORTED, DB_LOST_NOT_RUN, DB_LOST_TIMED_OUT };

static const char *const db_conn_state_names[] = { "down", "connecting", "preparing", "checking",
                                                   "idle", "busy" };

static void db_conn_on_poll(uv_poll_t *poll, int status, int events);
static void db_conn_connect(struct db_conn *c);
static void db_conn_fail(struct db_conn *c, const char *why);
static void db_conn_prepare_next(struct db_conn *c);

void db_on_handle_close(uv_handle_t *h)
{
    struct db *db = h->data;

    if (h->type == UV_POLL)
        free(h);
    db->handles_open--;
}

static int db_state_is_up(enum db_conn_state s)
{
    return s == DB_CONN_IDLE || s == DB_CONN_BUSY;
}

/* The one place a connection changes state; keeps db->up and logs. */
static void db_conn_set_state(struct db_conn *c, enum db_conn_state next)
{
    struct db *db = c->db;
    int was_up = db_state_is_up(c->state), is_up = db_state_is_up(next);
    int pool_was_up = db->up > 0;

    if (c->state == next)
        return;
    log_emit(LOG_DEBUG, "db_connection_state",
             json_pack("{s:i, s:s, s:s}", "connection", (int)(c - db->conns), "from",
                       db_conn_state_names[c->state], "to", db_conn_state_names[next]));
    c->state = next;
    db->up += is_up - was_up;
    if (is_up && !was_up)
        db->last_answer_ms = uv_now(db->loop);
    if (pool_was_up != (db->up > 0) && !db->closing) {
        if (db->up == 0) {
            db->down_since_ms = uv_now(db->loop);
            if (db->ever_up && db->failover_wait_ms > 0)
                uv_timer_start(&db->wait_timer, db_queue_on_wait_over, (uint64_t)db->failover_wait_ms, 0);
        } else {
            db->ever_up = 1;
            uv_timer_stop(&db->wait_timer);
        }
        log_emit(db->up > 0 ? LOG_INFO : LOG_WARN, db->up > 0 ? "db_up" : "db_down", NULL);
        if (db->on_state != NULL)
            db->on_state(db->on_state_arg, db->up > 0);
    }
}

/* Stops watching the current socket (before PQfinish closes it). */
static void db_conn_unwatch(struct db_conn *c)
{
    if (c->poll != NULL) {
        uv_poll_stop(c->poll);
        c->poll->data = c->db;
        uv_close((uv_handle_t *)c->poll, db_on_handle_close);
        c->poll = NULL;
    }
    c->fd = -1;
}

/* (Re)points the poll watcher at PQsocket(), which can change after
 * PQconnectPoll, and asks for `events`. Returns 0 or a negative errno. */
static int db_conn_watch(struct db_conn *c, int events)
{
    int fd = PQsocket(c->pg);

    if (fd < 0)
        return -EBADF;
    if (c->poll != NULL && fd != c->fd)
        db_conn_unwatch(c);
    if (c->poll == NULL) {
        int rc;

        c->poll = malloc(sizeof(*c->poll));
        if (c->poll == NULL)
            return -ENOMEM;
        rc = uv_poll_init(c->db->loop, c->poll, fd);
        if (rc != 0) {
            free(c->poll);
            c->poll = NULL;
            return rc;
        }
        c->db->handles_open++;
        c->poll->data = c;
        c->fd = fd;
    }
    return uv_poll_start(c->poll, events, db_conn_on_poll);
}

/* Tears the connection down. The query in flight (if any) fails. `why`
 * NULL: the caller has said why itself. */
static void db_conn_lost(struct db_conn *c, const char *why)
{
    struct db *db = c->db;
    struct db_query *q = c->query;

    uv_timer_stop(&c->retry);
    /* Log a connection that was up going down, and the first failed
     * attempt of a series; the retries that follow would only repeat it. */
    if (why != NULL && !db->closing && (db_state_is_up(c->state) || c->backoff_ms <= DB_BACKOFF_MIN_MS))
        log_emit(LOG_WARN, "db_connection_lost",
                 json_pack("{s:i, s:s}", "connection", (int)(c - db->conns), "error", why));
    db_conn_unwatch(c);
    if (c->pg != NULL) {
        PQfinish(c->pg);
        c->pg = NULL;
    }
    if (c->result != NULL) {
        PQclear(c->result);
        c->result = NULL;
    }
    c->query = NULL;
    db_conn_set_state(c, DB_CONN_DOWN);
    if (q != NULL && !db->closing && q->retried < DB_RETRIES_MAX && db_statement_may_repeat(q->statement, c->lost_cause == DB_LOST_TIMED_OUT) &&
        (db->up > 0 || db_in_failover_wait(db))) {
        /* Its answer is lost: send it again first, on the next connection
         * up (every statement is safe to repeat, 008). */
        q->retried++;
        db_queue_push_front(db, q);
        q = NULL;
    }
    c->lost_cause = DB_LOST_UNKNOWN;
    if (q != NULL)
        q->cb(q->arg, NULL);
    if (db->up == 0 && !db_in_failover_wait(db))
        db_fail_pending(db);
    else if (db->up > 0)
        db_dispatch(db);
}

static void db_conn_on_retry(uv_timer_t *t)
{
    db_conn_connect(t->data);
}

static void db_conn_on_deadline(uv_timer_t *t)
{
    struct db_conn *c = t->data;

    if (c->state == DB_CONN_CONNECTING)
        c->db->hosts[c->host].silent_until_ms = uv_now(c->db->loop) + DB_SILENT_SKIP_MS;
    else
        c->lost_cause = DB_LOST_TIMED_OUT;
    db_conn_fail(c, c->state == DB_CONN_CONNECTING ? "connect timed out" : "query timed out");
}

/* The retry timer doubles as the deadline while a connection works. */
static void db_conn_arm_deadline(struct db_conn *c)
{
    uv_timer_start(&c->retry, db_conn_on_deadline, DB_DEADLINE_MS, 0);
}

/* The next host at once after a failure; the backoff only once every
 * host has failed in a row (one host: the backoff every time). */
static void db_conn_schedule_retry(struct db_conn *c)
{
    struct db *db = c->db;

    if (db->closing)
        return;
    if (++c->cycle_fails < db->host_count) {
        uv_timer_start(&c->retry, db_conn_on_retry, 0, 0);
        return;
    }
    c->cycle_fails = 0;
    uv_timer_start(&c->retry, db_conn_on_retry, (uint64_t)c->backoff_ms, 0);
    c->backoff_ms *= 2;
    if (c->backoff_ms > (db->host_count > 1 ? DB_BACKOFF_MAX_MULTI_MS : DB_BACKOFF_MAX_MS))
        c->backoff_ms = db->host_count > 1 ? DB_BACKOFF_MAX_MULTI_MS : DB_BACKOFF_MAX_MS;
}

static void db_conn_fail(struct db_conn *c, const char *why)
{
    struct db *db = c->db;

    db->schema_old = 0;
    /* Move the pool on from a host that failed (unless another connection
     * already did); a name may point elsewhere by now. */
    if (db->host_next == c->host && db->host_count > 1)
        db->host_next = (c->host + 1) % db->host_count;
    if (db->hosts[c->host].needs_resolve)
        db_hosts_resolve(db);
    db_conn_lost(c, why);
    db_conn_schedule_retry(c);
}

/* A connection that was up failed the way a node going away fails (shut
 * down, demoted, gone): the idle connections to the same host are on the
 * same node, and a query sent again must not meet them. Rebuilt too. */
static void db_conn_fail_node(struct db_conn *c, const char *why)
{
    struct db *db = c->db;

    if (db_state_is_up(c->state))
        for (int i = 0; i < db->size; i++) {
            struct db_conn *o = &db->conns[i];

            if (o != c && o->state == DB_CONN_IDLE && o->host == c->host) {
                db_conn_lost(o, NULL);
                db_conn_schedule_retry(o);
            }
        }
    db_conn_fail(c, why);
}

static const char *db_conn_error(struct db_conn *c)
{
    const char *msg = c->pg != NULL ? PQerrorMessage(c->pg) : "out of memory";
    return msg[0] != '\0' ? msg : "connection failed";
}

/* The database lacks migrations this build needs: say so once a series
 * (the hint is the fix), and try again later. Every statement after the
 * version query may name a function the old schema lacks. */
static void db_conn_schema_too_old(struct db_conn *c, int version)
{
    struct db *db = c->db;

    db->schema_version = version;
    db->schema_old = 1;
    if (!db->schema_warned && !db->closing) {
        db->schema_warned = 1;
        log_emit(LOG_ERROR, "schema_too_old",
                 json_pack("{s:i, s:i, s:s}", "database", version, "required", db->schema_required,
                           "hint", "run `verona migrate`"));
    }
    db_conn_lost(c, NULL);
    db_conn_schedule_retry(c);
}

/* Statement 0 is prepared: run it before preparing the rest. */
static void db_conn_check_schema(struct db_conn *c)
{
    if (!PQsendQueryPrepared(c->pg, "s0", 0, NULL, NULL, NULL, 0)) {
        db_conn_fail(c, db_conn_error(c));
        return;
    }
    db_conn_set_state(c, DB_CONN_CHECKING);
    if (PQflush(c->pg) == 1)
        db_conn_watch(c, UV_READABLE | UV_WRITABLE);
}

/* The schema version arrived: go on preparing, or wait for a migrate. */
static void db_conn_on_schema_version(struct db_conn *c, PGresult *res)
{
    if (!db_result_ok(res) || PQntuples(res) != 1) {
        db_conn_fail(c, res != NULL ? PQresultErrorMessage(res) : db_conn_error(c));
        return;
    }
    c->db->schema_version = atoi(PQgetvalue(res, 0, 0));
    if (c->db->schema_version < c->db->schema_required) {
        db_conn_schema_too_old(c, c->db->schema_version);
        return;
    }
    db_conn_set_state(c, DB_CONN_PREPARING);
    db_conn_prepare_next(c);
}

/* A connection is up on a read-write node: if it is not the one the pool
 * used so far, the primary changed (a failover or switchover). */
static void db_conn_on_primary(struct db_conn *c)
{
    struct db *db = c->db;
    char label[DB_HOST_LABEL_MAX], from[DB_HOST_LABEL_MAX];

    db->host_next = c->host;
    db->hosts[c->host].silent_until_ms = 0;
    db_hosts_label(c, label, sizeof(label));
    if (strcmp(label, db->primary) == 0)
        return;
    snprintf(from, sizeof(from), "%s", db->primary);
    snprintf(db->primary, sizeof(db->primary), "%s", label);
    if (from[0] == '\0')
        return; /* the first connection: nothing changed */
    db->primary_changes++;
    log_emit(LOG_WARN, "db_primary_changed", json_pack("{s:s, s:s}", "from", from, "to", label));
    if (db->on_primary != NULL)
        db->on_primary(db->on_primary_arg, from, label);
}

/* Sends the next PREPARE, or turns IDLE once all are prepared. */
static void db_conn_prepare_next(struct db_conn *c)
{
    char name[16];

    if (c->prepared == DB_STATEMENT_COUNT) {
        c->backoff_ms = DB_BACKOFF_MIN_MS;
        c->cycle_fails = 0;
        c->db->schema_warned = 0;
        c->db->schema_old = 0;
        uv_timer_stop(&c->retry);
        db_conn_on_primary(c);
        db_conn_set_state(c, DB_CONN_IDLE);
        db_dispatch(c->db);
        return;
    }
    snprintf(name, sizeof(name), "s%d", c->prepared);
    if (!PQsendPrepare(c->pg, name, db_statement_sql(c->prepared),
                       db_statement_params(c->prepared), NULL)) {
        db_conn_fail(c, db_conn_error(c));
        return;
    }
    if (PQflush(c->pg) == 1)
        db_conn_watch(c, UV_READABLE | UV_WRITABLE);
}

static void db_conn_connect(struct db_conn *c)
{
    struct db *db = c->db;
    const char *keys[64], *vals[64];

    /* While no connection is up, the pool's connections start from
     * different hosts, so that one pass of them asks every host: a new
     * primary is found as soon as it is promoted, whichever it is. */
    int base = db->up == 0 ? (db->host_next + (int)(c - db->conns)) % db->host_count : db->host_next;

    c->host = base;
    /* Past a host that went silent lately, unless every host did. */
    for (int i = 0; i < db->host_count; i++) {
        int h = (base + i) % db->host_count;

        if (db->hosts[h].silent_until_ms <= uv_now(db->loop)) {
            c->host = h;
            break;
        }
    }
    if (db->hosts[c->host].needs_resolve && db->hosts[c->host].addr[0] == '\0') {
        /* Not looked up yet: never let libpq resolve it on the loop. */
        db_hosts_resolve(db);
        db->host_next = (c->host + 1) % db->host_count;
        uv_timer_start(&c->retry, db_conn_on_retry, DB_BACKOFF_MIN_MS, 0);
        return;
    }
    db_hosts_conn_params(db, &db->hosts[c->host], keys, vals, 64);
    c->pg = PQconnectStartParams(keys, vals, 0);
    if (c->pg == NULL || PQstatus(c->pg) == CONNECTION_BAD) {
        db_conn_fail(c, db_conn_error(c));
        return;
    }
    PQsetnonblocking(c->pg, 1);
    db_conn_set_state(c, DB_CONN_CONNECTING);
    uv_timer_start(&c->retry, db_conn_on_deadline, DB_CONNECT_HOST_MS, 0);
    if (db_conn_watch(c, UV_WRITABLE) != 0)
        db_conn_fail(c, "cannot watch the connection's socket");
}

static void db_conn_on_connect_poll(struct db_conn *c)
{
    switch (PQconnectPoll(c->pg)) {
    case PGRES_POLLING_READING:
        if (db_conn_watch(c, UV_READABLE) != 0)
            db_conn_fail(c, "cannot watch the connection's socket");
        return;
    case PGRES_POLLING_WRITING:
        if (db_conn_watch(c, UV_WRITABLE) != 0)
            db_conn_fail(c, "cannot watch the connection's socket");
        return;
    case PGRES_POLLING_OK:
        if (db_conn_watch(c, UV_READABLE) != 0) {
            db_conn_fail(c, "cannot watch the connection's socket");
            return;
        }
        c->prepared = 0;
        db_conn_set_state(c, DB_CONN_PREPARING);
        db_conn_prepare_next(c);
        return;
    default:
        db_conn_fail(c, db_conn_error(c));
        return;
    }
}

/* Reads what arrived; collects results of the command in flight. Returns
 * 1 when the command finished (its first result in c->result), 0 when more
 * is to come, -1 when the connection broke. */
static int db_conn_read(struct db_conn *c)
{
    if (!PQconsumeInput(c->pg))
        return -1;
    while (!PQisBusy(c->pg)) {
        PGresult *res = PQgetResult(c->pg);
        if (res == NULL)
            return 1;
        if (c->result == NULL)
            c->result = res;
        else
            PQclear(res);
    }
    return 0;
}

/* libuv reports a socket's error condition (a reset, a refused connect)
 * as UV_EBADF; the socket itself says which error it was. */
static const char *db_conn_socket_error(struct db_conn *c, int status)
{
    int err = 0;
    socklen_t len = sizeof(err);

    if (status == UV_EBADF && c->fd >= 0 && getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err != 0)
        return uv_strerror(uv_translate_sys_error(err));
    return uv_strerror(status);
}

static void db_conn_on_poll(uv_poll_t *poll, int status, int events)
{
    struct db_conn *c = poll->data;
    int rc;

    if (status < 0) {
        db_conn_fail_node(c, db_conn_socket_error(c, status));
        return;
    }
    if (c->state == DB_CONN_CONNECTING) {
        db_conn_on_connect_poll(c);
        return;
    }
    if (events & UV_WRITABLE) {
        rc = PQflush(c->pg);
        if (rc < 0) {
            db_conn_fail(c, db_conn_error(c));
            return;
        }
        if (rc == 0)
            db_conn_watch(c, UV_READABLE);
    }
    if (!(events & UV_READABLE))
        return;
    rc = db_conn_read(c);
    if (rc < 0 || PQstatus(c->pg) == CONNECTION_BAD) {
        db_conn_fail_node(c, db_conn_error(c));
        return;
    }
    if (rc == 0)
        return;

    if (c->state == DB_CONN_PREPARING) {
        int ok = db_result_ok(c->result);
        /* No schema_migrations table: never migrated. */
        const char *state = c->result != NULL ? PQresultErrorField(c->result, PG_DIAG_SQLSTATE) : NULL;
        int no_table = c->prepared == DB_SCHEMA_VERSION && state != NULL && strcmp(state, "42P01") == 0;

        if (c->result != NULL)
            PQclear(c->result);
        c->result = NULL;
        if (no_table) {
            db_conn_schema_too_old(c, 0);
            return;
        }
        if (!ok) {
            db_conn_fail(c, db_conn_error(c));
            return;
        }
        c->prepared++;
        if (c->prepared == DB_SCHEMA_VERSION + 1)
            db_conn_check_schema(c);
        else
            db_conn_prepare_next(c);
    } else if (c->state == DB_CONN_CHECKING) {
        PGresult *res = c->result;

        c->result = NULL;
        db_conn_on_schema_version(c, res);
        PQclear(res);
    } else if (c->state == DB_CONN_BUSY) {
        struct db_query *q = c->query;
        PGresult *res = c->result;

        if (db_result_failover(res)) {
            /* A node shutting down or demoted: the statement did not
             * commit there (or its answer is lost). Rebuild the connection;
             * db_conn_lost sends the query again on the next one up. */
            char why[128];
            const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);

            /* 25006 and 57P03: refused before it ran; the others: an
             * error answer, so it did not commit (or, committed locally,
             * lost its wait for the standby). */
            c->lost_cause = strcmp(state, "25006") == 0 || strcmp(state, "57P03") == 0 ? DB_LOST_NOT_RUN
                                                                                     : DB_LOST_ABORTED;
            snprintf(why, sizeof(why), "SQLSTATE %s", state);
            db_conn_fail_node(c, why);
            return;
        }

        c->query = NULL;
        c->result = NULL;
        uv_timer_stop(&c->retry);
        c->db->last_answer_ms = uv_now(c->db->loop);
        db_conn_set_state(c, DB_CONN_IDLE);
        q->cb(q->arg, res);
        PQclear(res);
        db_dispatch(c->db);
    } else {
        /* IDLE: a notice, or the server closing the connection. */
        if (c->result != NULL) {
            PQclear(c->result);
            c->result = NULL;
        }
    }
}

static int db_conn_send(struct db_conn *c, struct db_query *q)
{
    char name[16];

    snprintf(name, sizeof(name), "s%d", (int)q->statement);
    if (!PQsendQueryPrepared(c->pg, name, q->nparams, q->values, q->lengths, q->formats, 0))
        return -1;
    c->query = q;
    c->sent_ms = uv_now(c->db->loop);
    db_conn_set_state(c, DB_CONN_BUSY);
    db_conn_arm_deadline(c);
    if (PQflush(c->pg) == 1)
        db_conn_watch(c, UV_READABLE | UV_WRITABLE);
    return 0;
}

/* Hands queued queries to idle connections. */
void db_dispatch(struct db *db)
{
    for (int i = 0; i < db->size && db->pending_head != NULL; i++) {
        struct db_conn *c = &db->conns[i];
        struct db_query *q;

        if (c->state != DB_CONN_IDLE)
            continue;
        q = db_queue_pop(db);
        if (db_conn_send(c, q) != 0) {
            /* Put it back first: db_conn_fail may fail the whole queue. */
            db_queue_push_front(db, q);
            db_conn_fail(c, db_conn_error(c));
        }
    }
}

void db_conn_start(struct db *db, struct db_conn *c)
{
    c->db = db;
    c->fd = -1;
    c->backoff_ms = DB_BACKOFF_MIN_MS;
    uv_timer_init(db->loop, &c->retry);
    c->retry.data = c;
    db->handles_open++;
    db_conn_connect(c);
}

void db_conn_stop(struct db_conn *c)
{
    struct db *db = c->db;

    if (c->pg != NULL || c->query != NULL)
        db_conn_lost(c, "closing");
    uv_timer_stop(&c->retry);
    c->retry.data = db;
    uv_close((uv_handle_t *)&c->retry, db_on_handle_close);
}
