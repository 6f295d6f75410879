/* worker/db.c - the libpq connection pool of worker/db.h: its life
 * (init, close, free), the queue of queries, the probe that notices a
 * silent server, and what the rest of the worker asks of it (is the
 * database up, ready for the balancer, too old). Each connection's
 * machine is worker/db_conn.c's; the URL's hosts worker/db_hosts.c's.
 */
#include "db.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../proto/log.h"
#include "db_conn.h"
#include "db_hosts.h"

/* A query waiting this long with no answer meanwhile: the server stalls. */
#define DB_STALL_MS 2500
/* Quiet this long: the probe asks the server something. */
#define DB_PROBE_MS 500

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

int db_ready_for_balancer(const struct db *db)
{
    uint64_t since;

    if (db_is_up(db))
        return 1;
    if (!db->ever_up || db->closing)
        return 0;
    since = db->up == 0 ? db->down_since_ms : db->last_answer_ms;
    return uv_now(db->loop) - since < (uint64_t)db->failover_wait_ms;
}

int db_schema_too_old(const struct db *db)
{
    return db->up == 0 && db->schema_old;
}

void db_query_send(struct db *db, struct db_query *q)
{
    q->retried = 0;
    if (q->nparams != db_statement_params(q->statement)) {
        log_emit(LOG_ERROR, "query_params_mismatch",
                 json_pack("{s:i, s:i, s:i}", "statement", (int)q->statement, "given", q->nparams, "takes",
                           db_statement_params(q->statement)));
        q->cb(q->arg, NULL);
        return;
    }
    if ((db->up == 0 && !db_in_failover_wait(db)) || db->closing || db->pending >= DB_PENDING_MAX) {
        q->cb(q->arg, NULL);
        return;
    }
    db_queue_push(db, q);
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
    db_query_init(&db->probe_query, DB_PROBE, db_on_probe_done, db);
    db->probe_busy = 1;
    db_query_send(db, &db->probe_query);
}

void db_set_failover_wait(struct db *db, int ms)
{
    db->failover_wait_ms = ms;
}

int db_init(struct db *db, uv_loop_t *loop, const char *url, int size, int schema_required,
            db_state_cb on_state, void *on_state_arg)
{
    const char *why = NULL;

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
    if (db_hosts_parse(db, url, &why) != 0) {
        log_emit(LOG_ERROR, "bad_settings", json_pack("{s:s}", "error", why));
        PQconninfoFree(db->options);
        free(db->url);
        free(db->conns);
        return -EINVAL;
    }
    db->down_since_ms = uv_now(loop);
    uv_timer_init(loop, &db->probe);
    db->probe.data = db;
    db->handles_open++;
    uv_timer_start(&db->probe, db_on_probe, DB_PROBE_MS, DB_PROBE_MS);
    uv_timer_init(loop, &db->wait_timer);
    db->wait_timer.data = db;
    db->handles_open++;
    if (db_hosts_start_resolver(db) != 0) {
        /* No thread of our own to resolve names: libpq resolves them
         * itself (on the loop, but it still connects). */
        log_emit(LOG_WARN, "db_resolver_failed", json_pack("{s:s}", "error", "cannot start the resolver thread"));
        for (int i = 0; i < db->host_count; i++)
            db->hosts[i].needs_resolve = 0;
    }
    for (int i = 0; i < size; i++)
        db_conn_start(db, &db->conns[i]);
    return 0;
}

void db_close(struct db *db)
{
    db->closing = 1;
    uv_timer_stop(&db->probe);
    uv_close((uv_handle_t *)&db->probe, db_on_handle_close);
    uv_timer_stop(&db->wait_timer);
    uv_close((uv_handle_t *)&db->wait_timer, db_on_handle_close);
    if (db->resolver != NULL) {
        db_hosts_stop_resolver(db);
        uv_close((uv_handle_t *)&db->resolved, db_on_handle_close);
    }
    for (int i = 0; i < db->size; i++)
        db_conn_stop(&db->conns[i]);
    db_fail_pending(db);
}

void db_free(struct db *db)
{
    PQconninfoFree(db->options);
    db->options = NULL;
    free(db->conns);
    free(db->url);
    db->conns = NULL;
    db->url = NULL;
}
