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

Suite *auth_suite(void)
{
    Suite *s = suite_create("auth");
    TCase *tc = tcase_create("tokens");

    tcase_add_test(tc, tokens_are_43_base64url_characters_and_unique);
    tcase_add_test(tc, token_validation);
    tcase_add_test(tc, token_hash_is_stable_and_not_the_token);
    tcase_add_test(tc, dummy_hash_costs_a_verify_and_never_matches);
    tcase_add_test(tc, an_address_holds_an_eighth_of_the_hash_queue);
    suite_add_tcase(s, tc);
    return s;
}
