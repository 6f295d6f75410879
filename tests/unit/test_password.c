/* tests/unit/test_password.c - proto/password.c: UTF-8, usernames, strength. */
#include <check.h>
#include <string.h>

#include "../../proto/password.h"

START_TEST(utf8_length_counts_characters)
{
    ck_assert_int_eq(password_utf8_length("abc", 3), 3);
    ck_assert_int_eq(password_utf8_length("h\xc3\xa9llo", 6), 5);          /* é */
    ck_assert_int_eq(password_utf8_length("\xf0\x9f\x94\x91", 4), 1);      /* a key emoji */
}
END_TEST

START_TEST(utf8_invalid_is_rejected)
{
    ck_assert_int_eq(password_utf8_length("\xff", 1), -1);
    ck_assert_int_eq(password_utf8_length("\xc3", 1), -1);                /* truncated */
    ck_assert_int_eq(password_utf8_length("\xc0\xaf", 2), -1);            /* overlong '/' */
    ck_assert_int_eq(password_utf8_length("\xed\xa0\x80", 3), -1);        /* surrogate */
    ck_assert_int_eq(password_utf8_length("\xf4\x90\x80\x80", 4), -1);    /* > U+10FFFF */
    ck_assert_int_eq(password_utf8_length("a\0b", 3), -1);                /* NUL */
}
END_TEST

START_TEST(usernames)
{
    char long_name[70];

    ck_assert_int_eq(password_username_valid("alice.b+shop@example-1_x"), 1);
    ck_assert_int_eq(password_username_valid(""), 0);
    ck_assert_int_eq(password_username_valid("with space"), 0);
    ck_assert_int_eq(password_username_valid("caf\xc3\xa9"), 0);
    memset(long_name, 'a', 64);
    long_name[64] = '\0';
    ck_assert_int_eq(password_username_valid(long_name), 1);
    long_name[64] = 'a';
    long_name[65] = '\0';
    ck_assert_int_eq(password_username_valid(long_name), 0);
}
END_TEST

START_TEST(weak_passwords)
{
    struct config cfg;

    config_defaults(&cfg);
    ck_assert_int_eq(password_weak(&cfg, "short", "bob"), 1);
    ck_assert_int_eq(password_weak(&cfg, "xxBoBxxQ7!zv#Lmw", "bob"), 1); /* contains the name */
    ck_assert_int_eq(password_weak(&cfg, "password1234", "bob"), 1);     /* easy to guess */
    ck_assert_int_eq(password_weak(&cfg, "aaaaaaaaaaaaaaaa", "bob"), 1);
    ck_assert_int_eq(password_weak(&cfg, "correct horse battery staple", "bob"), 0);
    ck_assert_int_eq(password_weak(&cfg, "Tr0ub4dor&3-xq!Vz", "bob"), 0);
}
END_TEST

START_TEST(length_is_in_characters)
{
    struct config cfg;

    config_defaults(&cfg);
    /* 11 two-byte characters: 22 bytes but under the 12-character minimum. */
    ck_assert_int_eq(password_weak_quick(&cfg, "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
                                               "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9", NULL), 1);
}
END_TEST

Suite *password_suite(void)
{
    Suite *s = suite_create("password");
    TCase *tc = tcase_create("core");

    tcase_add_test(tc, utf8_length_counts_characters);
    tcase_add_test(tc, utf8_invalid_is_rejected);
    tcase_add_test(tc, usernames);
    tcase_add_test(tc, weak_passwords);
    tcase_add_test(tc, length_is_in_characters);
    suite_add_tcase(s, tc);
    return s;
}
