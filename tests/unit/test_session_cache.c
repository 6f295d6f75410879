/* tests/unit/test_session_cache.c - worker/session_cache.c: the one-second
 * bound, the session's own expiry, and forgetting. */
#include <check.h>
#include <string.h>

#include "../../worker/session_cache.h"

static void hash_of(unsigned char *hash, int n)
{
    memset(hash, 0, 32);
    memcpy(hash, &n, sizeof(n));
    hash[31] = (unsigned char)n;
}

START_TEST(hit_within_a_second_then_miss)
{
    struct session_cache cache = { 0 };
    unsigned char h[32];
    const struct session_cache_entry *e;

    hash_of(h, 7);
    ck_assert_ptr_null(session_cache_get(&cache, h, 1000, 100));
    session_cache_put(&cache, h, 1000, cache.revocations, "42", "alice", "2030-01-01T00:00:00Z", 200);
    e = session_cache_get(&cache, h, 1999, 100);
    ck_assert_ptr_nonnull(e);
    ck_assert_str_eq(e->user_id, "42");
    ck_assert_str_eq(e->username, "alice");
    ck_assert_ptr_null(session_cache_get(&cache, h, 2000, 100)); /* 1 s past PostgreSQL's word */
    ck_assert_int_eq(cache.hits, 1);
    session_cache_fini(&cache);
}
END_TEST

START_TEST(never_past_the_session_expiry)
{
    struct session_cache cache = { 0 };
    unsigned char h[32];

    hash_of(h, 8);
    session_cache_put(&cache, h, 1000, cache.revocations, "1", "bob", "x", 150);
    ck_assert_ptr_nonnull(session_cache_get(&cache, h, 1001, 149));
    ck_assert_ptr_null(session_cache_get(&cache, h, 1001, 150));
    session_cache_fini(&cache);
}
END_TEST

START_TEST(forget_one_and_forget_user)
{
    struct session_cache cache = { 0 };
    unsigned char a[32], b[32], c[32];

    hash_of(a, 1);
    hash_of(b, 2);
    hash_of(c, 3);
    session_cache_put(&cache, a, 10, cache.revocations, "5", "u5", "x", 1000);
    session_cache_put(&cache, b, 10, cache.revocations, "5", "u5", "x", 1000);
    session_cache_put(&cache, c, 10, cache.revocations, "6", "u6", "x", 1000);
    session_cache_forget(&cache, a);
    ck_assert_ptr_null(session_cache_get(&cache, a, 11, 1));
    ck_assert_ptr_nonnull(session_cache_get(&cache, b, 11, 1));
    session_cache_forget_user(&cache, "5");
    ck_assert_ptr_null(session_cache_get(&cache, b, 11, 1));
    ck_assert_ptr_nonnull(session_cache_get(&cache, c, 11, 1));
    session_cache_fini(&cache);
}
END_TEST

START_TEST(a_colliding_hash_is_not_a_hit)
{
    struct session_cache cache = { 0 };
    unsigned char a[32], b[32];

    hash_of(a, 9);
    memcpy(b, a, 32);
    b[31] ^= 0xff; /* same slot, other key */
    session_cache_put(&cache, a, 10, cache.revocations, "1", "u", "x", 1000);
    ck_assert_ptr_null(session_cache_get(&cache, b, 11, 1));
    session_cache_fini(&cache);
}
END_TEST

/* Five sessions of one set: the four ways keep the newest four. */
START_TEST(a_full_set_drops_its_oldest_entry)
{
    struct session_cache cache = { 0 };
    unsigned char h[5][32];

    for (int i = 0; i < 5; i++) {
        hash_of(h[i], 21);
        h[i][31] = (unsigned char)(100 + i); /* same set, other keys */
        session_cache_put(&cache, h[i], 10 + (uint64_t)i, cache.revocations, "1", "u", "x", 1000);
    }
    ck_assert_ptr_null(session_cache_get(&cache, h[0], 20, 1));
    for (int i = 1; i < 5; i++)
        ck_assert_ptr_nonnull(session_cache_get(&cache, h[i], 20, 1));
    /* A forgotten way is reused before any live one. */
    session_cache_forget(&cache, h[2]);
    ck_assert_ptr_null(session_cache_get(&cache, h[2], 20, 1));
    session_cache_put(&cache, h[0], 30, cache.revocations, "1", "u", "x", 1000);
    ck_assert_ptr_nonnull(session_cache_get(&cache, h[0], 31, 1));
    ck_assert_ptr_nonnull(session_cache_get(&cache, h[1], 20, 1));
    /* Storing a session again refreshes its own entry, not another. */
    session_cache_put(&cache, h[1], 40, cache.revocations, "1", "u", "x", 1000);
    for (int i = 0; i < 5; i++)
        if (i != 2)
            ck_assert_ptr_nonnull(session_cache_get(&cache, h[i], 45, 1));
    session_cache_fini(&cache);
}
END_TEST

START_TEST(a_lookup_older_than_a_revocation_is_not_kept)
{
    struct session_cache cache = { 0 };
    unsigned char a[32], b[32];
    uint64_t before;

    hash_of(a, 11);
    hash_of(b, 12);
    before = cache.revocations;
    session_cache_forget(&cache, b); /* a logout answered while the lookup of a was in flight */
    session_cache_put(&cache, a, 10, before, "1", "u", "x", 1000);
    ck_assert_ptr_null(session_cache_get(&cache, a, 11, 1));
    session_cache_put(&cache, a, 10, cache.revocations, "1", "u", "x", 1000);
    ck_assert_ptr_nonnull(session_cache_get(&cache, a, 11, 1));
    session_cache_fini(&cache);
}
END_TEST

Suite *session_cache_suite(void)
{
    Suite *s = suite_create("session_cache");
    TCase *tc = tcase_create("core");

    tcase_add_test(tc, hit_within_a_second_then_miss);
    tcase_add_test(tc, never_past_the_session_expiry);
    tcase_add_test(tc, forget_one_and_forget_user);
    tcase_add_test(tc, a_colliding_hash_is_not_a_hit);
    tcase_add_test(tc, a_full_set_drops_its_oldest_entry);
    tcase_add_test(tc, a_lookup_older_than_a_revocation_is_not_kept);
    suite_add_tcase(s, tc);
    return s;
}
