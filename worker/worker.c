/* worker/worker.c - one worker process's life (enum worker_state, changed
 * only by worker_set_state): setting up from its settings, readiness (the
 * first PostgreSQL connection on a usable schema), its timers (the
 * sweep, the dummy hashes' settings), signals, drain and the end. The
 * supervisor's side of it (worker/control.c) hears of readiness and the
 * end through w->on_ready and w->on_goodbye; nothing here calls it.
 */
#include "worker.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "../proto/hash_gate.h"
#include "../proto/log.h"
#include "../proto/nofile.h"
#include "../sql/migrations.h"
#include "routes.h"
#include "sandbox.h"

#define WORKER_SWEEP_INTERVAL_MS 60000
#define WORKER_DUMMY_INTERVAL_MS 600000 /* the Argon2 settings among users, read again */

#ifndef VERONA_BUILD_ID
#define VERONA_BUILD_ID "dev"
#endif
const char *const worker_build_id = VERONA_BUILD_ID;

#ifdef VERONA_TEST_HOOKS
/* Test builds only (SPEC 10.9): VERONA_TEST_LEAK_KB makes every request
 * leak that much memory (touched, so it counts in RSS); the fault tests,
 * the bench and the replay use it to prove memory recycling on a real
 * leak. VERONA_TEST_LEAK_AFTER_MS starts the leak that long after the
 * worker started (a build that passes its probation, then leaks). */
static long worker_test_leak_kb;
static uint64_t worker_test_leak_from_ms; /* VERONA_TEST_LEAK_AFTER_MS: a leak that starts late (uv_now) */
static void *volatile worker_test_leaked; /* a chain, so the compiler cannot drop the writes */

static void worker_dispatch(struct http_server *server, struct http_request *req)
{
    size_t size = worker_test_leak_kb > 0 ? (size_t)worker_test_leak_kb * 1024 : 0;
    char *leak = size >= sizeof(void *) && uv_now(server->loop) >= worker_test_leak_from_ms ? malloc(size) : NULL;

    if (leak != NULL) {
        memset(leak, 0x5a, size);
        *(void **)leak = worker_test_leaked;
        worker_test_leaked = leak;
    }
    routes_dispatch(server, req);
}

/* Test builds only: SIGUSR2 makes the worker call ptrace, which the
 * seccomp allow-list forbids (tests/fault/test_sandbox.c). Without the
 * filter the call succeeds and the worker lives on. */
static uv_signal_t worker_test_sig_forbidden;

static void worker_test_on_forbidden(uv_signal_t *s, int signum)
{
    (void)s;
    (void)signum;
    log_emit(LOG_WARN, "test_forbidden_call", json_pack("{s:s}", "call", "ptrace"));
    (void)syscall(SYS_ptrace, PTRACE_TRACEME, 0, 0, 0);
}

static void worker_test_hooks(struct worker *w)
{
    if (getenv("VERONA_TEST_LEAK_KB") != NULL)
        worker_test_leak_kb = strtol(getenv("VERONA_TEST_LEAK_KB"), NULL, 10);
    if (getenv("VERONA_TEST_LEAK_AFTER_MS") != NULL)
        worker_test_leak_from_ms = uv_now(w->loop) + (uint64_t)strtoull(getenv("VERONA_TEST_LEAK_AFTER_MS"), NULL, 10);
    uv_signal_init(w->loop, &worker_test_sig_forbidden);
    uv_signal_start(&worker_test_sig_forbidden, worker_test_on_forbidden, SIGUSR2);
    uv_unref((uv_handle_t *)&worker_test_sig_forbidden);
}

#define WORKER_DISPATCH (worker_test_leak_kb > 0 ? worker_dispatch : routes_dispatch)
#else
#define WORKER_DISPATCH routes_dispatch
#endif

static const char *const worker_state_names[] = { "unconfigured", "starting", "ready", "draining", "done" };

const char *worker_state_name(enum worker_state state)
{
    return (unsigned)state < sizeof(worker_state_names) / sizeof(worker_state_names[0]) ? worker_state_names[state]
                                                                                        : "?";
}

static void worker_set_state(struct worker *w, enum worker_state next)
{
    if (w->state == next)
        return;
    log_emit(LOG_DEBUG, "worker_state",
             json_pack("{s:s, s:s}", "from", worker_state_name(w->state), "to", worker_state_name(next)));
    w->state = next;
}

/* A connection is up only on a schema this build can use (worker/db.c
 * checks it), so the first one up makes the worker ready. */
static void worker_on_db_state(void *arg, int up)
{
    struct worker *w = arg;

    if (!up || w->state != WORKER_STARTING)
        return;
    worker_set_state(w, WORKER_READY);
    log_emit(LOG_INFO, "ready", json_pack("{s:i}", "schema_version", w->db.schema_version));
    if (w->on_ready != NULL)
        w->on_ready(w);
}

