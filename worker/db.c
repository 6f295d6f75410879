/* worker/db.c - the libpq connection pool of worker/db.h.
 * Each connection is one state machine (enum db_conn_state), changed only
 * through db_conn_set_state(); the loop drives it through uv_poll_t events
 * on PQsocket() and a retry timer.
 */
#include "db.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../proto/log.h"

#define DB_BACKOFF_MIN_MS 100
#define DB_BACKOFF_MAX_MS 2000
/* A connect or a query that takes longer is given up (its request gets a
 * 503) and the connection is rebuilt: a server that vanished silently
 * (failover, partition, a stopped host) must not hang requests. */
#define DB_DEADLINE_MS 5000
#define DB_STALL_MS 2500
#define DB_PROBE_MS 500
#define DB_RFC3339(x) "to_char((" x ") AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"

/* The statements, prepared on every connection as "s<index>". */
static const struct {
    const char *sql;
    int nparams;
} db_statements[DB_STATEMENT_COUNT] = {
    [DB_SCHEMA_VERSION] = { "SELECT coalesce(max(version), 0) FROM schema_migrations", 0 },
    /* An attempt is checked and counted in one locked statement (002_attempts.sql;
     * wait_s -1: the window is full only of attempts in flight, 007).
     * Its commit is not waited for on disk: other attempts see the
     * provisional failure row as soon as it commits, and the attempt's own
     * outcome (FAILED, SUCCEEDED, CANCEL: synchronous commits) flushes it
     * with everything before it. Only a PostgreSQL crash inside that
     * window could lose the row, and that attempt then fails with 503. */
    [DB_LOGIN_BEGIN] = { "SELECT b.wait_s, b.user_id, b.password_hash, b.locked, b.attempt_id "
                         "FROM verona_attempt_start($1, $2, $3, $4, $5, $6, $7, $8) AS b, "
                         "set_config('synchronous_commit', 'off', true) AS nosync", 8 },
    [DB_LOGIN_FAILED] = { "SELECT verona_attempt_fail($1, $2, $3, $4)", 4 },
    /* NULL when the user was locked or the password changed since the
     * begin (004_success_recheck.sql). */
    [DB_LOGIN_SUCCEEDED] = { "SELECT " DB_RFC3339("verona_attempt_succeeded_checked($1, $2, $3, $4, $5, $6, $7, $8, $9)"), 9 },
    [DB_ATTEMPT_CANCEL] = { "SELECT verona_attempt_cancel($1)", 1 },
    /* A login's 503 before its password was judged (005_audit_unavailable.sql). */
    [DB_LOGIN_UNAVAILABLE] = { "SELECT verona_attempt_unavailable($1, $2, $3)", 3 },
    /* A login refused before it began an attempt (the hash queue full, no
     * room in a window after waiting): its audit row only, not waited for
     * on disk (a refusal flood must not become a flood of flushes). */
    [DB_LOGIN_AUDIT] = { "WITH nosync AS (SELECT set_config('synchronous_commit', 'off', true)) "
                         "INSERT INTO login_audit (username, address, result) SELECT $1, $2, $3 FROM nosync", 3 },
    /* The hot path: one indexed lookup, plain SQL. Column 3 says whether
     * last_used is over a minute old (then DB_SESSION_TOUCH writes it). */
    [DB_SESSION_GET] = { "SELECT s.user_id, u.username, "
                         DB_RFC3339("least(s.expires_abs, CASE WHEN s.last_used < now() - interval '60 seconds' "
                                    "THEN now() ELSE s.last_used END + make_interval(secs => s.idle_s))")
                         ", s.last_used < now() - interval '60 seconds', "
                         "extract(epoch FROM least(s.expires_abs, s.last_used + make_interval(secs => s.idle_s)))::bigint "
                         "FROM sessions s JOIN users u ON u.id = s.user_id "
                         "WHERE s.token_hash = $1 AND s.expires_abs > now() "
                         "AND s.last_used + make_interval(secs => s.idle_s) > now()", 1 },
    /* A batch: $1 is a text array of hex token hashes (worker/session_touch.c).
     * It never waits for a row lock, so it can never be part of a deadlock
     * (with another worker's batch, a logout-all, a password change or the
     * sweep, which lock several sessions each in their own order): a row
     * locked right now is being written by another batch (the same now())
     * or deleted, and is skipped. */
    [DB_SESSION_TOUCH] = { "WITH l AS (SELECT token_hash FROM sessions WHERE token_hash IN "
                           "(SELECT decode(h, 'hex') FROM unnest($1::text[]) AS t(h)) "
                           "FOR UPDATE SKIP LOCKED) "
                           "UPDATE sessions s SET last_used = now() FROM l WHERE s.token_hash = l.token_hash", 1 },
    /* The user (read in the statement's snapshot, before the delete) lets
     * the worker drop every cached session of a logout-all. */
    [DB_LOGOUT] = { "SELECT verona_logout($1, $2), (SELECT user_id FROM sessions WHERE token_hash = $1)", 2 },
    [DB_PASSWORD_BEGIN] = { "SELECT user_id, username, password_hash, wait_s, attempt_id "
                            "FROM verona_password_attempt_begin($1, $2, $3, $4, $5, $6, $7, $8) "
                            "WHERE user_id IS NOT NULL", 8 },
    /* false when locked, reset, changed or logged out since the begin
     * (006_password_recheck.sql). */
    [DB_PASSWORD_SET] = { "SELECT verona_password_attempt_set_checked($1, $2, $3, $4, $5)", 5 },
    [DB_REGISTER_WAIT] = { "SELECT verona_register_attempt($1)", 1 },
    [DB_REGISTER] = { "SELECT verona_register_user($1, $2)", 2 },
    [DB_SWEEP] = { "SELECT verona_sweep($1, $2)", 2 },
    [DB_PROBE] = { "SELECT 1", 0 },
};

