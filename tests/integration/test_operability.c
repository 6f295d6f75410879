/* tests/integration/test_operability.c - what an operator runs Verona
 * with: /metrics (validated by promtool, counters that move), systemd's
 * notify protocol and unit file, JSON logs free of secrets, and nginx's
 * auth_request in front of a shop with deploy/nginx-auth-request.conf. */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../lib/cluster.h"
#include "../lib/harness.h"

#define ROOMY "memory_soft_limit_mb = 900\nmemory_hard_limit_mb = 1000\n"
#define SECRET_PASSWORD "zebra quartz lantern 771 !"

#define metrics_port cluster_metrics_port

/* The value of one sample line ("name{labels} value"), or -1. */
static double sample(const char *text, const char *series)
{
    const char *p = strstr(text, series);

    while (p != NULL && p != text && p[-1] != '\n')
        p = strstr(p + 1, series);
    if (p == NULL)
        return -1;
    return strtod(p + strlen(series), NULL);
}

static char *scrape(const struct cluster *c)
{
    struct harness_response *r = calloc(1, sizeof(*r));
    char *text;

    ck_assert_int_eq(harness_request(metrics_port(c), "GET", "/metrics", NULL, NULL, r), 200);
    text = strdup(r->body);
    free(r);
    return text;
}

START_TEST(metrics_are_valid_and_move)
{
    struct cluster c;
    struct wrk_run load;
    char name[64], token[44], header[80], path[400], cmd[1000];
    char *before, *after;
    double logins_before, logins_after;
    long long deadline;
    FILE *f;
    struct harness_response *r = calloc(1, sizeof(*r));

    ck_assert_int_eq(cluster_start(&c, 2, ROOMY, 1), 0);
    harness_username(name, sizeof(name), "metrics");
    harness_register(c.port, name, SECRET_PASSWORD);
    before = scrape(&c);
    logins_before = sample(before, "verona_logins_total{result=\"success\"} ");
    ck_assert(logins_before >= 0);
    wrk_start(&load, &c, "/healthz", 8, 2, NULL);
    ck_assert_int_eq(harness_login(c.port, name, SECRET_PASSWORD, token, NULL), 200);
    ck_assert_int_eq(harness_login(c.port, name, "not the password", NULL, NULL), 401);
    snprintf(header, sizeof(header), "Authorization: Bearer %s\r\n", token);
    /* Four checks within the cache's second: at least two reach the same
     * one of the two workers, the first a miss, the next a hit. */
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(harness_request(c.port, "GET", "/v1/session", header, NULL, r), 200);
    /* Counters arrive with the next pongs. */
    deadline = harness_now_ms() + 10000;
    for (;;) {
        after = scrape(&c);
        logins_after = sample(after, "verona_logins_total{result=\"success\"} ");
        if ((logins_after > logins_before &&
             sample(after, "verona_requests_total{route=\"session\",status=\"200\"} ") >= 4 &&
             sample(after, "verona_logins_total{result=\"invalid_credentials\"} ") >= 1 &&
             sample(after, "verona_session_cache_lookups_total{result=\"hit\"} ") +
                     sample(after, "verona_session_cache_lookups_total{result=\"miss\"} ") >= 4) ||
            harness_now_ms() > deadline)
            break;
        free(after);
        cluster_pause_ms(100);
    }
    wrk_finish(&load);
    ck_assert_double_gt(logins_after, logins_before);
    ck_assert(sample(after, "verona_requests_total{route=\"session\",status=\"200\"} ") >= 4);
    ck_assert(sample(after, "verona_session_cache_lookups_total{result=\"hit\"} ") >= 1);
    ck_assert(sample(after, "verona_session_cache_lookups_total{result=\"miss\"} ") >= 1);
    ck_assert(sample(after, "verona_session_cache_lookups_total{result=\"hit\"} ") +
                  sample(after, "verona_session_cache_lookups_total{result=\"miss\"} ") == 4);
    ck_assert(sample(after, "verona_workers{state=\"ready\"} ") == 2);
    ck_assert(sample(after, "verona_db_up ") == 1);
    ck_assert_ptr_nonnull(strstr(after, "verona_request_duration_seconds_bucket{route=\"login\",le=\"+Inf\"}"));
    ck_assert_ptr_nonnull(strstr(after, "verona_worker_rss_bytes{slot=\"0\""));
    ck_assert_ptr_nonnull(strstr(after, "verona_build_info{"));

    /* promtool's verdict on the whole text, scraped under load. */
    wrk_start(&load, &c, "/healthz", 8, 2, NULL);
    free(after);
    after = scrape(&c);
    wrk_finish(&load);
    snprintf(path, sizeof(path), "%s/metrics.txt", c.dir);
    f = fopen(path, "w");
    fputs(after, f);
    fclose(f);
    snprintf(cmd, sizeof(cmd), "promtool check metrics < %s > %s.check 2>&1", path, path);
    ck_assert_msg(system(cmd) == 0, "promtool check metrics failed: see %s.check", path);
    ck_assert(sample(after, "verona_requests_total{route=\"healthz\",status=\"200\"} ") > 100);
    ck_assert_int_eq(harness_request(metrics_port(&c), "GET", "/other", NULL, NULL, r), 404);
    ck_assert_int_eq(harness_request(metrics_port(&c), "POST", "/metrics", NULL, NULL, r), 405);
    /* The status page beside it: HTML that may run and load nothing
     * (tests/browser/status_page.py looks at it in a real browser). */
    ck_assert_int_eq(harness_request(metrics_port(&c), "GET", "/", NULL, NULL, r), 200);
    ck_assert_int_eq(harness_header(r, "Content-Type", cmd, sizeof(cmd)), 0);
    ck_assert_str_eq(cmd, "text/html; charset=utf-8");
    ck_assert_int_eq(harness_header(r, "Content-Security-Policy", cmd, sizeof(cmd)), 0);
    ck_assert_ptr_nonnull(strstr(cmd, "default-src 'none'"));
    ck_assert_ptr_nonnull(strstr(r->body, "<table id=\"workers\">"));
    ck_assert_ptr_null(strstr(r->body, "<script"));
    free(before);
    free(after);
    free(r);
    cluster_stop(&c);
}
END_TEST

