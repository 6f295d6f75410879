/* proto/config.h - the one table of configuration keys (SPEC.md section 3).
 *
 * The table drives parsing, validation, defaults, the example file, the
 * help text and the key list of verona.conf(5). The supervisor parses the file; a supervised worker receives
 * the same key = value text over its control socket and parses it with the
 * same code, so no key is ever parsed in two places.
 */
#ifndef VERONA_PROTO_CONFIG_H
#define VERONA_PROTO_CONFIG_H

#include <limits.h>
#include <stddef.h>
#include <stdio.h>

#define CONFIG_ERROR_MAX 512
#define CONFIG_CIDR_MAX 32

/* "N/S": at most `count` failures in `seconds`. */
struct config_rate {
    int count;
    int seconds;
};

/* One network: family AF_INET or AF_INET6, address bytes, prefix length. */
struct config_cidr {
    int family;
    unsigned char addr[16];
    int prefix;
};

#define CONFIG_KEYS_MAX 40

/* The listen backlog of the shared socket (SPEC 10.8). */
#define CONFIG_LISTEN_BACKLOG 4096

struct config {
    char listen[128];
    char database_url[1024];
    int workers;
    char worker_binary[PATH_MAX];
    char admin_socket[PATH_MAX];
    char metrics_listen[128];
    char user[64];               /* empty: stay as started */
    int health_interval_ms;
    int health_timeout_ms;
    int memory_soft_limit_mb;
    int memory_hard_limit_mb;
    int drain_timeout_ms;
    int ready_timeout_ms;
    int probation_ms;
    int argon2_opslimit;
    int argon2_memlimit_kib;
    int hash_threads;
    int hash_queue_max;
    int db_pool_size;
    int session_ttl_s;
    int session_idle_s;
    int password_min_length;
    struct config_rate throttle_account_address;
    struct config_rate throttle_address;
    struct config_rate throttle_account;
    char trusted_proxies[2048];  /* 32 networks of any length */
    int audit_retention_days;
    char registration[16];
    int db_failover_wait_ms;
    int max_connections;

    /* Where each key was last set, for messages about a key once its
     * file is read: the file, and the line (0: not set there). */
    char origin[PATH_MAX];
    int key_line[CONFIG_KEYS_MAX];

    /* Derived by config_finish(), not keys. */
    int trusted_proxy_count;
    struct config_cidr trusted_proxy[CONFIG_CIDR_MAX];
    int registration_open;
};

/* Fills `cfg` with the built-in defaults (workers from the CPU count). */
void config_defaults(struct config *cfg);

/* A whole decimal number in [min, max] into *out: 0, or -1 (nothing
 * else in `text`, no overflow). */
int config_parse_long(const char *text, long min, long max, long *out);

/* Parses an INI file over the current values of `cfg`. Relative paths
 * resolve against the file's folder. Returns 0, or -1 with "FILE:LINE:
 * message" in `err`. */
int config_load_file(struct config *cfg, const char *path, char *err, size_t errsize);

/* Parses "key = value" lines (the control socket's settings message).
 * `origin` names the text in errors. Same contract as config_load_file. */
int config_load_string(struct config *cfg, const char *text, const char *origin,
                       char *err, size_t errsize);

/* Applies VERONA_DATABASE_URL / DATABASE_URL, resolves the automatic
 * values and checks the keys against each other. Returns 0 or -1 + err. */
int config_finish(struct config *cfg, char *err, size_t errsize);

/* "FILE:LINE: " where the later of keys `a` and `b` (b may be NULL) was
 * set in the file read, or "" when neither was; in `buf`, returned. */
const char *config_where(const struct config *cfg, const char *a, const char *b, char *buf, size_t size);

/* The CPUs online (at least 1): the default of `workers` and `hash_threads`
 * and the slots of the supervisor's hash gate. */
int config_cpus(void);

/* Sets one key from its text form; returns 0 or -1 with a message. */
int config_set(struct config *cfg, const char *key, const char *value, char *err,
               size_t errsize);

/* Renders every key as "key = value\n" (the settings message). Returns a
 * malloc'd string the caller frees, or NULL when out of memory. */
char *config_render(const struct config *cfg);

/* Writes the documented example file (every key, its default, its help). */
void config_write_example(FILE *out);

/* Writes every key as a roff .TP entry (name, form, help, default, bounds
 * or choices) for the key list of verona.conf(5) (docs/man/mkconf.c). */
void config_write_man(FILE *out);

/* Fills a sockaddr_in or sockaddr_in6 from "host:port" / "[v6]:port".
 * Returns 0 or -1. (`out` is a struct sockaddr_storage.) */
int config_address_parse(const char *text, void *out);

/* Parses "a.b.c.d/n" or "v6/n" (a bare address is a host route). */
int config_cidr_parse(const char *text, struct config_cidr *out);

/* 1 when the address bytes (4 or 16 of them, per family) are inside. */
int config_cidr_contains(const struct config_cidr *net, int family, const unsigned char *addr);

#endif
