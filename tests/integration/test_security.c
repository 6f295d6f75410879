/* tests/integration/test_security.c - SPEC.md section 5 against real
 * workers: throttling (three windows, shared across workers, no lock-out
 * from elsewhere), revocation across workers, tokens stored only hashed,
 * equal answers and timing for unknown users, rehash on login. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../lib/harness.h"

#define GOOD_PASSWORD "correct horse battery staple"

static struct harness_response *r;

static void response_setup(void)
{
    r = calloc(1, sizeof(*r));
    ck_assert_ptr_nonnull(r);
}

static void response_teardown(void)
{
    free(r);
}

/* "X-Forwarded-For: 203.0.113.N" (the test workers trust 127.0.0.1). */
static const char *from(int n)
{
    static char header[64];

    snprintf(header, sizeof(header), "X-Forwarded-For: 203.0.%d.%d\r\n", (n >> 8) & 255, n & 255);
    return header;
}

static int login_from(int port, const char *name, const char *password, int addr)
{
    return harness_login(port, name, password, NULL, from(addr));
}

START_TEST(account_address_window_and_no_lockout_from_elsewhere)
{
    struct harness_worker w;
    char name[64], sql[256], *count;
    int base = (getpid() % 200) * 50;

    ck_assert_int_eq(harness_worker_start(&w, NULL, 1), 0);
    harness_username(name, sizeof(name), "thr");
    harness_register(w.port, name, GOOD_PASSWORD);
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(login_from(w.port, name, "wrong password!", base + 1), 401);
    /* Over the limit: 429 even with the right password, and no hashing. */
    ck_assert_int_eq(harness_request(w.port, "POST", "/v1/login",
                                     "Content-Type: application/json\r\nX-Forwarded-For: 203.0.0.1\r\n",
                                     "{}", r), 400);
    {
        char headers[128], json[256], retry[16];
        snprintf(headers, sizeof(headers), "Content-Type: application/json\r\n%s", from(base + 1));
        snprintf(json, sizeof(json), "{\"username\":\"%s\",\"password\":\"" GOOD_PASSWORD "\"}", name);
        ck_assert_int_eq(harness_request(w.port, "POST", "/v1/login", headers, json, r), 429);
        ck_assert_ptr_nonnull(strstr(r->body, "too_many_attempts"));
        ck_assert_int_eq(harness_header(r, "Retry-After", retry, sizeof(retry)), 0);
        ck_assert_int_ge(atoi(retry), 1);
        ck_assert_int_le(atoi(retry), 900);
    }
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM login_audit WHERE username = '%s' AND result = 'throttled'",
             name);
    count = harness_sql_value(sql);
    ck_assert_str_eq(count, "1");
    free(count);
    /* The owner, elsewhere, is not locked out. */
    ck_assert_int_eq(login_from(w.port, name, GOOD_PASSWORD, base + 2), 200);
    harness_worker_stop(&w);
}
END_TEST

START_TEST(success_clears_the_account_address_window)
{
    struct harness_worker w;
    char name[64];
    int base = (getpid() % 200) * 50 + 10;

    ck_assert_int_eq(harness_worker_start(&w, NULL, 1), 0);
    harness_username(name, sizeof(name), "clr");
    harness_register(w.port, name, GOOD_PASSWORD);
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(login_from(w.port, name, "wrong password!", base), 401);
    ck_assert_int_eq(login_from(w.port, name, GOOD_PASSWORD, base), 200);
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(login_from(w.port, name, "wrong password!", base), 401);
    ck_assert_int_eq(login_from(w.port, name, GOOD_PASSWORD, base), 200);
    harness_worker_stop(&w);
}
END_TEST

START_TEST(address_window_covers_every_username)
{
    struct harness_worker w;
    char name[64];
    int addr = (getpid() % 200) * 50 + 20;

    ck_assert_int_eq(harness_worker_start(&w, "throttle_address = 3/900", 1), 0);
    for (int i = 0; i < 3; i++) {
        harness_username(name, sizeof(name), "nobody");
        ck_assert_int_eq(login_from(w.port, name, "whatever it is", addr), 401);
    }
    harness_username(name, sizeof(name), "nobody");
    ck_assert_int_eq(login_from(w.port, name, "whatever it is", addr), 429);
    harness_worker_stop(&w);
}
END_TEST