/* A worker's counters travel with its pongs; a worker that drains sends
 * one last pong before its goodbye, so what it served after the last ping
 * still counts. Pings here are 5 s apart, far longer than the test. */
START_TEST(requests_served_before_a_drain_are_counted)
{
    struct cluster c;
    struct harness_response *r = calloc(1, sizeof(*r));
    char out[4096];
    char *text;
    double before, after;
    long long deadline;
    int old;
    char *big;

    ck_assert_int_eq(cluster_start(&c, 1, ROOMY "health_interval_ms = 5000\nhealth_timeout_ms = 60000\n", 1), 0);
    old = cluster_worker_pid(&c, "ready", 0);
    ck_assert_int_gt(old, 0);
    text = scrape(&c);
    before = sample(text, "verona_requests_total{route=\"healthz\",status=\"200\"} ");
    free(text);
    if (before < 0)
        before = 0;
    for (int i = 0; i < 40; i++)
        ck_assert_int_eq(harness_request(c.port, "GET", "/healthz", NULL, NULL, r), 200);
    /* Refused by the HTTP layer before any handler: still a login. */
    big = malloc(20000);
    memset(big, 'a', 19999);
    big[19999] = '\0';
    ck_assert_int_eq(harness_post_json(c.port, "/v1/login", NULL, big, r), 413);
    free(big);
    ck_assert_int_eq(cluster_ctl(&c, "reload", out, sizeof(out)), 0);
    deadline = harness_now_ms() + 30000;
    while (harness_now_ms() < deadline && (kill(old, 0) == 0 || cluster_worker_pid(&c, "ready", 0) == old))
        cluster_pause_ms(50);
    ck_assert_int_ne(kill(old, 0), 0);
    ck_assert(cluster_log_contains(&c, "\"reason\":\"drained\""));
    text = scrape(&c);
    after = sample(text, "verona_requests_total{route=\"healthz\",status=\"200\"} ");
    ck_assert_msg(after - before >= 40, "healthz 200 counted %.0f -> %.0f after 40 requests", before, after);
    ck_assert(sample(text, "verona_requests_total{route=\"login\",status=\"413\"} ") == 1);
    free(text);
    cluster_stop(&c);
    free(r);
}
END_TEST