/* The open-files limit raised to fit max_connections; when the hard limit
 * is lower, the cap follows what it allows (logged). */
static int worker_connection_cap(int max_connections)
{
    long want = (long)max_connections + NOFILE_RESERVE, got = nofile_raise(want);

    if (got >= want || got < 0) /* < 0: the limit cannot be read; keep the setting */
        return max_connections;
    got = got > NOFILE_RESERVE ? got - NOFILE_RESERVE : 1;
    log_emit(LOG_WARN, "nofile_capped",
             json_pack("{s:I, s:I, s:s}", "max_connections", (json_int_t)max_connections, "cap", (json_int_t)got,
                       "hint", "raise the open-files hard limit (LimitNOFILE, ulimit -Hn)"));
    return (int)got;
}

/* Another node took over: no session may be answered from what the old
 * one said (a revocation it had may be all the new one has), so the cache
 * starts empty. */
static void worker_on_db_primary(void *arg, const char *from, const char *to)
{
    struct worker *w = arg;

    (void)from;
    (void)to;
    session_cache_clear(&w->sessions);
}

static void worker_on_sweep_done(void *arg, PGresult *res)
{
    struct worker *w = arg;

    w->sweep_busy = 0;
    if (res != NULL && !db_result_ok(res))
        log_emit(LOG_WARN, "sweep_failed", json_pack("{s:s}", "error", PQresultErrorMessage(res)));
    else if (res != NULL && strcmp(PQgetvalue(res, 0, 0), "t") == 0)
        log_emit(LOG_DEBUG, "sweep_done", NULL);
}

static void worker_on_sweep_timer(uv_timer_t *t)
{
    struct worker *w = t->data;
    const struct config *cfg = &w->cfg;
    int longest = cfg->throttle_account.seconds;

    if (w->sweep_busy || !db_is_up(&w->db))
        return;
    if (cfg->throttle_address.seconds > longest)
        longest = cfg->throttle_address.seconds;
    if (cfg->throttle_account_address.seconds > longest)
        longest = cfg->throttle_account_address.seconds;
    snprintf(w->sweep_retention_days, sizeof(w->sweep_retention_days), "%d", cfg->audit_retention_days);
    snprintf(w->sweep_window_s, sizeof(w->sweep_window_s), "%d", longest);
    db_query_init(&w->sweep_query, DB_SWEEP, worker_on_sweep_done, w);
    db_query_text(&w->sweep_query, w->sweep_retention_days);
    db_query_text(&w->sweep_query, w->sweep_window_s);
    w->sweep_busy = 1;
    db_query_send(&w->db, &w->sweep_query);
}

/* The Argon2 settings users' hashes have: the dummy hashes follow them
 * (auth_set_dummies; sql/009_hash_params.sql). */
static void worker_on_dummy_params(void *arg, PGresult *res)
{
    struct worker *w = arg;
    int mem[AUTH_DUMMY_MAX], ops[AUTH_DUMMY_MAX], rows, taken;
    long long users[AUTH_DUMMY_MAX];
    unsigned signature;
    const char *choice;
    json_t *settings;

    w->dummy_busy = 0;
    if (res == NULL)
        return; /* no database: the timer asks again */
    if (!db_result_ok(res)) {
        log_emit(LOG_WARN, "hash_params_failed", json_pack("{s:s}", "error", PQresultErrorMessage(res)));
        w->dummy_loaded_ms = uv_now(w->loop); /* not before the next interval */
        return;
    }
    rows = PQntuples(res);
    choice = rows > 0 ? PQgetvalue(res, 0, 3) : ""; /* the same secret on every row */
    if (rows > AUTH_DUMMY_MAX)
        rows = AUTH_DUMMY_MAX;
    for (int i = 0; i < rows; i++) {
        mem[i] = atoi(PQgetvalue(res, i, 0));
        ops[i] = atoi(PQgetvalue(res, i, 1));
        users[i] = atoll(PQgetvalue(res, i, 2));
    }
    taken = auth_set_dummies(&w->auth, mem, ops, users, rows, choice);
    /* Said once, and again when the settings among users change (a new
     * cost has reached every user: the old one is gone from the list). */
    settings = json_array();
    for (int i = 0; i < taken; i++)
        json_array_append_new(settings, json_pack("{s:i, s:i, s:I}", "memlimit_kib", mem[i], "opslimit", ops[i],
                                                  "users", (json_int_t)users[i]));
    signature = 0;
    for (int i = 0; i < taken; i++)
        signature = signature * 1000003u + (unsigned)mem[i] * 31u + (unsigned)ops[i];
    if (w->dummy_loaded_ms == 0 || signature != w->dummy_signature)
        log_emit(LOG_INFO, "hash_params", json_pack("{s:o}", "settings", settings));
    else
        json_decref(settings);
    w->dummy_signature = signature;
    w->dummy_loaded_ms = uv_now(w->loop);
}