START_TEST(account_window_spares_known_addresses)
{
    struct harness_worker w;
    char name[64];
    int base = (getpid() % 200) * 50 + 30;

    ck_assert_int_eq(harness_worker_start(&w, "throttle_account = 3/900", 1), 0);
    harness_username(name, sizeof(name), "acct");
    harness_register(w.port, name, GOOD_PASSWORD);
    ck_assert_int_eq(login_from(w.port, name, GOOD_PASSWORD, base), 200); /* base is now known */
    for (int i = 1; i <= 3; i++)
        ck_assert_int_eq(login_from(w.port, name, "wrong password!", base + i), 401);
    ck_assert_int_eq(login_from(w.port, name, GOOD_PASSWORD, base + 5), 429);
    ck_assert_int_eq(login_from(w.port, name, GOOD_PASSWORD, base), 200);
    harness_worker_stop(&w);
}
END_TEST

START_TEST(two_workers_share_throttling_and_revocation)
{
    struct harness_worker a, b;
    char name[64], token[44], header[80];
    int addr = (getpid() % 200) * 50 + 40;

    ck_assert_int_eq(harness_worker_start(&a, NULL, 1), 0);
    ck_assert_int_eq(harness_worker_start(&b, NULL, 1), 0);
    harness_username(name, sizeof(name), "two");
    harness_register(a.port, name, GOOD_PASSWORD);
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(login_from(i % 2 ? a.port : b.port, name, "wrong password!", addr), 401);
    ck_assert_int_eq(login_from(a.port, name, "wrong password!", addr), 429);
    ck_assert_int_eq(login_from(b.port, name, "wrong password!", addr), 429);

    ck_assert_int_eq(harness_login(a.port, name, GOOD_PASSWORD, token, from(addr + 1)), 200);
    snprintf(header, sizeof(header), "Authorization: Bearer %s\r\n", token);
    ck_assert_int_eq(harness_request(b.port, "GET", "/v1/session", header, NULL, r), 200);
    ck_assert_int_eq(harness_post_json(b.port, "/v1/logout", token, NULL, r), 204);
    ck_assert_int_eq(harness_request(a.port, "GET", "/v1/session", header, NULL, r), 401);
    harness_worker_stop(&a);
    harness_worker_stop(&b);
}
END_TEST

START_TEST(tokens_are_stored_only_as_hashes)
{
    struct harness_worker w;
    char name[64], token[44], sql[512], *count;

    ck_assert_int_eq(harness_worker_start(&w, NULL, 1), 0);
    harness_username(name, sizeof(name), "tok");
    harness_register(w.port, name, GOOD_PASSWORD);
    ck_assert_int_eq(harness_login(w.port, name, GOOD_PASSWORD, token, NULL), 200);
    harness_worker_stop(&w);
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM sessions WHERE position(convert_to('%s', 'UTF8') in token_hash) > 0 "
             "OR encode(token_hash, 'hex') LIKE '%%' || encode(convert_to('%s', 'UTF8'), 'hex') || '%%' "
             "OR encode(token_hash, 'base64') LIKE '%%%.20s%%'",
             token, token, token);
    count = harness_sql_value(sql);
    ck_assert_str_eq(count, "0");
    free(count);
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM sessions s JOIN users u ON u.id = s.user_id WHERE u.username = '%s'",
             name);
    count = harness_sql_value(sql);
    ck_assert_str_eq(count, "1");
    free(count);
}
END_TEST

/* Repeated X-Forwarded-For lines read as one list: the right-most entry
 * (in the last line, which a proxy appending its own line writes) is the
 * client, not what the client put in the first line. */