static const char *const db_conn_state_names[] = { "down", "connecting", "preparing", "checking",
                                                   "idle", "busy" };

static void db_conn_connect(struct db_conn *c);
static void db_conn_on_poll(uv_poll_t *poll, int status, int events);
static void db_dispatch(struct db *db);

int db_result_ok(const PGresult *res)
{
    if (res == NULL)
        return 0;
    return PQresultStatus(res) == PGRES_TUPLES_OK || PQresultStatus(res) == PGRES_COMMAND_OK;
}

int db_is_up(const struct db *db)
{
    uint64_t now = uv_now(db->loop);

    if (db->up == 0)
        return 0;
    if (now - db->last_answer_ms <= DB_STALL_MS)
        return 1;
    for (int i = 0; i < db->size; i++)
        if (db->conns[i].state == DB_CONN_BUSY && now - db->conns[i].sent_ms > DB_STALL_MS)
            return 0;
    return 1;
}

int db_schema_too_old(const struct db *db)
{
    return db->up == 0 && db->schema_old;
}

static void db_on_handle_close(uv_handle_t *h)
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
        log_emit(db->up > 0 ? LOG_INFO : LOG_WARN, db->up > 0 ? "db_up" : "db_down", NULL);
        if (db->on_state != NULL)
            db->on_state(db->on_state_arg, db->up > 0);
    }
}

