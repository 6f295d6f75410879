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

Suite *auth_suite(void)
{
    Suite *s = suite_create("auth");
    TCase *tc = tcase_create("tokens");

    tcase_add_test(tc, tokens_are_43_base64url_characters_and_unique);
    tcase_add_test(tc, token_validation);
    tcase_add_test(tc, token_hash_is_stable_and_not_the_token);
    suite_add_tcase(s, tc);
    return s;
}
