/* worker/session_cache.c - see worker/session_cache.h. */
#include "session_cache.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The SESSION_CACHE_WAYS entries `hash` may live in, or NULL. */
static struct session_cache_entry *session_cache_set(struct session_cache *cache, const unsigned char *hash)
{
    uint32_t index;

    if (cache->entries == NULL) {
        /* calloc: pages are only touched (and counted in RSS) as used. */
        cache->entries = calloc(SESSION_CACHE_SLOTS, sizeof(*cache->entries));
        if (cache->entries == NULL)
            return NULL;
    }
    /* The key is a BLAKE2b hash already: its bytes are uniform. */
    memcpy(&index, hash, sizeof(index));
    return &cache->entries[(index % (SESSION_CACHE_SLOTS / SESSION_CACHE_WAYS)) * SESSION_CACHE_WAYS];
}

/* The entry holding `hash` in its set, or NULL. */
static struct session_cache_entry *session_cache_find(struct session_cache_entry *set, const unsigned char *hash)
{
    for (int i = 0; i < SESSION_CACHE_WAYS; i++)
        if (set[i].fetched_ms != 0 && memcmp(set[i].token_hash, hash, sizeof(set[i].token_hash)) == 0)
            return &set[i];
    return NULL;
}

const struct session_cache_entry *session_cache_get(struct session_cache *cache, const unsigned char *hash,
                                                    uint64_t now_ms, int64_t now_epoch)
{
    struct session_cache_entry *set = session_cache_set(cache, hash);
    struct session_cache_entry *e = set != NULL ? session_cache_find(set, hash) : NULL;

    if (e == NULL || now_ms - e->fetched_ms >= SESSION_CACHE_TTL_MS || now_epoch >= e->expires_epoch) {
        cache->misses++;
        return NULL;
    }
    cache->hits++;
    return e;
}

void session_cache_put(struct session_cache *cache, const unsigned char *hash, uint64_t sent_ms,
                       uint64_t revocations_at_send, const char *user_id, const char *username,
                       const char *expires_at, int64_t expires_epoch)
{
    struct session_cache_entry *set, *e;

    /* A logout or password change answered here after this lookup was
     * sent may have ended the session: the answer is not kept. */
    if (revocations_at_send != cache->revocations)
        return;
    set = session_cache_set(cache, hash);
    if (set == NULL)
        return;
    /* The same session's entry, else an empty one, else the oldest. */
    e = session_cache_find(set, hash);
    for (int i = 0; e == NULL && i < SESSION_CACHE_WAYS; i++)
        if (set[i].fetched_ms == 0)
            e = &set[i];
    if (e == NULL) {
        e = &set[0];
        for (int i = 1; i < SESSION_CACHE_WAYS; i++)
            if (set[i].fetched_ms < e->fetched_ms)
                e = &set[i];
    }
    memcpy(e->token_hash, hash, sizeof(e->token_hash));
    e->fetched_ms = sent_ms > 0 ? sent_ms : 1; /* the age counts from the question, not the answer */
    e->expires_epoch = expires_epoch;
    snprintf(e->user_id, sizeof(e->user_id), "%s", user_id);
    snprintf(e->username, sizeof(e->username), "%s", username);
    snprintf(e->expires_at, sizeof(e->expires_at), "%s", expires_at);
}

void session_cache_forget(struct session_cache *cache, const unsigned char *hash)
{
    struct session_cache_entry *e;

    cache->revocations++;
    if (cache->entries == NULL)
        return;
    e = session_cache_find(session_cache_set(cache, hash), hash);
    if (e != NULL)
        e->fetched_ms = 0;
}

void session_cache_forget_user(struct session_cache *cache, const char *user_id)
{
    cache->revocations++;
    if (cache->entries == NULL)
        return;
    for (size_t i = 0; i < SESSION_CACHE_SLOTS; i++)
        if (cache->entries[i].fetched_ms != 0 && strcmp(cache->entries[i].user_id, user_id) == 0)
            cache->entries[i].fetched_ms = 0;
}

void session_cache_clear(struct session_cache *cache)
{
    cache->revocations++;
    if (cache->entries != NULL)
        memset(cache->entries, 0, SESSION_CACHE_SLOTS * sizeof(*cache->entries));
}

void session_cache_fini(struct session_cache *cache)
{
    free(cache->entries);
    cache->entries = NULL;
}
