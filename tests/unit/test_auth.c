/* tests/unit/test_auth.c - worker/auth.c: tokens and their hashes. */
#include <check.h>
#include <string.h>

#include "../../worker/auth.h"

START_TEST(tokens_are_43_base64url_characters_and_unique)
{
    char a[AUTH_TOKEN_CHARS + 1], b[AUTH_TOKEN_CHARS + 1];

    auth_token_new(a);
    auth_token_new(b);
    ck_assert_int_eq(strlen(a), 43);
    ck_assert_int_eq(auth_token_valid(a), 1);
    ck_assert_str_ne(a, b);
    ck_assert_int_eq(strspn(a, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"), 43);
}
END_TEST

START_TEST(token_validation)
{
    ck_assert_int_eq(auth_token_valid(""), 0);
    ck_assert_int_eq(auth_token_valid("abc"), 0);
    ck_assert_int_eq(auth_token_valid("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa="), 0);
    ck_assert_int_eq(auth_token_valid("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"), 1);
    ck_assert_int_eq(auth_token_valid("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"), 0);
}
END_TEST

START_TEST(token_hash_is_stable_and_not_the_token)
{
    char t[AUTH_TOKEN_CHARS + 1];
    unsigned char h1[AUTH_TOKEN_HASH_BYTES], h2[AUTH_TOKEN_HASH_BYTES];

    auth_token_new(t);
    auth_token_hash(t, h1);
    auth_token_hash(t, h2);
    ck_assert_mem_eq(h1, h2, sizeof(h1));
    ck_assert_int_ne(memcmp(h1, t, sizeof(h1)), 0);
    t[0] = t[0] == 'A' ? 'B' : 'A';
    auth_token_hash(t, h2);
    ck_assert_int_ne(memcmp(h1, h2, sizeof(h1)), 0);
}
END_TEST

/* The dummy hash: libsodium reads it with the configured parameters, no
 * password matches it, and every worker's is different. */
START_TEST(dummy_hash_costs_a_verify_and_never_matches)
{
    char a[crypto_pwhash_STRBYTES], b[crypto_pwhash_STRBYTES];

    ck_assert_int_eq(auth_dummy_hash(a, 1, 8192), 0);
    ck_assert_int_eq(auth_dummy_hash(b, 1, 8192), 0);
    ck_assert_str_ne(a, b);
    ck_assert_int_eq(strncmp(a, "$argon2id$v=19$m=8192,t=1,p=1$", strlen("$argon2id$v=19$m=8192,t=1,p=1$")), 0);
    ck_assert_int_eq(crypto_pwhash_str_needs_rehash(a, 1, 8192 * 1024), 0);
    ck_assert_int_eq(crypto_pwhash_str_needs_rehash(a, 2, 19456 * 1024), 1);
    ck_assert_int_eq(crypto_pwhash_str_verify(a, "", 0), -1);
    ck_assert_int_eq(crypto_pwhash_str_verify(a, "correct horse battery staple", 28), -1);
    ck_assert_int_eq(auth_dummy_hash(a, 2, 19456), 0);
    ck_assert_int_eq(strncmp(a, "$argon2id$v=19$m=19456,t=2,p=1$", strlen("$argon2id$v=19$m=19456,t=2,p=1$")), 0);
    ck_assert_int_eq(crypto_pwhash_str_needs_rehash(a, 2, 19456 * 1024), 0);
}
END_TEST

/* One address holds at most max(1, hash_queue_max / 8) of the queue; the
 * others keep theirs, and a share given back can be taken again. */
START_TEST(an_address_holds_an_eighth_of_the_hash_queue)
{
    struct config cfg;
    struct auth auth;
    char key[32];
    char err[CONFIG_ERROR_MAX];

    config_defaults(&cfg);
    ck_assert_int_eq(config_set(&cfg, "hash_queue_max", "16", err, sizeof(err)), 0);
    ck_assert_int_eq(auth_init(&auth, NULL, &cfg, -1), 0);
    ck_assert_int_eq(auth.share_max, 2);
    ck_assert_int_eq(auth_share_take(&auth, "203.0.113.1"), 0);
    ck_assert_int_eq(auth_share_take(&auth, "203.0.113.1"), 0);
    ck_assert_int_eq(auth_share_take(&auth, "203.0.113.1"), -1);
    ck_assert_int_eq(auth_share_take(&auth, "2001:db8:1:2::/64"), 0);
    auth_share_release(&auth, "203.0.113.1");
    ck_assert_int_eq(auth_share_take(&auth, "203.0.113.1"), 0);
    /* As many addresses as the queue holds jobs, each with one. */
    for (int i = 2; i < 64; i++) {
        snprintf(key, sizeof(key), "198.51.100.%d", i);
        ck_assert_int_eq(auth_share_take(&auth, key), 0);
    }
    /* Every entry held by another address (more requests wait for the
     * database than the queue holds): not counted, not refused. */
    ck_assert_int_eq(auth.share_slots, 64);
    ck_assert_int_eq(auth_share_take(&auth, "192.0.2.1"), 1);
    ck_assert_int_eq(auth_share_take(&auth, "203.0.113.1"), -1);
    auth_fini(&auth);

    ck_assert_int_eq(config_set(&cfg, "hash_queue_max", "3", err, sizeof(err)), 0);
    ck_assert_int_eq(auth_init(&auth, NULL, &cfg, -1), 0);
    ck_assert_int_eq(auth.share_max, 1); /* never 0 */
    auth_fini(&auth);
}
END_TEST

/* The dummy hashes follow the Argon2 settings among users: each unknown
 * name gets one of them, always the same for the same secret (and any
 * case of the name), each as often as users have it. */
START_TEST(unknown_names_get_the_settings_users_have)
{
    struct config cfg;
    struct auth auth;
    int mem[3] = { 8192, 19456, 0 }, ops[3] = { 1, 2, 1 }, cheap = 0;
    long long users[3] = { 3, 1, 5 };
    char name[32];
    const char *d;

    config_defaults(&cfg);
    ck_assert_int_eq(auth_init(&auth, NULL, &cfg, -1), 0);
    /* None known yet: the configured settings. */
    ck_assert_str_eq(auth_dummy_for(&auth, "nobody1"), auth.dummy_hash);
    /* The third (m=0) cannot be a hash: left out. */
    ck_assert_int_eq(auth_set_dummies(&auth, mem, ops, users, 3, "secret one"), 2);
    for (int i = 0; i < 4000; i++) {
        snprintf(name, sizeof(name), "nobody%d", i);
        d = auth_dummy_for(&auth, name);
        ck_assert(strncmp(d, "$argon2id$v=19$m=8192,t=1,p=1$", 30) == 0 ||
                  strncmp(d, "$argon2id$v=19$m=19456,t=2,p=1$", 31) == 0);
        cheap += strncmp(d, "$argon2id$v=19$m=8192,t=1,p=1$", 30) == 0;
        ck_assert_ptr_eq(auth_dummy_for(&auth, name), d); /* the same each time */
    }
    /* Three users in four have the cheap settings. */
    ck_assert_msg(cheap > 2800 && cheap < 3200, "%d of 4000 names got the cheap settings", cheap);
    ck_assert_ptr_eq(auth_dummy_for(&auth, "NoBody7"), auth_dummy_for(&auth, "nobody7"));
    /* Another secret, another choice: without the secret, nobody can tell
     * which settings an unknown name gets. */
    {
        static char first[4000];
        int moved = 0;

        for (int i = 0; i < 4000; i++) {
            snprintf(name, sizeof(name), "nobody%d", i);
            first[i] = auth_dummy_for(&auth, name)[17];
        }
        ck_assert_int_eq(auth_set_dummies(&auth, mem, ops, users, 2, "secret three"), 2);
        for (int i = 0; i < 4000; i++) {
            snprintf(name, sizeof(name), "nobody%d", i);
            moved += auth_dummy_for(&auth, name)[17] != first[i];
        }
        ck_assert_msg(moved > 1000, "%d of 4000 names changed settings with the secret", moved);
    }
    /* Settings gone from among users are gone from the choice. */
    ck_assert_int_eq(auth_set_dummies(&auth, mem, ops, users, 1, "secret two"), 1);
    for (int i = 0; i < 200; i++) {
        snprintf(name, sizeof(name), "nobody%d", i);
        ck_assert_int_eq(strncmp(auth_dummy_for(&auth, name), "$argon2id$v=19$m=8192,t=1,p=1$", 30), 0);
    }
    /* None readable: back to the configured settings. */
    ck_assert_int_eq(auth_set_dummies(&auth, mem + 2, ops + 2, users + 2, 1, "secret"), 0);
    ck_assert_str_eq(auth_dummy_for(&auth, "nobody1"), auth.dummy_hash);
    auth_fini(&auth);
}
END_TEST

Suite *auth_suite(void)
{
    Suite *s = suite_create("auth");
    TCase *tc = tcase_create("tokens");

    tcase_add_test(tc, tokens_are_43_base64url_characters_and_unique);
    tcase_add_test(tc, token_validation);
    tcase_add_test(tc, token_hash_is_stable_and_not_the_token);
    tcase_add_test(tc, dummy_hash_costs_a_verify_and_never_matches);
    tcase_add_test(tc, an_address_holds_an_eighth_of_the_hash_queue);
    tcase_add_test(tc, unknown_names_get_the_settings_users_have);
    suite_add_tcase(s, tc);
    return s;
}
