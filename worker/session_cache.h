/* worker/session_cache.h - a worker's cache of valid sessions, so most
 * session checks skip PostgreSQL. An entry lives at most one second
 * (SESSION_CACHE_TTL_MS) past PostgreSQL's last word on it, which bounds
 * how late a logout or password change made elsewhere is seen here; one
 * made on this worker drops the entries at once. Fixed in size (no growth
 * after warm-up) and 4-way set-associative: a new entry takes an empty
 * or the oldest of its set's four, so sessions whose hashes share a set
 * do not keep evicting each other.
 */
#ifndef VERONA_WORKER_SESSION_CACHE_H
#define VERONA_WORKER_SESSION_CACHE_H

#include <stdint.h>

#define SESSION_CACHE_SLOTS 16384
#define SESSION_CACHE_WAYS 4      /* a hash may live in any of 4 entries of its set */
#define SESSION_CACHE_TTL_MS 1000

struct session_cache_entry {
    unsigned char token_hash[32];
    uint64_t fetched_ms;          /* 0 = empty */
    int64_t expires_epoch;        /* the session's own expiry, unix seconds */
    char user_id[24];
    char username[65];
    char expires_at[24];
};

struct session_cache {
    struct session_cache_entry *entries; /* owned; allocated on first use */
    uint64_t hits, misses;
    uint64_t revocations;         /* bumped by every forget: older lookups are not stored */
};

/* The fresh entry for `hash`, or NULL. */
const struct session_cache_entry *session_cache_get(struct session_cache *cache, const unsigned char *hash,
                                                    uint64_t now_ms, int64_t now_epoch);

/* Stores a lookup sent to PostgreSQL at `sent_ms`, when no revocation
 * happened on this worker since (`revocations_at_send`). */
void session_cache_put(struct session_cache *cache, const unsigned char *hash, uint64_t sent_ms,
                       uint64_t revocations_at_send, const char *user_id, const char *username,
                       const char *expires_at, int64_t expires_epoch);

/* Drops one session, or every session of a user. */
void session_cache_forget(struct session_cache *cache, const unsigned char *hash);
void session_cache_forget_user(struct session_cache *cache, const char *user_id);

/* Drops every session, and every answer still in flight (the primary
 * changed: what the old one said may not hold on the new one). */
void session_cache_clear(struct session_cache *cache);

void session_cache_fini(struct session_cache *cache);

#endif
