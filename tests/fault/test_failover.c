/* tests/fault/test_failover.c - a PostgreSQL failover under load (SPEC
 * section 9), on one machine: the throwaway PostgreSQL is the primary, a
 * streaming standby made from it with pg_basebackup is the second host of
 * a multi-host database_url. The primary is stopped and the standby
 * promoted while wrk sends logins and session checks: requests wait for
 * the new primary instead of failing, every token acknowledged before
 * stays valid, a logout before stays revoked, and status, metrics and the
 * log name the new host. A second case leaves the database down past
 * db_failover_wait_ms: 503 with Retry-After, never 401 or 500. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../lib/cluster.h"
#include "../lib/harness.h"

#define GOOD_PASSWORD "correct horse battery staple"

/* The standby of the running test, stopped by the teardown even when an
 * assertion ended the test half-way ("" when none). */
static char failover_standby[400];

/* Runs a shell command as the owner of the PostgreSQL folders (the
 * postgres user when the tests run as root); returns its exit code. */
static int pg_shell(const char *cmd)
{
    char full[3000];
    int rc;

    if (getuid() == 0)
        snprintf(full, sizeof(full), "runuser -u postgres -- sh -c '%s' >/dev/null 2>&1", cmd);
    else
        snprintf(full, sizeof(full), "sh -c '%s' >/dev/null 2>&1", cmd);
    rc = system(full);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static const char *pg_bin(void)
{
    static char dir[256];
    FILE *p;

    if (dir[0] != '\0')
        return dir;
    p = popen("ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1", "r");
    ck_assert_ptr_nonnull(p);
    ck_assert_ptr_nonnull(fgets(dir, sizeof(dir), p));
    pclose(p);
    dir[strcspn(dir, "\n")] = '\0';
    return dir;
}

/* A hot standby of the test PostgreSQL in `dir`, on `port`. */
static void standby_start(const char *dir, int port)
{
    char cmd[2000];

    snprintf(cmd, sizeof(cmd), "mkdir -p %s && chmod 700 %s", dir, dir);
    ck_assert_int_eq(system(cmd), 0);
    if (getuid() == 0) {
        snprintf(cmd, sizeof(cmd), "chown postgres:postgres %s", dir);
        ck_assert_int_eq(system(cmd), 0);
    }
    /* The passfile in the connection string, so that -R writes it into
     * the standby's primary_conninfo too (scram-sha-256: deploy/pg.sh). */
    snprintf(cmd, sizeof(cmd), "%s/pg_basebackup -D %s/data -d \"host=%s port=%s passfile=%s/pgpass\" -R -X stream -c fast",
             pg_bin(), dir, getenv("VERONA_PG_DIR"), getenv("VERONA_PG_PORT"), getenv("VERONA_PG_DIR"));
    ck_assert_msg(pg_shell(cmd) == 0, "pg_basebackup failed");
    snprintf(cmd, sizeof(cmd),
             "%s/pg_ctl -D %s/data -l %s/postgres.log -w -t 60 -o \"-c listen_addresses= -k %s -p %d "
             "-c fsync=off -c max_connections=300\" start",
             pg_bin(), dir, dir, dir, port);
    ck_assert_msg(pg_shell(cmd) == 0, "standby did not start (see %s/postgres.log)", dir);
}

static void standby_stop(const char *dir)
{
    char cmd[1200];

    snprintf(cmd, sizeof(cmd), "%s/pg_ctl -D %s/data -m immediate -w -t 60 stop", pg_bin(), dir);
    pg_shell(cmd);
}

/* Leaves the test PostgreSQL running and no standby, whatever a test did:
 * a failed assertion exits the test's process, so it runs at exit too. */
static void failover_teardown(void)
{
    if (failover_standby[0] != '\0')
        standby_stop(failover_standby);
    failover_standby[0] = '\0';
    harness_pg_start();
}

/* A wrk script that logs one user in, over and over. */
static void write_login_script(const char *path, const char *name)
{
    FILE *f = fopen(path, "w");

    ck_assert_ptr_nonnull(f);
    fprintf(f,
            "wrk.method = \"POST\"\n"
            "wrk.headers[\"Content-Type\"] = \"application/json\"\n"
            "wrk.body = '{\"username\":\"%s\",\"password\":\"%s\"}'\n",
            name, GOOD_PASSWORD);
    fclose(f);
}

/* The database URL naming the primary's folder first, the standby's second
 * (VERONA_DATABASE_URL, which the clusters of the tests inherit). */
static void two_host_url(char *out, size_t size, const char *standby_dir, int standby_port)
{
    snprintf(out, size, "postgresql://%s@/verona?host=%s,%s&port=%s,%d&passfile=%s/pgpass",
             getuid() == 0 ? "postgres" : getenv("USER") != NULL ? getenv("USER") : "postgres",
             getenv("VERONA_PG_DIR"), standby_dir, getenv("VERONA_PG_PORT"), standby_port, getenv("VERONA_PG_DIR"));
}

START_TEST(failover_to_a_promoted_standby_fails_nothing)
{
    struct cluster c;
    struct wrk_run sessions, logins;
    struct harness_response *r = calloc(1, sizeof(*r));
    char standby[400], url[1200], saved[1200], name[64], token[44], revoked[44], auth[80], extra[500], script[400], cmd[1200];
    int standby_port = harness_free_port();
    json_t *status;
    size_t i;
    json_t *row;
    long long deadline;

    snprintf(standby, sizeof(standby), "%s/standby-%d", getenv("VERONA_TEST_TMP"), (int)getpid());
    snprintf(failover_standby, sizeof(failover_standby), "%s", standby);
    atexit(failover_teardown);
    standby_start(standby, standby_port);
    two_host_url(url, sizeof(url), standby, standby_port);
    snprintf(saved, sizeof(saved), "%s", getenv("VERONA_DATABASE_URL"));
    setenv("VERONA_DATABASE_URL", url, 1);
    ck_assert_int_eq(cluster_start(&c, 2, "db_failover_wait_ms = 20000\n", 1), 0);
    setenv("VERONA_DATABASE_URL", saved, 1);

    harness_username(name, sizeof(name), "failover");
    harness_register(c.port, name, GOOD_PASSWORD);
    ck_assert_int_eq(harness_login(c.port, name, GOOD_PASSWORD, token, NULL), 200);
    ck_assert_int_eq(harness_login(c.port, name, GOOD_PASSWORD, revoked, NULL), 200);
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s\r\n", revoked);
    ck_assert_int_eq(harness_request(c.port, "POST", "/v1/logout", auth, NULL, r), 204);

    snprintf(extra, sizeof(extra), "-H 'Authorization: Bearer %s'", token);
    wrk_start(&sessions, &c, "/v1/session", 8, 12, extra);
    snprintf(script, sizeof(script), "%s/login.lua", c.dir);
    write_login_script(script, name);
    snprintf(extra, sizeof(extra), "-s %s", script);
    wrk_start(&logins, &c, "/v1/login", 2, 12, extra);
    cluster_pause_ms(2000);

    /* The primary goes away; the standby is promoted a moment later, as
     * Patroni would after its ttl. Requests in between wait. */
    ck_assert_int_eq(harness_pg_stop(), 0);
    cluster_pause_ms(1500);
    snprintf(cmd, sizeof(cmd), "%s/pg_ctl -D %s/data -w -t 60 promote", pg_bin(), standby);
    ck_assert_msg(pg_shell(cmd) == 0, "promote failed");

    wrk_finish(&sessions);
    wrk_finish(&logins);
    ck_assert_msg(sessions.errors == 0 && sessions.non_2xx == 0, "sessions: %ld errors, %ld non-2xx of %ld (%s)",
                  sessions.errors, sessions.non_2xx, sessions.requests, sessions.out_path);
    ck_assert_msg(logins.errors == 0 && logins.non_2xx == 0, "logins: %ld errors, %ld non-2xx of %ld (%s)",
                  logins.errors, logins.non_2xx, logins.requests, logins.out_path);
    ck_assert_int_gt(logins.requests, 10);

    /* What was acknowledged before holds on the new primary. */
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s\r\n", token);
    ck_assert_msg(harness_request(c.port, "GET", "/v1/session", auth, NULL, r) == 200, "session after: %d %s (log %s)",
                  r->status, r->body, c.log_path);
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s\r\n", revoked);
    for (int k = 0; k < 8; k++) /* over the connections of both workers */
        ck_assert_int_eq(harness_request(c.port, "GET", "/v1/session", auth, NULL, r), 401);

    /* Visible: each worker's host in status, the change in the log and metrics. */
    deadline = harness_now_ms() + 10000;
    for (;;) {
        int on_standby = 0;

        status = cluster_status(&c);
        ck_assert_ptr_nonnull(status);
        json_array_foreach(json_object_get(status, "workers"), i, row) {
            const char *host = json_string_value(json_object_get(row, "db_host"));
            on_standby += host != NULL && strstr(host, standby) != NULL;
        }
        json_decref(status);
        if (on_standby == 2 || harness_now_ms() > deadline)
            break;
        cluster_pause_ms(100);
    }
    ck_assert_msg(harness_now_ms() <= deadline, "status does not show both workers on the new primary");
    ck_assert(cluster_log_contains(&c, "\"db_primary_changed\""));
    {
        char query[64];
        int mport = cluster_metrics_port(&c);

        ck_assert_int_eq(harness_request(mport, "GET", "/metrics", NULL, NULL, r), 200);
        ck_assert_msg(strstr(r->body, "verona_db_primary_changes_total 2") != NULL ||
                          strstr(r->body, "verona_db_primary_changes_total 3") != NULL ||
                          strstr(r->body, "verona_db_primary_changes_total 4") != NULL,
                      "no primary change counted:\n%.2000s", r->body);
        snprintf(query, sizeof(query), "verona_worker_db_host{slot=\"0\",host=\"");
        ck_assert_ptr_nonnull(strstr(r->body, query));
    }
    cluster_stop(&c);
    free(r);
}
END_TEST

START_TEST(a_database_lost_past_the_wait_answers_503_not_401)
{
    struct cluster c;
    struct harness_response *r = calloc(1, sizeof(*r));
    char name[64], token[44], auth[80], value[16];
    long long deadline;

    atexit(failover_teardown);
    ck_assert_int_eq(cluster_start(&c, 1, "db_failover_wait_ms = 1500\n", 1), 0);
    harness_username(name, sizeof(name), "lost");
    harness_register(c.port, name, GOOD_PASSWORD);
    ck_assert_int_eq(harness_login(c.port, name, GOOD_PASSWORD, token, NULL), 200);
    ck_assert_int_eq(harness_pg_stop(), 0);

    /* Within the wait, the balancer keeps the host: /readyz stays 200. */
    ck_assert_int_eq(harness_request(c.port, "GET", "/readyz", NULL, NULL, r), 200);
    /* A login waits for a primary, then 503 + Retry-After: 1. */
    {
        char body[200];

        snprintf(body, sizeof(body), "{\"username\":\"%s\",\"password\":\"%s\"}", name, GOOD_PASSWORD);
        ck_assert_int_eq(harness_post_json(c.port, "/v1/login", NULL, body, r), 503);
    }
    ck_assert_int_eq(harness_header(r, "Retry-After", value, sizeof(value)), 0);
    ck_assert_str_eq(value, "1");
    /* Past the wait: /readyz 503, and requests fail at once (503, never 401). */
    deadline = harness_now_ms() + 5000;
    while (harness_request(c.port, "GET", "/readyz", NULL, NULL, r) != 503 && harness_now_ms() < deadline)
        cluster_pause_ms(100);
    ck_assert_int_eq(r->status, 503);
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s\r\n", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    ck_assert_int_eq(harness_request(c.port, "GET", "/v1/session", auth, NULL, r), 503);
    ck_assert_int_eq(harness_request(c.port, "GET", "/healthz", NULL, NULL, r), 200);

    /* The database returns: the worker recovers by itself. */
    ck_assert_int_eq(harness_pg_start(), 0);
    deadline = harness_now_ms() + 15000;
    while (harness_request(c.port, "GET", "/readyz", NULL, NULL, r) != 200 && harness_now_ms() < deadline)
        cluster_pause_ms(100);
    ck_assert_int_eq(r->status, 200);
    ck_assert_int_eq(harness_login(c.port, name, GOOD_PASSWORD, NULL, NULL), 200);
    cluster_stop(&c);
    free(r);
}
END_TEST

Suite *failover_suite(void)
{
    Suite *s = suite_create("failover");
    TCase *tc = tcase_create("failover");

    tcase_set_timeout(tc, 180);
    tcase_add_checked_fixture(tc, NULL, failover_teardown);
    tcase_add_test(tc, a_database_lost_past_the_wait_answers_503_not_401);
    tcase_add_test(tc, failover_to_a_promoted_standby_fails_nothing);
    suite_add_tcase(s, tc);
    return s;
}
