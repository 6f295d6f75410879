/* worker/db_conn.h - the insides of the pool of worker/db.h, shared by
 * its files and by no other: the connections (worker/db_conn.c), the
 * queue of waiting queries (worker/db_queue.c), what a statement or an
 * answer allows (worker/db_query.c).
 */
#ifndef VERONA_WORKER_DB_CONN_H
#define VERONA_WORKER_DB_CONN_H

#include "db.h"

/* Sets connection `c` of `db` up and starts connecting it. */
void db_conn_start(struct db *db, struct db_conn *c);

/* Tears `c` down for good (its query fails) and closes its timer. */
void db_conn_stop(struct db_conn *c);

/* Hands queued queries to idle connections. */
void db_dispatch(struct db *db);

/* The close callback of the pool's handles (counts handles_open down). */
void db_on_handle_close(uv_handle_t *h);

/* Fails every queued query (no connection is left up, or closing;
 * worker/db_queue.c). */
void db_fail_pending(struct db *db);

/* The queue of queries waiting for a connection (worker/db_queue.c):
 * at its end, at its head (a query sent again goes first), the first. */
void db_queue_push(struct db *db, struct db_query *q);
void db_queue_push_front(struct db *db, struct db_query *q);
struct db_query *db_queue_pop(struct db *db);

/* The failover wait is over and no primary came (db->wait_timer): the
 * queued queries fail (their requests answer 503), and new ones fail at
 * once from now on. */
void db_queue_on_wait_over(uv_timer_t *t);

/* Whether a query whose answer was lost may be sent again
 * (worker/db_query.c). */
int db_statement_may_repeat(enum db_statement s, int timed_out);

/* 1 for an answer of a node that cannot take our writes now: 57P01-57P03
 * (shut down, crashed, not accepting connections), 25006 (read-only:
 * demoted), class 08 (worker/db_query.c). */
int db_result_failover(const PGresult *res);

#endif
