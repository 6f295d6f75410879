/* tests/lib/cluster.h - a real `verona serve` for tests: config in the
 * test's temp folder, the admin socket, `verona ctl`, status as JSON, and
 * wrk as the load generator. */
#ifndef VERONA_TESTS_CLUSTER_H
#define VERONA_TESTS_CLUSTER_H

#include <jansson.h>
#include <sys/types.h>

#define CLUSTER_PASSWORD "correct horse battery staple" /* the load's user */

struct cluster {
    char verona[320];   /* the supervisor's binary (VERONA_BIN_DIR's, or its own copy) */
    pid_t pid;
    int port;
    char dir[256];
    char config_path[320];
    char socket_path[320];
    char log_path[320];
    int workers;
};

/* The two halves of cluster_start: the folder and config, then the
 * process (so a test can put files in c->dir first). */
void cluster_prepare(struct cluster *c, int workers, const char *extra_config);
int cluster_launch(struct cluster *c, int wait_ready);

/* Between prepare and launch: the supervisor runs from its own copy of
 * `verona` in c->dir (so a test may replace that file: ctl upgrade), its
 * workers from VERONA_BIN_DIR. */
void cluster_own_binary(struct cluster *c);

/* Puts `source` at c->verona the way a package upgrade does (a new
 * file renamed over the old one), with `mode`. */
void cluster_replace_binary(const struct cluster *c, const char *source, int mode);

/* The same with a shell script holding `body`. */
void cluster_replace_binary_script(const struct cluster *c, const char *body);

/* Starts `verona serve` with `workers` and extra config lines, and waits
 * until that many workers are ready (`wait_ready`). 0 or -1. */
int cluster_start(struct cluster *c, int workers, const char *extra_config, int wait_ready);

/* Sends `signal`, waits for the supervisor's exit; returns its wait status. */
int cluster_signal_wait(struct cluster *c, int signal, int timeout_ms);

/* Graceful stop (SIGTERM) and wait; asserts a clean exit. */
void cluster_stop(struct cluster *c);

/* `verona ctl -s SOCKET ARGS`; returns the exit code, output in out. */
int cluster_ctl(const struct cluster *c, const char *args, char *out, size_t size);

/* `ctl status --json`, parsed (new reference; NULL on failure). */
json_t *cluster_status(const struct cluster *c);

/* Counts in the status: workers in `state` ("ready", ...; NULL = all). */
int cluster_count(const struct cluster *c, const char *state);

/* totals.restarts_by_reason[reason], or -1. */
long cluster_restarts(const struct cluster *c, const char *reason);

/* The pid of the n-th worker in `state`, or 0. */
int cluster_worker_pid(const struct cluster *c, const char *state, int n);

/* The port of the cluster's metrics_listen (the first in its config file). */
int cluster_metrics_port(const struct cluster *c);

/* Polls until `ready` workers are ready and `total` rows exist in all
 * (-1 = any), or the deadline passes. 0 or -1. */
int cluster_wait_workers(const struct cluster *c, int ready, int total, int timeout_ms);

/* 1 when the log contains `text`. */
int cluster_log_contains(const struct cluster *c, const char *text);

/* wrk in the background against the cluster. */
struct wrk_run {
    pid_t pid;
    char out_path[320];
    long requests;
    long errors;        /* connect + read + write + timeout */
    long non_2xx;
};

/* Starts wrk for `seconds` with `connections`; `path` and optional extra
 * wrk arguments (e.g. "-H 'Connection: close'" or "-s FILE"). */
void wrk_start(struct wrk_run *run, const struct cluster *c, const char *path, int connections,
               int seconds, const char *extra);

/* Waits for wrk and parses its summary into run. */
void wrk_finish(struct wrk_run *run);

/* Waits `ms` milliseconds while the load runs (the test's own pacing). */
void cluster_pause_ms(int ms);

/* Load on the session and login endpoints of `c` for `seconds`: a
 * registered user, a token for GET /v1/session (16 connections), a wrk
 * script for POST /v1/login (4), with or without keep-alive. */
struct cluster_load {
    struct wrk_run session, login;
    char script[400];
};

void cluster_load_start(struct cluster_load *l, const struct cluster *c, int seconds, int keep_alive);
void cluster_load_finish(struct cluster_load *l);

/* Fails the test unless both loads saw no error and no non-2xx answer. */
void cluster_load_assert_no_failures(const struct cluster_load *l);

/* The sum of every sample of metric `name` (all its label sets), or -1. */
double cluster_metric_sum(const struct cluster *c, const char *name);

/* The supervisor's hash gate id, from worker `pid`'s environment; -1 if none. */
int cluster_worker_gate(int pid);

#endif