static void worker_on_dummy_timer(uv_timer_t *t)
{
    struct worker *w = t->data;

    if (w->dummy_busy || !db_is_up(&w->db))
        return;
    if (w->dummy_loaded_ms != 0 && uv_now(w->loop) - w->dummy_loaded_ms < WORKER_DUMMY_INTERVAL_MS)
        return;
    db_query_init(&w->dummy_query, DB_HASH_PARAMS, worker_on_dummy_params, w);
    w->dummy_busy = 1;
    db_query_send(&w->db, &w->dummy_query);
}

/* Every answer counts, by route and status, with its latency (what the
 * pong reports). A request refused before dispatch (413, 431, 400) counts
 * under the route its path names. */
static void worker_on_answered(struct http_server *server, const struct http_request *req, int status,
                               uint64_t latency_us)
{
    struct worker *w = server->data;
    enum control_route route = ROUTE_OTHER;

    if (req->route >= 0 && req->route < ROUTE_COUNT)
        route = (enum control_route)req->route;
    else if (req->path != NULL)
        route = routes_route_of(req->path);
    w->counters.requests[route][control_status_index(status)]++;
    w->counters.latency[route][control_latency_bucket(latency_us)]++;
    w->counters.latency_sum_us[route] += latency_us;
}

static void worker_on_handle_closed(uv_handle_t *h)
{
    (void)h;
}

/* Last step of a shutdown: close what is left so uv_run returns. */
static void worker_finish(struct worker *w)
{
    uv_timer_stop(&w->sweep_timer);
    uv_close((uv_handle_t *)&w->sweep_timer, worker_on_handle_closed);
    uv_timer_stop(&w->dummy_timer);
    uv_close((uv_handle_t *)&w->dummy_timer, worker_on_handle_closed);
    uv_timer_stop(&w->drain_timer);
    uv_close((uv_handle_t *)&w->drain_timer, worker_on_handle_closed);
    uv_close((uv_handle_t *)&w->sig_term, worker_on_handle_closed);
    uv_close((uv_handle_t *)&w->sig_int, worker_on_handle_closed);
    uv_close((uv_handle_t *)&w->sig_quit, worker_on_handle_closed);
#ifdef VERONA_TEST_HOOKS
    uv_close((uv_handle_t *)&worker_test_sig_forbidden, worker_on_handle_closed);
#endif
    worker_set_state(w, WORKER_DONE);
    if (w->on_goodbye != NULL)
        w->on_goodbye(w, "drained"); /* its last pong still sees the database */
    db_close(&w->db);
}

static void worker_on_drained(struct http_server *server)
{
    struct worker *w = server->data;

    log_emit(LOG_INFO, "drained", NULL);
    worker_finish(w);
}

static void worker_on_drain_timeout(uv_timer_t *t)
{
    struct worker *w = t->data;

    log_emit(LOG_WARN, "drain_timeout",
             json_pack("{s:i, s:i}", "connections", w->http.stats.connections_open, "in_flight",
                       w->http.stats.requests_in_flight));
    if (w->on_goodbye != NULL)
        w->on_goodbye(w, "drain_timeout"); /* the counters so far still count */
    exit(1);
}

void worker_stop(struct worker *w, const char *why)
{
    enum worker_state was = w->state;

    if (was == WORKER_DRAINING || was == WORKER_DONE)
        return;
    worker_set_state(w, WORKER_DRAINING);
    log_emit(LOG_INFO, "draining", json_pack("{s:s}", "reason", why));
    if (was == WORKER_UNCONFIGURED)
        exit(0);
    uv_timer_start(&w->drain_timer, worker_on_drain_timeout, (uint64_t)w->cfg.drain_timeout_ms, 0);
    http_server_drain(&w->http);
}

static void worker_on_signal(uv_signal_t *s, int signum)
{
    struct worker *w = s->data;

    if (signum == SIGQUIT) {
        log_emit(LOG_WARN, "quit", NULL);
        exit(1);
    }
    worker_stop(w, signum == SIGTERM ? "SIGTERM" : "SIGINT");
}


/* no_new_privs and the seccomp allow-list, once everything that needs
 * more is open: from here on the worker accepts, reads, writes, hashes,
 * talks to PostgreSQL and resolves names, and nothing else. */
