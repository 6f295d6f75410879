/* tests/fault/test_hash_share.c - one client address holds at most an
 * eighth of a worker's hash queue (SPEC 5, 10.11): an account holder
 * flooding correct logins gets 429 past its share, and other addresses
 * still log in (before, the flood filled the queue and they got 503). */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/cluster.h"
#include "../lib/harness.h"

#define GOOD_PASSWORD "correct horse battery staple"

START_TEST(one_address_flooding_logins_cannot_starve_others)
{
    struct cluster c;
    struct wrk_run flood;
    char flooder[64], other[64], script[400], extra[500], xff[128], body[200];
    struct harness_response *r = calloc(1, sizeof(*r));
    FILE *f;
    int ok = 0, unavailable = 0;

    ck_assert_int_eq(cluster_start(&c, 1, "hash_queue_max = 16\ntrusted_proxies = 127.0.0.1/32\n", 1), 0);
    harness_username(flooder, sizeof(flooder), "flood");
    harness_username(other, sizeof(other), "calm");
    harness_register(c.port, flooder, GOOD_PASSWORD);
    harness_register(c.port, other, GOOD_PASSWORD);
    snprintf(script, sizeof(script), "%s/flood.lua", c.dir);
    f = fopen(script, "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f,
            "wrk.method = \"POST\"\n"
            "wrk.headers[\"Content-Type\"] = \"application/json\"\n"
            "wrk.headers[\"X-Forwarded-For\"] = \"203.0.113.1\"\n"
            "wrk.body = '{\"username\":\"%s\",\"password\":\"%s\"}'\n",
            flooder, GOOD_PASSWORD);
    fclose(f);
    snprintf(extra, sizeof(extra), "-s %s", script);
    wrk_start(&flood, &c, "/v1/login", 16, 6, extra);
    cluster_pause_ms(1000);
    snprintf(body, sizeof(body), "{\"username\":\"%s\",\"password\":\"%s\"}", other, GOOD_PASSWORD);
    for (int i = 0; i < 20; i++) {
        snprintf(xff, sizeof(xff), "Content-Type: application/json\r\nX-Forwarded-For: 198.51.100.%d\r\n", i + 1);
        harness_request(c.port, "POST", "/v1/login", xff, body, r);
        ok += r->status == 200;
        unavailable += r->status == 503;
    }
    wrk_finish(&flood);
    ck_assert_msg(ok == 20, "other addresses: %d of 20 logged in, %d got 503", ok, unavailable);
    /* The flood itself got 429 past its share (wrk counts them non-2xx). */
    ck_assert_msg(flood.non_2xx > 0, "the flood was never refused (%ld requests)", flood.requests);
    cluster_stop(&c);
    free(r);
}
END_TEST

Suite *hash_share_suite(void)
{
    Suite *s = suite_create("hash_share");
    TCase *tc = tcase_create("hash_share");

    tcase_set_timeout(tc, 90);
    tcase_add_test(tc, one_address_flooding_logins_cannot_starve_others);
    suite_add_tcase(s, tc);
    return s;
}