START_TEST(every_forwarded_for_line_counts)
{
    struct harness_worker w;
    char name[64], sql[256], json[256], *address;

    ck_assert_int_eq(harness_worker_start(&w, NULL, 1), 0);
    harness_username(name, sizeof(name), "xff");
    snprintf(json, sizeof(json), "{\"username\":\"%s\",\"password\":\"wrong password!\"}", name);
    ck_assert_int_eq(harness_request(w.port, "POST", "/v1/login",
                                     "Content-Type: application/json\r\nX-Forwarded-For: 9.9.9.9\r\n"
                                     "X-Forwarded-For: 198.51.100.77\r\n",
                                     json, r),
                     401);
    harness_worker_stop(&w);
    snprintf(sql, sizeof(sql), "SELECT address FROM login_audit WHERE username = '%s'", name);
    address = harness_sql_value(sql);
    ck_assert_ptr_nonnull(address);
    ck_assert_str_eq(address, "198.51.100.77");
    free(address);
}
END_TEST

/* The trailers of a chunked body are never headers: an X-Forwarded-For in
 * them does not replace the one the trusted proxy wrote (it would have
 * let a client pick the address that throttling and the audit see). */
START_TEST(trailers_are_not_headers)
{
    struct harness_worker w;
    char name[64], sql[256], json[256], raw[1024], *address;
    int fd;

    ck_assert_int_eq(harness_worker_start(&w, NULL, 1), 0);
    harness_username(name, sizeof(name), "trailer");
    snprintf(json, sizeof(json), "{\"username\":\"%s\",\"password\":\"wrong password!\"}", name);
    snprintf(raw, sizeof(raw),
             "POST /v1/login HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
             "X-Forwarded-For: 203.0.113.7\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
             "%zx\r\n%s\r\n0\r\nX-Forwarded-For: 198.51.100.99\r\n\r\n",
             strlen(json), json);
    fd = harness_connect(w.port);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(harness_send(fd, raw, strlen(raw)), 0);
    ck_assert_int_eq(harness_read_response(fd, r, 10000), 0);
    close(fd);
    ck_assert_int_eq(r->status, 401);
    harness_worker_stop(&w);
    snprintf(sql, sizeof(sql), "SELECT address FROM login_audit WHERE username = '%s'", name);
    address = harness_sql_value(sql);
    ck_assert_ptr_nonnull(address);
    ck_assert_str_eq(address, "203.0.113.7");
    free(address);
}
END_TEST

/* Registers a user (and, with `logins`, gives it that many sessions)
 * through a worker of its own; returns its id and password hash. */
static void race_user(const char *prefix, char *name, size_t size, int logins, char **id, char **hash)
{
    struct harness_worker w;
    char sql[256];

    ck_assert_int_eq(harness_worker_start(&w, NULL, 1), 0);
    harness_username(name, size, prefix);
    harness_register(w.port, name, GOOD_PASSWORD);
    for (int i = 0; i < logins; i++)
        ck_assert_int_eq(harness_login(w.port, name, GOOD_PASSWORD, NULL, NULL), 200);
    harness_worker_stop(&w);
    snprintf(sql, sizeof(sql), "SELECT id FROM users WHERE username = '%s'", name);
    *id = harness_sql_value(sql);
    snprintf(sql, sizeof(sql), "SELECT password_hash FROM users WHERE username = '%s'", name);
    *hash = harness_sql_value(sql);
}

/* A login's success re-checks the user (004_success_recheck.sql): after a
 * password change or a lock committed while the attempt hashed, it writes
 * nothing (no session, no rehash) and returns NULL. Called here directly,
 * as the worker does after its hash, so the race is not left to timing. */