START_TEST(systemd_notify_ready_status_watchdog_stopping)
{
    struct cluster c;
    struct sockaddr_un sun;
    char got[4096] = "", buf[512], env[400];
    long long deadline;
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);

    cluster_prepare(&c, 2, ROOMY);
    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    ck_assert_int_lt(strlen(c.dir) + 13, sizeof(sun.sun_path));
    memcpy(sun.sun_path, c.dir, strlen(c.dir));
    strcat(sun.sun_path, "/notify.sock");
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
    snprintf(env, sizeof(env), "%s", sun.sun_path);
    setenv("NOTIFY_SOCKET", env, 1);
    setenv("WATCHDOG_USEC", "200000", 1);
    ck_assert_int_eq(cluster_launch(&c, 1), 0);
    unsetenv("NOTIFY_SOCKET");
    unsetenv("WATCHDOG_USEC");
    deadline = harness_now_ms() + 10000;
    while (harness_now_ms() < deadline &&
           !(strstr(got, "READY=1") && strstr(got, "STATUS=2/2 workers ready") && strstr(got, "WATCHDOG=1"))) {
        ssize_t n = recv(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);
        if (n > 0) {
            buf[n] = '\0';
            strncat(got, buf, sizeof(got) - strlen(got) - 2);
            strcat(got, "\n");
        } else {
            cluster_pause_ms(20);
        }
    }
    ck_assert_msg(strstr(got, "READY=1") != NULL, "got: %s", got);
    ck_assert_msg(strstr(got, "STATUS=2/2 workers ready") != NULL, "got: %s", got);
    ck_assert_msg(strstr(got, "WATCHDOG=1") != NULL, "got: %s", got);
    cluster_stop(&c);
    deadline = harness_now_ms() + 2000;
    while (harness_now_ms() < deadline && strstr(got, "STOPPING=1") == NULL) {
        ssize_t n = recv(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);
        if (n > 0) {
            buf[n] = '\0';
            strncat(got, buf, sizeof(got) - strlen(got) - 1);
        } else {
            cluster_pause_ms(20);
        }
    }
    ck_assert_msg(strstr(got, "STOPPING=1") != NULL, "got: %s", got);
    close(fd);
}
END_TEST

START_TEST(systemd_unit_verifies)
{
    char cmd[1200];

    /* The unit names /usr/local/bin; point it at this build to verify it. */
    snprintf(cmd, sizeof(cmd),
             "d=$(mktemp -d) && sed 's|/usr/local/bin/verona|%s/verona|g' %s/deploy/verona.service > $d/verona.service"
             " && systemd-analyze verify --man=no $d/verona.service > $d/out 2>&1; rc=$?; cat $d/out; rm -rf $d; exit $rc",
             getenv("VERONA_BIN_DIR"), getenv("VERONA_ROOT"));
    ck_assert_int_eq(system(cmd), 0);
    snprintf(cmd, sizeof(cmd), "grep -q '^Type=notify' %s/deploy/verona.service && grep -q '^NoNewPrivileges=yes' %s/deploy/verona.service"
                               " && grep -q '^ProtectSystem=strict' %s/deploy/verona.service && grep -q '^ExecReload=.*HUP' %s/deploy/verona.service"
                               " && grep -q '^User=verona' %s/deploy/verona.service",
             getenv("VERONA_ROOT"), getenv("VERONA_ROOT"), getenv("VERONA_ROOT"), getenv("VERONA_ROOT"),
             getenv("VERONA_ROOT"));
    ck_assert_int_eq(system(cmd), 0);
}
END_TEST

START_TEST(logs_hold_no_password_or_token)
{
    struct cluster c;
    char name[64], token[44], header[80], json[256], cmd[800];
    struct harness_response *r = calloc(1, sizeof(*r));

    ck_assert_int_eq(cluster_start(&c, 2, ROOMY, 1), 0);
    harness_username(name, sizeof(name), "secret");
    harness_register(c.port, name, SECRET_PASSWORD);
    ck_assert_int_eq(harness_login(c.port, name, SECRET_PASSWORD, token, NULL), 200);
    snprintf(header, sizeof(header), "Authorization: Bearer %s\r\n", token);
    ck_assert_int_eq(harness_request(c.port, "GET", "/v1/session", header, NULL, r), 200);
    snprintf(json, sizeof(json), "{\"old_password\":\"%s\",\"new_password\":\"%s 2\"}", SECRET_PASSWORD, SECRET_PASSWORD);
    ck_assert_int_eq(harness_post_json(c.port, "/v1/password", token, json, r), 204);
    ck_assert_int_eq(harness_post_json(c.port, "/v1/logout", token, NULL, r), 204);
    cluster_stop(&c);
    /* Every line is JSON with the fields the README promises... */
    snprintf(cmd, sizeof(cmd),
             "python3 -c 'import json,sys\nfor l in open(sys.argv[1]):\n d=json.loads(l)\n assert all(k in d for k in (\"ts\",\"level\",\"pid\",\"event\")), l' %s",
             c.log_path);
    ck_assert_msg(system(cmd) == 0, "a log line is not the promised JSON: %s", c.log_path);
    /* ...and neither the password nor the token appears anywhere. */
    snprintf(cmd, sizeof(cmd), "grep -c -F -e 'zebra quartz' -e '%s' %s", token, c.log_path);
    ck_assert_int_ne(system(cmd), 0);
    ck_assert(cluster_log_contains(&c, "\"event\":\"worker_start\""));
    ck_assert(cluster_log_contains(&c, "\"event\":\"worker_exit\""));
    free(r);
}
END_TEST

