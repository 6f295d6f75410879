/* worker/session_touch.h - writes sessions' last use, many at once.
 *
 * A session check writes `last_used` at most once a minute per session,
 * and answers only once that write is committed (the idle expiry it
 * answers must hold). One commit per check made those writes the cost of
 * a busy minute, so a worker keeps at most one write in flight: checks
 * that need one while it runs wait together and go in the next single
 * UPDATE (group commit). The batch grows with the load and a quiet worker
 * writes at once.
 */
#ifndef VERONA_WORKER_SESSION_TOUCH_H
#define VERONA_WORKER_SESSION_TOUCH_H

#include "db.h"

#define SESSION_TOUCH_BATCH_MAX 256
#define SESSION_TOUCH_HASH_BYTES 32 /* BLAKE2b-256 of a token */

/* One session waiting for its write; owned by the caller until `done`. */
struct session_touch_entry {
    const unsigned char *token_hash;                    /* 32 bytes, the caller's */
    void (*done)(struct session_touch_entry *e, int ok); /* ok: committed */
    struct session_touch_entry *next;
};

struct session_touch {
    struct db *db;
    struct db_query query;
    struct session_touch_entry *waiting, *waiting_tail;
    struct session_touch_entry *sent;  /* the batch in flight, or NULL */
    int in_flight;
    char param[SESSION_TOUCH_BATCH_MAX * (2 * SESSION_TOUCH_HASH_BYTES + 1) + 3]; /* {hex,hex,...} */
};

void session_touch_init(struct session_touch *t, struct db *db);

/* Queues a write of now() as the last use of e->token_hash; e->done runs
 * once it is committed or has failed (possibly before this returns). */
void session_touch_add(struct session_touch *t, struct session_touch_entry *e);

#endif
