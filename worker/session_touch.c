/* worker/session_touch.c - group commit of sessions' last use
 * (worker/session_touch.h). */
#include "session_touch.h"

#include <sodium.h>
#include <string.h>

static void session_touch_flush(struct session_touch *t);

/* Sends the waiting entries unless a batch is already in flight. */
static void session_touch_kick(struct session_touch *t)
{
    if (!t->in_flight && t->waiting != NULL)
        session_touch_flush(t);
}

void session_touch_init(struct session_touch *t, struct db *db)
{
    memset(t, 0, sizeof(*t));
    t->db = db;
}

static void session_touch_on_result(void *arg, PGresult *res)
{
    struct session_touch *t = arg;
    struct session_touch_entry *e = t->sent;
    int ok = db_result_ok(res);

    /* Detach first: a `done` may answer, read the next pipelined request
     * and add to the waiting list (even flush it) before this returns. */
    t->sent = NULL;
    t->in_flight = 0;
    while (e != NULL) {
        struct session_touch_entry *next = e->next;
        e->done(e, ok);
        e = next;
    }
    session_touch_kick(t); /* what came while this batch was in flight */
}

/* Sends up to SESSION_TOUCH_BATCH_MAX waiting entries as one UPDATE. */
static void session_touch_flush(struct session_touch *t)
{
    struct session_touch_entry **tail = &t->sent;
    size_t len = 0;
    int n = 0;

    t->param[len++] = '{';
    while (t->waiting != NULL && n < SESSION_TOUCH_BATCH_MAX) {
        struct session_touch_entry *e = t->waiting;

        t->waiting = e->next;
        e->next = NULL;
        *tail = e;
        tail = &e->next;
        if (n++ > 0)
            t->param[len++] = ',';
        sodium_bin2hex(t->param + len, sizeof(t->param) - len, e->token_hash, SESSION_TOUCH_HASH_BYTES);
        len += 2 * SESSION_TOUCH_HASH_BYTES;
    }
    if (t->waiting == NULL)
        t->waiting_tail = NULL;
    t->param[len++] = '}';
    t->param[len] = '\0';
    t->in_flight = 1;
    db_query_init(&t->query, DB_SESSION_TOUCH, session_touch_on_result, t);
    db_query_text(&t->query, t->param);
    db_query_send(t->db, &t->query);
}

void session_touch_add(struct session_touch *t, struct session_touch_entry *e)
{
    e->next = NULL;
    if (t->waiting_tail != NULL)
        t->waiting_tail->next = e;
    else
        t->waiting = e;
    t->waiting_tail = e;
    session_touch_kick(t);
}