START_TEST(a_success_after_a_password_change_or_lock_writes_nothing)
{
    char name[64], sql[1024], *id, *hash, *v;

    race_user("race", name, sizeof(name), 0, &id, &hash);
#define SUCCESS_SQL(verified)                                                                         \
    snprintf(sql, sizeof(sql),                                                                        \
             "SELECT verona_attempt_succeeded_checked(0, %s, '%s', '192.0.2.1', "                     \
             "decode(md5(random()::text) || md5(random()::text), 'hex'), "                            \
             "3600, 1800, '$argon2id$not-a-rehash', '%s') IS NOT NULL",                               \
             id, name, verified)
    /* The password changed since the begin: the hash verified is stale. */
    SUCCESS_SQL("$argon2id$v=19$the-hash-before-the-change");
    v = harness_sql_value(sql);
    ck_assert_str_eq(v, "f");
    free(v);
    /* Still the user's hash: the session is written (and the rehash). */
    SUCCESS_SQL(hash);
    v = harness_sql_value(sql);
    ck_assert_str_eq(v, "t");
    free(v);
    /* Locked since the begin. */
    snprintf(sql, sizeof(sql), "UPDATE users SET locked = true, password_hash = '%s' WHERE id = %s", hash, id);
    harness_sql(sql);
    SUCCESS_SQL(hash);
    v = harness_sql_value(sql);
    ck_assert_str_eq(v, "f");
    free(v);
#undef SUCCESS_SQL
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM sessions WHERE user_id = %s", id);
    v = harness_sql_value(sql);
    ck_assert_str_eq(v, "1"); /* only the one of the current hash */
    free(v);
    free(id);
    free(hash);
}
END_TEST

/* A password change re-checks before it writes (006_password_recheck.sql):
 * after a lock, a reset or a logout committed while it hashed, it writes
 * nothing and returns false (the worker answers 401). Called directly, as
 * the worker does after its hashes, so the race is not left to timing. */
START_TEST(a_password_change_after_a_lock_reset_or_logout_writes_nothing)
{
    char name[64], sql[1024], *id, *hash, *token_hash, *v;

    race_user("change", name, sizeof(name), 1, &id, &hash);
    snprintf(sql, sizeof(sql), "SELECT encode(token_hash, 'hex') FROM sessions WHERE user_id = %s", id);
    token_hash = harness_sql_value(sql);
#define SET_SQL(verified)                                                                             \
    snprintf(sql, sizeof(sql),                                                                        \
             "SELECT verona_password_attempt_set_checked(0, %s, decode('%s', 'hex'), "                \
             "'$argon2id$the-new-one', '%s')",                                                        \
             id, token_hash, verified)
    /* Reset by an administrator since the begin: the hash verified is stale. */
    SET_SQL("$argon2id$v=19$the-hash-before-the-reset");
    v = harness_sql_value(sql);
    ck_assert_str_eq(v, "f");
    free(v);
    /* Locked since the begin. */
    snprintf(sql, sizeof(sql), "UPDATE users SET locked = true WHERE id = %s", id);
    harness_sql(sql);
    SET_SQL(hash);
    v = harness_sql_value(sql);
    ck_assert_str_eq(v, "f");
    free(v);
    snprintf(sql, sizeof(sql), "UPDATE users SET locked = false WHERE id = %s", id);
    harness_sql(sql);
    /* The session that asked was logged out since the begin. */
    snprintf(sql, sizeof(sql), "DELETE FROM sessions WHERE token_hash = decode('%s', 'hex') RETURNING 1", token_hash);
    free(harness_sql_value(sql));
    SET_SQL(hash);
    v = harness_sql_value(sql);
    ck_assert_str_eq(v, "f");
    free(v);
    snprintf(sql, sizeof(sql), "SELECT password_hash = '%s' FROM users WHERE id = %s", hash, id);
    v = harness_sql_value(sql);
    ck_assert_str_eq(v, "t"); /* none of the three wrote */
    free(v);
    /* All still holds: the new hash is written. */
    snprintf(sql, sizeof(sql),
             "INSERT INTO sessions (token_hash, user_id, expires_abs, idle_s) "
             "VALUES (decode('%s', 'hex'), %s, now() + interval '1 hour', 1800)", token_hash, id);
    harness_sql(sql);
    SET_SQL(hash);
    v = harness_sql_value(sql);
    ck_assert_str_eq(v, "t");
    free(v);
#undef SET_SQL
    snprintf(sql, sizeof(sql), "SELECT password_hash FROM users WHERE id = %s", id);
    v = harness_sql_value(sql);
    ck_assert_str_eq(v, "$argon2id$the-new-one");
    free(v);
    free(id);
    free(hash);
    free(token_hash);
}
END_TEST

static int compare_ll(const void *a, const void *b)
{
    long long x = *(const long long *)a, y = *(const long long *)b;
    return (x > y) - (x < y);
}