/* Fails every queued query; used when no connection is left up. */
static void db_fail_pending(struct db *db)
{
    while (db->pending_head != NULL) {
        struct db_query *q = db->pending_head;
        db->pending_head = q->next;
        if (db->pending_head == NULL)
            db->pending_tail = NULL;
        db->pending--;
        q->cb(q->arg, NULL);
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
    if (q != NULL)
        q->cb(q->arg, NULL);
    if (db->up == 0)
        db_fail_pending(db);
}

static void db_conn_on_retry(uv_timer_t *t)
{
    db_conn_connect(t->data);
}

static void db_conn_fail(struct db_conn *c, const char *why);
static void db_conn_prepare_next(struct db_conn *c);

static void db_conn_on_deadline(uv_timer_t *t)
{
    struct db_conn *c = t->data;

    db_conn_fail(c, c->state == DB_CONN_CONNECTING ? "connect timed out" : "query timed out");
}

/* The retry timer doubles as the deadline while a connection works. */
static void db_conn_arm_deadline(struct db_conn *c)
{
    uv_timer_start(&c->retry, db_conn_on_deadline, DB_DEADLINE_MS, 0);
}

static void db_conn_schedule_retry(struct db_conn *c)
{
    if (c->db->closing)
        return;
    uv_timer_start(&c->retry, db_conn_on_retry, (uint64_t)c->backoff_ms, 0);
    c->backoff_ms *= 2;
    if (c->backoff_ms > DB_BACKOFF_MAX_MS)
        c->backoff_ms = DB_BACKOFF_MAX_MS;
}

static void db_conn_fail(struct db_conn *c, const char *why)
{
    c->db->schema_old = 0;
    db_conn_lost(c, why);
    db_conn_schedule_retry(c);
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

/* Sends the next PREPARE, or turns IDLE once all are prepared. */
static void db_conn_prepare_next(struct db_conn *c)
{
    char name[16];

    if (c->prepared == DB_STATEMENT_COUNT) {
        c->backoff_ms = DB_BACKOFF_MIN_MS;
        c->db->schema_warned = 0;
        c->db->schema_old = 0;
        uv_timer_stop(&c->retry);
        db_conn_set_state(c, DB_CONN_IDLE);
        db_dispatch(c->db);
        return;
    }
    snprintf(name, sizeof(name), "s%d", c->prepared);
    if (!PQsendPrepare(c->pg, name, db_statements[c->prepared].sql,
                       db_statements[c->prepared].nparams, NULL)) {
        db_conn_fail(c, db_conn_error(c));
        return;
    }
    if (PQflush(c->pg) == 1)
        db_conn_watch(c, UV_READABLE | UV_WRITABLE);
}

static void db_conn_connect(struct db_conn *c)
{
    c->pg = PQconnectStart(c->db->url);
    if (c->pg == NULL || PQstatus(c->pg) == CONNECTION_BAD) {
        db_conn_fail(c, db_conn_error(c));
        return;
    }
    PQsetnonblocking(c->pg, 1);
    db_conn_set_state(c, DB_CONN_CONNECTING);
    db_conn_arm_deadline(c);
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

static void db_conn_on_poll(uv_poll_t *poll, int status, int events)
{
    struct db_conn *c = poll->data;
    int rc;

    if (status < 0) {
        db_conn_fail(c, uv_strerror(status));
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
        db_conn_fail(c, db_conn_error(c));
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
static void db_dispatch(struct db *db)
{
    for (int i = 0; i < db->size && db->pending_head != NULL; i++) {
        struct db_conn *c = &db->conns[i];
        struct db_query *q;

        if (c->state != DB_CONN_IDLE)
            continue;
        q = db->pending_head;
        db->pending_head = q->next;
        if (db->pending_head == NULL)
            db->pending_tail = NULL;
        db->pending--;
        if (db_conn_send(c, q) != 0) {
            /* Put it back first: db_conn_fail may fail the whole queue. */
            q->next = db->pending_head;
            db->pending_head = q;
            if (db->pending_tail == NULL)
                db->pending_tail = q;
            db->pending++;
            db_conn_fail(c, db_conn_error(c));
        }
    }
}

void db_query_send(struct db *db, struct db_query *q)
{
    if (db->up == 0 || db->closing || db->pending >= DB_PENDING_MAX) {
        q->cb(q->arg, NULL);
        return;
    }
    q->next = NULL;
    if (db->pending_tail != NULL)
        db->pending_tail->next = q;
    else
        db->pending_head = q;
    db->pending_tail = q;
    db->pending++;
    db_dispatch(db);
}

static void db_on_probe_done(void *arg, PGresult *res)
{
    struct db *db = arg;

    (void)res; /* an answer, whatever it says, moved last_answer_ms */
    db->probe_busy = 0;
}

/* Quiet for a second: ask, so that a server that stopped answering is
 * noticed before a user's query waits for it. */
static void db_on_probe(uv_timer_t *t)
{
    struct db *db = t->data;

    if (db->up == 0 || db->probe_busy || uv_now(db->loop) - db->last_answer_ms < DB_PROBE_MS)
        return;
    memset(&db->probe_query, 0, sizeof(db->probe_query));
    db->probe_query.statement = DB_PROBE;
    db->probe_query.cb = db_on_probe_done;
    db->probe_query.arg = db;
    db->probe_busy = 1;
    db_query_send(db, &db->probe_query);
}

int db_init(struct db *db, uv_loop_t *loop, const char *url, int size, int schema_required,
            db_state_cb on_state, void *on_state_arg)
{
    memset(db, 0, sizeof(*db));
    db->loop = loop;
    db->schema_required = schema_required;
    db->on_state = on_state;
    db->on_state_arg = on_state_arg;
    db->url = strdup(url);
    db->conns = calloc((size_t)size, sizeof(*db->conns));
    if (db->url == NULL || db->conns == NULL) {
        free(db->url);
        free(db->conns);
        return -ENOMEM;
    }
    db->size = size;
    uv_timer_init(loop, &db->probe);
    db->probe.data = db;
    db->handles_open++;
    uv_timer_start(&db->probe, db_on_probe, DB_PROBE_MS, DB_PROBE_MS);
    for (int i = 0; i < size; i++) {
        struct db_conn *c = &db->conns[i];
        c->db = db;
        c->fd = -1;
        c->backoff_ms = DB_BACKOFF_MIN_MS;
        uv_timer_init(loop, &c->retry);
        c->retry.data = c;
        db->handles_open++;
        db_conn_connect(c);
    }
    return 0;
}

void db_close(struct db *db)
{
    db->closing = 1;
    uv_timer_stop(&db->probe);
    uv_close((uv_handle_t *)&db->probe, db_on_handle_close);
    for (int i = 0; i < db->size; i++) {
        struct db_conn *c = &db->conns[i];
        if (c->pg != NULL || c->query != NULL)
            db_conn_lost(c, "closing");
        uv_timer_stop(&c->retry);
        c->retry.data = db;
        uv_close((uv_handle_t *)&c->retry, db_on_handle_close);
    }
    db_fail_pending(db);
}

void db_free(struct db *db)
{
    free(db->conns);
    free(db->url);
    db->conns = NULL;
    db->url = NULL;
}
