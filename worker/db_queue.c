/* worker/db_queue.c - the queries waiting for a connection
 * (worker/db_conn.h): the queue, the failover wait (how long they may
 * wait while no primary is up), and failing them all.
 */
#include "db_conn.h"

#include <stddef.h>

void db_queue_push(struct db *db, struct db_query *q)
{
    q->next = NULL;
    if (db->pending_tail != NULL)
        db->pending_tail->next = q;
    else
        db->pending_head = q;
    db->pending_tail = q;
    db->pending++;
}

void db_queue_push_front(struct db *db, struct db_query *q)
{
    q->next = db->pending_head;
    db->pending_head = q;
    if (db->pending_tail == NULL)
        db->pending_tail = q;
    db->pending++;
}

struct db_query *db_queue_pop(struct db *db)
{
    struct db_query *q = db->pending_head;

    if (q == NULL)
        return NULL;
    db->pending_head = q->next;
    if (db->pending_head == NULL)
        db->pending_tail = NULL;
    db->pending--;
    return q;
}

/* Fails every queued query; used when no connection is left up. */
void db_fail_pending(struct db *db)
{
    struct db_query *q;

    while ((q = db_queue_pop(db)) != NULL)
        q->cb(q->arg, NULL);
}

int db_in_failover_wait(const struct db *db)
{
    return db->ever_up && !db->closing && db->up == 0 &&
           uv_now(db->loop) - db->down_since_ms < (uint64_t)db->failover_wait_ms;
}

void db_queue_on_wait_over(uv_timer_t *t)
{
    struct db *db = t->data;

    if (db->up == 0)
        db_fail_pending(db);
}