/* Points this test (and the workers it starts) at a database of its own,
 * migrated: a timing test must not see the users other tests registered,
 * since the dummy hash follows the Argon2 settings users have. */
static void use_own_database(const char *prefix)
{
    char base[1024], db[64], url[1200], sql[128];
    const char *at;

    snprintf(base, sizeof(base), "%s", getenv("VERONA_DATABASE_URL"));
    at = strstr(base, "/verona?");
    ck_assert_ptr_nonnull(at);
    snprintf(db, sizeof(db), "verona_%s_%d", prefix, (int)getpid());
    snprintf(url, sizeof(url), "%.*s/%s%s", (int)(at - base), base, db, at + strlen("/verona"));
    snprintf(sql, sizeof(sql), "CREATE DATABASE %s", db);
    harness_sql(sql);
    ck_assert_int_eq(setenv("VERONA_DATABASE_URL", url, 1), 0);
    ck_assert_int_eq(system("\"$VERONA_BIN_DIR/verona\" migrate >/dev/null"), 0);
}

/* Polls until the worker has read the Argon2 settings among users (its
 * "hash_params" line), for up to 15 s. */
static void wait_hash_params(const struct harness_worker *w)
{
    long long deadline = harness_now_ms() + 15000;

    while (!harness_file_contains(w->log_path, "\"hash_params\"") && harness_now_ms() < deadline)
        usleep(10000);
    ck_assert_msg(harness_file_contains(w->log_path, "\"hash_params\""), "no hash_params line in %s", w->log_path);
}

/* Times SAMPLES wrong passwords for `name` and SAMPLES logins of the
 * unknown `ghost`, interleaved, each from its own address: their medians
 * must be within 20% of each other. */
enum { SAMPLES = 25 };
static void assert_unknown_costs_the_same(int port, const char *name, const char *ghost, int base)
{
    long long wrong[SAMPLES], unknown[SAMPLES], mw, mu;

    for (int i = 0; i < SAMPLES; i++) {
        long long t0 = harness_now_ms();
        ck_assert_int_eq(login_from(port, name, "wrong password!", base + i), 401);
        wrong[i] = harness_now_ms() - t0;
        t0 = harness_now_ms();
        ck_assert_int_eq(login_from(port, ghost, "wrong password!", base + 100 + i), 401);
        unknown[i] = harness_now_ms() - t0;
    }
    qsort(wrong, SAMPLES, sizeof(wrong[0]), compare_ll);
    qsort(unknown, SAMPLES, sizeof(unknown[0]), compare_ll);
    mw = wrong[SAMPLES / 2];
    mu = unknown[SAMPLES / 2];
    ck_assert_msg(mw > 0 && mu > 0, "medians %lld / %lld ms", mw, mu);
    ck_assert_msg(llabs(mw - mu) * 100 < 20 * (mw > mu ? mw : mu),
                  "median wrong password %lld ms vs unknown user %lld ms", mw, mu);
}

START_TEST(unknown_user_costs_the_same_as_a_wrong_password)
{
    struct harness_worker w;
    char name[64], ghost[64];
    int base = 100000 + (getpid() % 100) * 200;

    use_own_database("timing");
    /* Real Argon2 parameters here: the difference must not hide in noise. */
    ck_assert_int_eq(harness_worker_start(&w, "argon2_memlimit_kib = 19456\nargon2_opslimit = 2", 1), 0);
    harness_username(name, sizeof(name), "timing");
    harness_username(ghost, sizeof(ghost), "ghost");
    harness_register(w.port, name, GOOD_PASSWORD);
    assert_unknown_costs_the_same(w.port, name, ghost, base);
    harness_worker_stop(&w);
}
END_TEST

/* After the Argon2 cost is raised, a user not logged in since keeps the
 * old hash, and a wrong password for it costs the old settings; an
 * unknown name must cost the same, not the new settings (issue 19,
 * finding 7): the dummy hash follows the settings users still have. */