static int worker_sandbox(struct worker *w)
{
    struct sandbox_scope scope = { .listen_fd = -1, .hash_gate = w->auth.gate,
                                   .supervisor = w->control_state != WORKER_CONTROL_NONE ? w->supervisor_pid : 0 };
    char err[256];

    if (uv_fileno((const uv_handle_t *)&w->http.listener, &scope.listen_fd) != 0)
        scope.listen_fd = -1;
    if (sandbox_enter(&scope, err, sizeof(err)) != 0) {
        log_emit(LOG_ERROR, "sandbox_failed", json_pack("{s:s}", "error", err));
        return 1;
    }
    log_emit(LOG_DEBUG, "sandbox", json_pack("{s:b, s:b}", "no_new_privs", 1, "seccomp", sandbox_supported()));
    return 0;
}

int worker_setup(struct worker *w, int listen_fd)
{
    char err[CONFIG_ERROR_MAX];
    char threads[16];
    int rc;

    if (w->cfg.database_url[0] == '\0') {
        log_emit(LOG_ERROR, "no_database", json_pack("{s:s}", "hint", "set database_url or VERONA_DATABASE_URL"));
        return 2;
    }
    /* Argon2 runs on libuv's pool: size it before the first job. */
    snprintf(threads, sizeof(threads), "%d", w->cfg.hash_threads);
    setenv("UV_THREADPOOL_SIZE", threads, 1);
    if (auth_init(&w->auth, w->loop, &w->cfg, hash_gate_from_env()) != 0) {
        log_emit(LOG_ERROR, "bad_settings", json_pack("{s:s}", "error", "argon2_opslimit / argon2_memlimit_kib: libsodium does not accept them"));
        return 2;
    }
    rc = http_server_init(&w->http, w->loop, w->cfg.listen, listen_fd,
                          WORKER_DISPATCH, w, err, sizeof(err));
    if (rc != 0) {
        log_emit(LOG_ERROR, "listen_failed", json_pack("{s:s}", "error", err));
        return 1;
    }
    w->http.on_drained = worker_on_drained;
    w->http.on_answered = worker_on_answered;
    w->http.max_connections = worker_connection_cap(w->cfg.max_connections);
    rc = db_init(&w->db, w->loop, w->cfg.database_url, w->cfg.db_pool_size, migrations_latest,
                 worker_on_db_state, w);
    if (rc != 0) {
        if (rc == -ENOMEM)
            log_emit(LOG_ERROR, "out_of_memory", NULL);
        return rc == -EINVAL ? 2 : 1; /* -EINVAL: logged as bad_settings */
    }
    db_set_failover_wait(&w->db, w->cfg.db_failover_wait_ms);
    w->db.on_primary = worker_on_db_primary;
    w->db.on_primary_arg = w;
    session_touch_init(&w->touch, &w->db);
    uv_timer_init(w->loop, &w->sweep_timer);
    w->sweep_timer.data = w;
    uv_timer_start(&w->sweep_timer, worker_on_sweep_timer, 1000, WORKER_SWEEP_INTERVAL_MS);
    uv_timer_init(w->loop, &w->dummy_timer);
    w->dummy_timer.data = w;
    uv_timer_start(&w->dummy_timer, worker_on_dummy_timer, 0, 1000);
    worker_set_state(w, WORKER_STARTING);
    rc = worker_sandbox(w);
    if (rc != 0)
        return rc;
    log_emit(LOG_INFO, "worker_started",
             json_pack("{s:s, s:s, s:i, s:i, s:b, s:b}", "build_id", worker_build_id, "listen", w->cfg.listen,
                       "db_pool_size", w->cfg.db_pool_size, "hash_threads", w->cfg.hash_threads,
                       "hash_gate", w->auth.gate >= 0, "supervised",
                       w->control_state != WORKER_CONTROL_NONE));
    return 0;
}

void worker_init(struct worker *w)
{
    w->loop = uv_default_loop();
    w->state = WORKER_UNCONFIGURED;
    uv_timer_init(w->loop, &w->drain_timer);
    w->drain_timer.data = w;
    uv_unref((uv_handle_t *)&w->drain_timer);
    uv_signal_init(w->loop, &w->sig_term);
    uv_signal_init(w->loop, &w->sig_int);
    uv_signal_init(w->loop, &w->sig_quit);
    w->sig_term.data = w->sig_int.data = w->sig_quit.data = w;
    uv_signal_start(&w->sig_term, worker_on_signal, SIGTERM);
    uv_signal_start(&w->sig_int, worker_on_signal, SIGINT);
    uv_signal_start(&w->sig_quit, worker_on_signal, SIGQUIT);
#ifdef VERONA_TEST_HOOKS
    worker_test_hooks(w);
#endif
}
