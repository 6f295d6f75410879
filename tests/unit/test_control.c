/* tests/unit/test_control.c - proto/control.c: round trips of every
 * message, and the decoder refusing malformed and truncated frames. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "../../proto/control.h"

static struct control_msg round_trip(const struct control_msg *in)
{
    struct control_msg out;
    char *frame, err[256];
    size_t len;

    ck_assert_int_eq(control_msg_encode(in, &frame, &len), 0);
    /* Every strict prefix asks for more bytes; the whole frame decodes. */
    for (size_t cut = 0; cut < len; cut++)
        ck_assert_int_eq(control_msg_decode(frame, cut, &out, err, sizeof(err)), 0);
    ck_assert_int_eq(control_msg_decode(frame, len, &out, err, sizeof(err)), (long)len);
    ck_assert_int_eq(out.type, in->type);
    free(frame);
    return out;
}

START_TEST(hello_settings_ping_goodbye)
{
    struct control_msg in, out;

    memset(&in, 0, sizeof(in));
    in.type = CONTROL_HELLO;
    in.pid = 4242;
    strcpy(in.build_id, "verona-test-1");
    out = round_trip(&in);
    ck_assert_int_eq(out.pid, 4242);
    ck_assert_int_eq(out.version, CONTROL_VERSION);
    ck_assert_str_eq(out.build_id, "verona-test-1");

    memset(&in, 0, sizeof(in));
    in.type = CONTROL_SETTINGS;
    in.settings = "workers = 2\nlisten = 127.0.0.1:1\n";
    out = round_trip(&in);
    ck_assert_str_eq(out.settings, in.settings);
    control_msg_fini(&out);

    memset(&in, 0, sizeof(in));
    in.type = CONTROL_PING;
    in.seq = 1234567890123ULL;
    out = round_trip(&in);
    ck_assert(out.seq == 1234567890123ULL);

    memset(&in, 0, sizeof(in));
    in.type = CONTROL_GOODBYE;
    strcpy(in.reason, "drained");
    out = round_trip(&in);
    ck_assert_str_eq(out.reason, "drained");

    for (int t = CONTROL_READY; t <= CONTROL_DRAIN; t++) {
        if (t == CONTROL_PING || t == CONTROL_PONG)
            continue;
        memset(&in, 0, sizeof(in));
        in.type = (enum control_type)t;
        out = round_trip(&in);
    }
}
END_TEST

static size_t frame_of(char *buf, int version, int type, const char *payload);

START_TEST(pong_carries_counters)
{
    struct control_msg in, out;

    memset(&in, 0, sizeof(in));
    in.type = CONTROL_PONG;
    in.seq = 7;
    strcpy(in.state, "ready");
    in.connections = 12;
    in.in_flight = 3;
    in.hash_queue = 2;
    in.db_up = 1;
    in.counters.requests[ROUTE_LOGIN][control_status_index(200)] = 99;
    in.counters.requests[ROUTE_OTHER][control_status_index(418)] = 5;
    in.counters.latency[ROUTE_SESSION][control_latency_bucket(1800)] = 42;
    in.counters.latency_sum_us[ROUTE_SESSION] = 123456;
    in.counters.logins[LOGIN_THROTTLED] = 8;
    in.counters.connections_accepted = 77;
    in.counters.session_cache_hits = 1000;
    in.counters.session_cache_misses = 31;
    in.counters.db_primary_changes = 3;
    strcpy(in.db_host, "198.18.0.12:5432");
    out = round_trip(&in);
    ck_assert_str_eq(out.db_host, "198.18.0.12:5432");
    ck_assert_str_eq(out.state, "ready");
    ck_assert_int_eq(out.connections, 12);
    ck_assert_int_eq(out.in_flight, 3);
    ck_assert_int_eq(out.hash_queue, 2);
    ck_assert_int_eq(out.db_up, 1);
    ck_assert_mem_eq(&out.counters, &in.counters, sizeof(in.counters));
    ck_assert_int_eq(control_latency_bucket(1800), 1);

    /* A worker of an older build leaves the session cache counters out. */
    {
        static const char old_pong[] =
            "{\"seq\":5,\"state\":\"ready\",\"connections\":1,\"in_flight\":0,\"hash_queue\":0,"
            "\"db_up\":true,\"counters\":{\"requests\":{},\"latency\":{},\"latency_sum_us\":{},"
            "\"logins\":{},\"connections_accepted\":3}}";
        char buf[512], err[256];
        size_t n = frame_of(buf, CONTROL_VERSION, CONTROL_PONG, old_pong);

        memset(&out, 0xff, sizeof(out));
        ck_assert_int_eq(control_msg_decode(buf, n, &out, err, sizeof(err)), (long)n);
        ck_assert(out.counters.connections_accepted == 3);
        ck_assert(out.counters.session_cache_hits == 0 && out.counters.session_cache_misses == 0);
        /* ... and the database host and primary changes (several hosts). */
        ck_assert_str_eq(out.db_host, "");
        ck_assert(out.counters.db_primary_changes == 0);
    }
    /* A status code this build does not list (a newer worker's) adds to
     * "other"; a code that is no status is refused. */
    {
        static const char newer[] =
            "{\"seq\":5,\"state\":\"ready\",\"connections\":1,\"in_flight\":0,\"hash_queue\":0,"
            "\"db_up\":true,\"counters\":{\"requests\":{\"login\":{\"other\":1,\"425\":2}},\"latency\":{},"
            "\"latency_sum_us\":{},\"logins\":{},\"connections_accepted\":3}}";
        char buf[512], err[256];
        size_t n = frame_of(buf, CONTROL_VERSION, CONTROL_PONG, newer);

        memset(&out, 0, sizeof(out));
        ck_assert_int_eq(control_msg_decode(buf, n, &out, err, sizeof(err)), (long)n);
        ck_assert(out.counters.requests[ROUTE_LOGIN][CONTROL_STATUS_COUNT - 1] == 3);
    }
    ck_assert_int_eq(control_latency_bucket(10000000), CONTROL_LATENCY_BUCKETS - 1);
}
END_TEST

