/* tests/unit/test_address.c - worker/address.c: peers, /64, X-Forwarded-For. */
#include <arpa/inet.h>
#include <check.h>
#include <string.h>

#include "../../worker/address.h"

static struct sockaddr_storage peer(const char *text)
{
    struct sockaddr_storage ss;

    memset(&ss, 0, sizeof(ss));
    if (strchr(text, ':') != NULL) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
        s6->sin6_family = AF_INET6;
        ck_assert_int_eq(inet_pton(AF_INET6, text, &s6->sin6_addr), 1);
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
        s4->sin_family = AF_INET;
        ck_assert_int_eq(inet_pton(AF_INET, text, &s4->sin_addr), 1);
    }
    return ss;
}

static void check(const char *proxies, const char *from, const char *xff, const char *expect)
{
    struct config cfg;
    struct sockaddr_storage ss = peer(from);
    char err[CONFIG_ERROR_MAX], out[ADDRESS_TEXT_MAX];

    config_defaults(&cfg);
    ck_assert_int_eq(config_set(&cfg, "trusted_proxies", proxies, err, sizeof(err)), 0);
    address_client(&cfg, &ss, xff, out, sizeof(out));
    ck_assert_str_eq(out, expect);
}

START_TEST(peer_is_the_client_without_trusted_proxies)
{
    check("", "192.0.2.7", "203.0.113.9", "192.0.2.7");
    check("", "2001:db8:1:2:3:4:5:6", NULL, "2001:db8:1:2::/64");
    check("", "::ffff:192.0.2.8", NULL, "192.0.2.8");
}
END_TEST

START_TEST(rightmost_untrusted_forwarded_address)
{
    check("127.0.0.1", "127.0.0.1", "203.0.113.9", "203.0.113.9");
    check("127.0.0.1, 10.0.0.0/8", "127.0.0.1", "198.51.100.1, 203.0.113.9, 10.1.1.1",
          "203.0.113.9");
    check("127.0.0.1", "127.0.0.1", "2001:db8:aa:bb::1", "2001:db8:aa:bb::/64");
    /* Garbage stops the walk at the last trusted hop. */
    check("127.0.0.1", "127.0.0.1", "not-an-address", "127.0.0.1");
    /* An untrusted peer's header is ignored. */
    check("10.0.0.0/8", "192.0.2.1", "203.0.113.9", "192.0.2.1");
    /* A dual-stack listener sees an IPv4 proxy as ::ffff:a.b.c.d: it is
     * still the trusted IPv4 proxy, and so is such a hop. */
    check("127.0.0.0/8", "::ffff:127.0.0.1", "203.0.113.9", "203.0.113.9");
    check("127.0.0.0/8, 10.0.0.0/8", "::ffff:127.0.0.1", "203.0.113.9, ::ffff:10.1.1.1", "203.0.113.9");
}
END_TEST

Suite *address_suite(void)
{
    Suite *s = suite_create("address");
    TCase *tc = tcase_create("core");

    tcase_add_test(tc, peer_is_the_client_without_trusted_proxies);
    tcase_add_test(tc, rightmost_untrusted_forwarded_address);
    suite_add_tcase(s, tc);
    return s;
}