START_TEST(unknown_user_costs_the_settings_users_still_have)
{
    struct harness_worker old, now;
    char name[64], ghost[64];
    int base = 120000 + (getpid() % 100) * 200;

    use_own_database("settings");
    ck_assert_int_eq(harness_worker_start(&old, "argon2_memlimit_kib = 19456\nargon2_opslimit = 1", 1), 0);
    harness_username(name, sizeof(name), "oldcost");
    harness_username(ghost, sizeof(ghost), "ghost");
    harness_register(old.port, name, GOOD_PASSWORD);
    harness_worker_stop(&old);
    /* The cost raised eightfold: unknown names costing the new settings
     * would add seven verifies of the old settings to each login. */
    ck_assert_int_eq(harness_worker_start(&now, "argon2_memlimit_kib = 19456\nargon2_opslimit = 8", 1), 0);
    wait_hash_params(&now);
    ck_assert(harness_file_contains(now.log_path, "\"memlimit_kib\":19456,\"opslimit\":1,\"users\":1"));
    assert_unknown_costs_the_same(now.port, name, ghost, base);
    harness_worker_stop(&now);
}
END_TEST

START_TEST(login_rehashes_when_parameters_change)
{
    struct harness_worker weak, strong;
    char name[64], sql[256], *hash;

    ck_assert_int_eq(harness_worker_start(&weak, NULL, 1), 0);
    harness_username(name, sizeof(name), "rehash");
    harness_register(weak.port, name, GOOD_PASSWORD);
    harness_worker_stop(&weak);
    snprintf(sql, sizeof(sql), "SELECT password_hash FROM users WHERE username = '%s'", name);
    hash = harness_sql_value(sql);
    ck_assert_ptr_nonnull(strstr(hash, "m=8192,t=1"));
    free(hash);

    ck_assert_int_eq(harness_worker_start(&strong, "argon2_opslimit = 2", 1), 0);
    ck_assert_int_eq(harness_login(strong.port, name, GOOD_PASSWORD, NULL, NULL), 200);
    harness_worker_stop(&strong);
    hash = harness_sql_value(sql);
    ck_assert_ptr_nonnull(strstr(hash, "m=8192,t=2"));
    free(hash);
}
END_TEST

/* BURST logins of `name` with `password` from one address, all sent
 * before any answer; counts the answers 200, 401 and 429 into got[]. */
enum { BURST = 15 };
/* A raw login request of `name` with `password` from 203.0.x.y. */
static void login_request(char *request, size_t size, const char *name, const char *password, int addr)
{
    char json[256];

    snprintf(json, sizeof(json), "{\"username\":\"%s\",\"password\":\"%s\"}", name, password);
    snprintf(request, size,
             "POST /v1/login HTTP/1.1\r\nContent-Type: application/json\r\n%sContent-Length: %zu\r\n\r\n%s",
             from(addr), strlen(json), json);
}

static void login_burst(int port, const char *name, const char *password, int addr, int got[3])
{
    char request[768];
    int fds[BURST];

    login_request(request, sizeof(request), name, password, addr);
    for (int i = 0; i < BURST; i++) {
        fds[i] = harness_connect(port);
        ck_assert_int_ge(fds[i], 0);
    }
    for (int i = 0; i < BURST; i++)
        ck_assert_int_eq(harness_send(fds[i], request, strlen(request)), 0);
    got[0] = got[1] = got[2] = 0;
    for (int i = 0; i < BURST; i++) {
        ck_assert_int_eq(harness_read_response(fds[i], r, 30000), 0);
        got[0] += r->status == 200;
        got[1] += r->status == 401;
        got[2] += r->status == 429;
        close(fds[i]);
    }
}

START_TEST(parallel_attempts_cannot_slip_past_the_limit)
{
    struct harness_worker w;
    char name[64];
    int got[3];
    int addr = (getpid() % 200) * 50 + 45;

    /* hash_queue_max 128: the burst stays within one address's share (16). */
    ck_assert_int_eq(harness_worker_start(&w, "hash_threads = 2\nhash_queue_max = 128", 1), 0);
    harness_username(name, sizeof(name), "burst");
    harness_register(w.port, name, GOOD_PASSWORD);
    /* All at once, before any answer: a check-then-count race would let
     * every one of them through to a verify. */
    login_burst(w.port, name, "wrong password!", addr, got);
    harness_worker_stop(&w);
    ck_assert_int_eq(got[1], 5);
    ck_assert_int_eq(got[2], BURST - 5);
}
END_TEST