static void expect_bad(const char *frame, size_t len)
{
    struct control_msg out;
    char err[256] = "";

    ck_assert_int_eq(control_msg_decode(frame, len, &out, err, sizeof(err)), -1);
    ck_assert_int_gt(strlen(err), 0);
}

static size_t frame_of(char *buf, int version, int type, const char *payload)
{
    size_t plen = strlen(payload);

    buf[0] = 'V';
    buf[1] = (char)version;
    buf[2] = (char)type;
    buf[3] = 0;
    buf[4] = (char)(plen >> 24);
    buf[5] = (char)(plen >> 16);
    buf[6] = (char)(plen >> 8);
    buf[7] = (char)plen;
    memcpy(buf + 8, payload, plen);
    return plen + 8;
}

START_TEST(malformed_frames_are_refused)
{
    char buf[512];
    size_t n;

    expect_bad("X", 1);
    n = frame_of(buf, 2, CONTROL_PING, "{\"seq\":1}");
    expect_bad(buf, n); /* other version */
    n = frame_of(buf, 1, 0, "{}");
    expect_bad(buf, n);
    n = frame_of(buf, 1, 99, "{}");
    expect_bad(buf, n);
    n = frame_of(buf, 1, CONTROL_PING, "{\"seq\":-1}");
    expect_bad(buf, n);
    n = frame_of(buf, 1, CONTROL_PING, "{\"seq\":\"1\"}");
    expect_bad(buf, n);
    n = frame_of(buf, 1, CONTROL_PING, "[1]");
    expect_bad(buf, n);
    n = frame_of(buf, 1, CONTROL_PING, "{\"seq\":1,\"seq\":2}");
    expect_bad(buf, n);
    n = frame_of(buf, 1, CONTROL_HELLO, "{\"pid\":1,\"versions\":[9],\"build_id\":\"x\"}");
    expect_bad(buf, n);
    n = frame_of(buf, 1, CONTROL_PONG, "{\"seq\":1}");
    expect_bad(buf, n);
    n = frame_of(buf, 1, CONTROL_PONG,
                 "{\"seq\":5,\"state\":\"ready\",\"connections\":1,\"in_flight\":0,\"hash_queue\":0,"
                 "\"db_up\":true,\"counters\":{\"requests\":{},\"latency\":{},\"latency_sum_us\":{},"
                 "\"logins\":{},\"connections_accepted\":3,\"session_cache_hits\":-1}}");
    expect_bad(buf, n);
    n = frame_of(buf, 1, CONTROL_PONG,
                 "{\"seq\":5,\"state\":\"ready\",\"connections\":1,\"in_flight\":0,\"hash_queue\":0,"
                 "\"db_up\":true,\"counters\":{\"requests\":{\"login\":{\"42\":1}},\"latency\":{},"
                 "\"latency_sum_us\":{},\"logins\":{},\"connections_accepted\":3}}");
    expect_bad(buf, n);
    n = frame_of(buf, 1, CONTROL_SETTINGS, "{\"settings\":3}");
    expect_bad(buf, n);
    n = frame_of(buf, 1, CONTROL_PING, "{\"seq\":1");
    expect_bad(buf, n);
    /* Over 64 KiB is refused from the header alone. */
    memcpy(buf, "V\x01\x05\x00\x00\x01\x00\x00", 8);
    expect_bad(buf, 8);
}
END_TEST

Suite *control_suite(void)
{
    Suite *s = suite_create("control");
    TCase *tc = tcase_create("core");

    tcase_add_test(tc, hello_settings_ping_goodbye);
    tcase_add_test(tc, pong_carries_counters);
    tcase_add_test(tc, malformed_frames_are_refused);
    suite_add_tcase(s, tc);
    return s;
}