START_TEST(nginx_auth_request_in_front_of_a_shop)
{
    struct cluster c;
    struct harness_response *r = calloc(1, sizeof(*r));
    char name[64], token[44], header[160], cmd[2400], dir[400], body[64];
    int nginx_port = harness_free_port(), shop_port = harness_free_port();
    long long deadline;
    FILE *f;
    int status;

    ck_assert_int_eq(cluster_start(&c, 2, ROOMY, 1), 0);
    snprintf(dir, sizeof(dir), "%s/nginx", c.dir);
    snprintf(cmd, sizeof(cmd),
             "mkdir -p %s && sed -e 's/127.0.0.1:8080/127.0.0.1:%d/' -e 's/127.0.0.1:3000/127.0.0.1:%d/' "
             "-e 's/listen 80;/listen 127.0.0.1:%d;/' %s/deploy/nginx-auth-request.conf > %s/verona.conf",
             dir, c.port, shop_port, nginx_port, getenv("VERONA_ROOT"), dir);
    ck_assert_int_eq(system(cmd), 0);
    snprintf(cmd, sizeof(cmd), "%s/nginx.conf", dir);
    f = fopen(cmd, "w");
    /* The "shop": echoes the user nginx let through. */
    fprintf(f, "daemon on;\npid %s/nginx.pid;\nerror_log %s/error.log;\nevents {}\nhttp {\n access_log off;\n"
               " include %s/verona.conf;\n server { listen 127.0.0.1:%d; location / { return 200 \"user=[$http_x_user_id] xff=[$http_x_forwarded_for]\"; } }\n}\n",
            dir, dir, dir, shop_port);
    fclose(f);
    snprintf(cmd, sizeof(cmd), "nginx -p %s -c %s/nginx.conf", dir, dir);
    ck_assert_int_eq(system(cmd), 0);
    deadline = harness_now_ms() + 10000;
    while (harness_now_ms() < deadline && harness_request(nginx_port, "GET", "/", NULL, NULL, r) != 200)
        cluster_pause_ms(20);

    harness_username(name, sizeof(name), "shopper");
    harness_register(c.port, name, SECRET_PASSWORD);
    ck_assert_int_eq(harness_login(nginx_port, name, SECRET_PASSWORD, token, NULL), 200);

    status = harness_request(nginx_port, "GET", "/account/orders", "X-User-Id: 1\r\n", NULL, r);
    ck_assert_int_eq(status, 401);
    snprintf(header, sizeof(header), "Authorization: Bearer %s\r\nX-User-Id: 999999\r\n", token);
    ck_assert_int_eq(harness_request(nginx_port, "GET", "/account/orders", header, NULL, r), 200);
    snprintf(body, sizeof(body), "user=[");
    ck_assert_ptr_nonnull(strstr(r->body, body));
    ck_assert_ptr_null(strstr(r->body, "999999")); /* the client's header never reaches the shop */
    ck_assert_ptr_null(strstr(r->body, "user=[]"));
    /* A public page never carries a user, whatever the client claims. */
    ck_assert_int_eq(harness_request(nginx_port, "GET", "/", "X-User-Id: 5\r\nX-Forwarded-For: 6.6.6.6\r\n", NULL, r), 200);
    ck_assert_str_eq(r->body, "user=[] xff=[127.0.0.1]");
    /* Nor does the client's X-Forwarded-For reach the shop's protected pages. */
    snprintf(header, sizeof(header), "Authorization: Bearer %s\r\nX-Forwarded-For: 6.6.6.6\r\n", token);
    ck_assert_int_eq(harness_request(nginx_port, "GET", "/account/orders", header, NULL, r), 200);
    ck_assert_ptr_nonnull(strstr(r->body, "xff=[127.0.0.1]"));

    snprintf(header, sizeof(header), "Authorization: Bearer %s\r\n", token);
    ck_assert_int_eq(harness_request(nginx_port, "POST", "/v1/logout", header, NULL, r), 204);
    ck_assert_int_eq(harness_request(nginx_port, "GET", "/account/orders", header, NULL, r), 401);

    snprintf(cmd, sizeof(cmd), "nginx -p %s -c %s/nginx.conf -s stop", dir, dir);
    ck_assert_int_eq(system(cmd), 0);
    cluster_stop(&c);
    free(r);
}
END_TEST

Suite *operability_suite(void)
{
    Suite *s = suite_create("operability");
    TCase *tc = tcase_create("ops");

    tcase_set_timeout(tc, 90);
    tcase_add_test(tc, metrics_are_valid_and_move);
    tcase_add_test(tc, requests_served_before_a_drain_are_counted);
    tcase_add_test(tc, systemd_notify_ready_status_watchdog_stopping);
    tcase_add_test(tc, systemd_unit_verifies);
    tcase_add_test(tc, logs_hold_no_password_or_token);
    tcase_add_test(tc, nginx_auth_request_in_front_of_a_shop);
    suite_add_tcase(s, tc);
    return s;
}