/* The attempts in flight bound the guesses, but a correct login among
 * them is no failure: parallel correct logins of one user from one
 * address (a NAT, several tabs) all succeed, though more of them are in
 * flight than the account+address window allows failures. */
START_TEST(parallel_correct_logins_are_not_throttled)
{
    struct harness_worker w;
    char name[64], sql[256], *audited;
    int got[3];
    int addr = (getpid() % 200) * 50 + 46;

    /* hash_queue_max 128: the burst stays within one address's share (16). */
    ck_assert_int_eq(harness_worker_start(&w, "hash_threads = 2\nhash_queue_max = 128", 1), 0);
    harness_username(name, sizeof(name), "crowd");
    harness_register(w.port, name, GOOD_PASSWORD);
    login_burst(w.port, name, GOOD_PASSWORD, addr, got);
    harness_worker_stop(&w);
    ck_assert_int_eq(got[0], BURST);
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM login_audit WHERE username = '%s' AND result = 'success'", name);
    audited = harness_sql_value(sql);
    ck_assert_str_eq(audited, "15");
    free(audited);
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM login_failures WHERE username_lower = lower('%s')",
             name);
    audited = harness_sql_value(sql);
    ck_assert_str_eq(audited, "0");
    free(audited);
}
END_TEST

/* `count` attempts in flight (pending failure rows) of `name` from
 * 203.0.x.y, begun `age_s` seconds ago, as another worker would hold. */
static void pending_attempts(const char *name, int addr, int count, int age_s)
{
    char sql[400];

    snprintf(sql, sizeof(sql),
             "INSERT INTO login_failures (username_lower, address, known, pending, at) "
             "SELECT lower('%s'), '203.0.%d.%d', false, true, now() - make_interval(secs => %d) "
             "FROM generate_series(1, %d)",
             name, (addr >> 8) & 255, addr & 255, age_s, count);
    harness_sql(sql);
}

/* SQL 007: attempts still in flight bound the guesses but are not
 * failures. A window full of them makes a login wait: it gets in when
 * they go, and 429 with Retry-After: 1 (audited 'throttled') when they
 * stay for 5 s. One over 30 s old is a failure (its worker died): 429 at
 * once, until the window frees it. */
/* Sends a correct login of `name` from 203.0.x.y; returns the socket. */
static int login_send(int port, const char *name, int addr)
{
    char request[768];
    int fd;

    login_request(request, sizeof(request), name, GOOD_PASSWORD, addr);
    fd = harness_connect(port);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(harness_send(fd, request, strlen(request)), 0);
    return fd;
}

/* Its answer, in r; returns the status. */
static int login_read(int fd)
{
    ck_assert_int_eq(harness_read_response(fd, r, 30000), 0);
    close(fd);
    return r->status;
}

START_TEST(attempts_in_flight_hold_a_login_until_they_end)
{
    struct harness_worker w;
    char name[64], retry[16], sql[320], *audited;
    int base = (getpid() % 200) * 50 + 47, fd;

    ck_assert_int_eq(harness_worker_start(&w, NULL, 1), 0);
    harness_username(name, sizeof(name), "inflight");
    harness_register(w.port, name, GOOD_PASSWORD);

    /* Four in flight: room for one more. */
    pending_attempts(name, base, 4, 0);
    ck_assert_int_eq(login_read(login_send(w.port, name, base)), 200);

    /* Five in flight that stay: the login waits, then gives up. */
    pending_attempts(name, base + 1, 5, 0);
    ck_assert_int_eq(login_read(login_send(w.port, name, base + 1)), 429);
    ck_assert_int_eq(harness_header(r, "Retry-After", retry, sizeof(retry)), 0);
    ck_assert_str_eq(retry, "1");
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM login_audit WHERE username = '%s' AND address = '203.0.%d.%d' AND result = 'throttled'",
             name, ((base + 1) >> 8) & 255, (base + 1) & 255);
    audited = harness_sql_value(sql);
    ck_assert_str_eq(audited, "1");
    free(audited);

    /* Five in flight that end while it waits: it gets in. */
    pending_attempts(name, base + 2, 5, 0);
    fd = login_send(w.port, name, base + 2);
    snprintf(sql, sizeof(sql), "DELETE FROM login_failures WHERE address = '203.0.%d.%d'", ((base + 2) >> 8) & 255,
             (base + 2) & 255);
    harness_sql(sql);
    ck_assert_int_eq(login_read(fd), 200);

    /* Five left by a dead worker 40 s ago are failures: 429 for the rest of the window. */
    pending_attempts(name, base + 3, 5, 40);
    ck_assert_int_eq(login_read(login_send(w.port, name, base + 3)), 429);
    ck_assert_int_eq(harness_header(r, "Retry-After", retry, sizeof(retry)), 0);
    ck_assert_int_gt(atoi(retry), 800);
    harness_worker_stop(&w);
}
END_TEST

