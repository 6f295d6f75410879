/* tests/lib/harness.h - what every test suite shares: starting real
 * worker processes against the throwaway PostgreSQL of tests/run.sh, a
 * small blocking HTTP client, SQL for inspecting the database, and
 * polling with a deadline (never a bare sleep).
 *
 * Environment (set by tests/run.sh): VERONA_BIN_DIR, VERONA_DATABASE_URL,
 * VERONA_PG_DIR (for stopping and restarting PostgreSQL), VERONA_ROOT.
 */
#ifndef VERONA_TESTS_HARNESS_H
#define VERONA_TESTS_HARNESS_H

#include <libpq-fe.h>
#include <stddef.h>
#include <sys/types.h>

#define HARNESS_BODY_MAX 65536

struct harness_worker {
    pid_t pid;
    int port;
    char config_path[256];
    char log_path[256];
};

struct harness_response {
    int status;                  /* 0 = no answer (connection failed or closed) */
    char headers[8192];          /* raw header block, NUL-terminated */
    char body[HARNESS_BODY_MAX]; /* NUL-terminated */
    size_t body_len;
    int closed;                  /* the server closed the connection after it */
};

/* Milliseconds on the monotonic clock. */
long long harness_now_ms(void);

/* A free TCP port on 127.0.0.1. */
int harness_free_port(void);

/* Starts verona-worker with the given extra config lines (may be NULL) and
 * waits until /readyz answers 200 (`wait_ready`) or /healthz answers.
 * Returns 0 or -1. */
int harness_worker_start(struct harness_worker *w, const char *extra_config, int wait_ready);

/* SIGTERM and wait (up to 20 s, then SIGKILL); returns the exit status as
 * waitpid gives it. */
int harness_worker_stop(struct harness_worker *w);

/* 1 while the process runs. */
int harness_worker_alive(const struct harness_worker *w);

/* Connects to 127.0.0.1:port; returns the socket or -1. */
int harness_connect(int port);

/* Sends bytes; 0 or -1. */
int harness_send(int fd, const char *data, size_t len);

/* Reads one response from fd (Content-Length bodies); 0 or -1 on timeout
 * (`timeout_ms`) or a connection closed before a whole response. */
int harness_read_response(int fd, struct harness_response *r, int timeout_ms);

/* One request on a new connection. `body` may be NULL; `headers` are
 * extra "Name: value\r\n" lines. Returns the status (0 on failure). */
int harness_request(int port, const char *method, const char *path, const char *headers,
                    const char *body, struct harness_response *r);

/* POST with Content-Type: application/json and an optional bearer token. */
int harness_post_json(int port, const char *path, const char *token, const char *json,
                      struct harness_response *r);

/* The value of a response header (case-insensitive), copied into out. */
int harness_header(const struct harness_response *r, const char *name, char *out, size_t size);

/* A string member of the JSON body, copied into out; 0 or -1. */
int harness_json_string(const struct harness_response *r, const char *name, char *out, size_t size);

/* An integer member of the JSON body, or -1. */
long long harness_json_int(const struct harness_response *r, const char *name);

/* A connection to the test database (aborts the test on failure). */
PGconn *harness_db(void);

/* Runs SQL and returns the first column of the first row as a malloc'd
 * string (NULL when no row). */
char *harness_sql_value(const char *sql);

/* Runs SQL and fails the test on error. */
void harness_sql(const char *sql);

/* Registers `username` with `password` (expects 201). */
void harness_register(int port, const char *username, const char *password);

/* Logs in and copies the token into token[44]; returns the status. */
int harness_login(int port, const char *username, const char *password, char *token,
                  const char *extra_headers);

/* A unique username for this test run (prefix + counter + pid). */
void harness_username(char *out, size_t size, const char *prefix);

/* Stops / starts the throwaway PostgreSQL (deploy/pg.sh). 0 or -1. */
int harness_pg_stop(void);
int harness_pg_start(void);

/* Sends `sig` to the throwaway PostgreSQL's postmaster and every process
 * it started (SIGSTOP freezes the server with its connections open,
 * SIGCONT thaws it). Returns how many processes got it, or -1. */
int harness_pg_signal(int sig);

/* 1 when a line of the file (a log) contains `text`. */
int harness_file_contains(const char *path, const char *text);

#endif