START_TEST(ten_registrations_an_hour_per_address)
{
    struct harness_worker w;
    char name[64], json[256], headers[160], retry[16];
    int addr = 60000 + (getpid() % 1000) * 4;

    ck_assert_int_eq(harness_worker_start(&w, NULL, 1), 0);
    snprintf(headers, sizeof(headers), "Content-Type: application/json\r\n%s", from(addr));
    for (int i = 0; i < 10; i++) {
        harness_username(name, sizeof(name), "regs");
        snprintf(json, sizeof(json), "{\"username\":\"%s\",\"password\":\"" GOOD_PASSWORD "\"}", name);
        ck_assert_int_eq(harness_request(w.port, "POST", "/v1/users", headers, json, r), 201);
    }
    harness_username(name, sizeof(name), "regs");
    snprintf(json, sizeof(json), "{\"username\":\"%s\",\"password\":\"" GOOD_PASSWORD "\"}", name);
    ck_assert_int_eq(harness_request(w.port, "POST", "/v1/users", headers, json, r), 429);
    ck_assert_ptr_nonnull(strstr(r->body, "too_many_attempts"));
    ck_assert_ptr_nonnull(strstr(r->body, "too many registrations")); /* none of them failed */
    ck_assert_int_eq(harness_header(r, "Retry-After", retry, sizeof(retry)), 0);
    ck_assert_int_ge(atoi(retry), 1);
    ck_assert_int_le(atoi(retry), 3600);
    /* Another address still registers. */
    snprintf(headers, sizeof(headers), "Content-Type: application/json\r\n%s", from(addr + 1));
    ck_assert_int_eq(harness_request(w.port, "POST", "/v1/users", headers, json, r), 201);
    harness_worker_stop(&w);
}
END_TEST

Suite *security_suite(void)
{
    Suite *s = suite_create("security");
    TCase *tc = tcase_create("promises");

    tcase_add_checked_fixture(tc, response_setup, response_teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, account_address_window_and_no_lockout_from_elsewhere);
    tcase_add_test(tc, a_success_after_a_password_change_or_lock_writes_nothing);
    tcase_add_test(tc, a_password_change_after_a_lock_reset_or_logout_writes_nothing);
    tcase_add_test(tc, every_forwarded_for_line_counts);
    tcase_add_test(tc, trailers_are_not_headers);
    tcase_add_test(tc, success_clears_the_account_address_window);
    tcase_add_test(tc, address_window_covers_every_username);
    tcase_add_test(tc, account_window_spares_known_addresses);
    tcase_add_test(tc, two_workers_share_throttling_and_revocation);
    tcase_add_test(tc, parallel_attempts_cannot_slip_past_the_limit);
    tcase_add_test(tc, parallel_correct_logins_are_not_throttled);
    tcase_add_test(tc, attempts_in_flight_hold_a_login_until_they_end);
    tcase_add_test(tc, ten_registrations_an_hour_per_address);
    tcase_add_test(tc, tokens_are_stored_only_as_hashes);
    tcase_add_test(tc, unknown_user_costs_the_same_as_a_wrong_password);
    tcase_add_test(tc, unknown_user_costs_the_settings_users_still_have);
    tcase_add_test(tc, login_rehashes_when_parameters_change);
    suite_add_tcase(s, tc);
    return s;
}
