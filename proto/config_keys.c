/* proto/config_keys.c - the one table of configuration keys: name, type,
 * bounds, default and help. It drives parsing and validation
 * (proto/config.c), rendering (proto/config_render.c), the example file
 * and the man page's key list (proto/config_doc.c). New keys go here and
 * nowhere else.
 */
#include "config_keys.h"

#include <string.h>

#define TEXT(f) offsetof(struct config, f), sizeof(((struct config *)0)->f)
#define NUM(f) offsetof(struct config, f), 0

const struct config_key config_keys[] = {
    { "listen", CONFIG_ADDRESS, TEXT(listen), 0, 0, "127.0.0.1:8080", NULL,
      "address the login API listens on (host:port, [v6]:port)" },
    { "database_url", CONFIG_STRING, TEXT(database_url), 0, 0, "postgresql:///verona", NULL,
      "libpq connection URL, one host or several (postgresql://db1:5432,db2:5432/verona: the workers find the primary); VERONA_DATABASE_URL or DATABASE_URL override it (make run sets it)" },
    { "workers", CONFIG_INT, NUM(workers), 0, 128, "0", NULL,
      "number of login workers, 1-128 (0 = one per CPU)" },
    { "worker_binary", CONFIG_PATH, TEXT(worker_binary), 0, 0, "", NULL,
      "worker program (empty = verona-worker beside verona)" },
    { "admin_socket", CONFIG_PATH, TEXT(admin_socket), 0, 0, "./var/verona.sock", NULL,
      "Unix socket of verona ctl (mode 0600)" },
    { "metrics_listen", CONFIG_ADDRESS, TEXT(metrics_listen), 0, 0, "127.0.0.1:9180", NULL,
      "address of the Prometheus /metrics endpoint" },
    { "user", CONFIG_STRING, TEXT(user), 0, 0, "", NULL,
      "run as this user once the sockets are bound, when verona serve starts as root: the supervisor and every worker (empty = stay as started)" },
    { "health_interval_ms", CONFIG_INT, NUM(health_interval_ms), 10, 60000, "500", NULL,
      "how often the supervisor pings each worker" },
    { "health_timeout_ms", CONFIG_INT, NUM(health_timeout_ms), 50, 600000, "2000", NULL,
      "a worker silent this long is killed and replaced" },
    { "memory_soft_limit_mb", CONFIG_INT, NUM(memory_soft_limit_mb), 8, 1048576, "256", NULL,
      "RSS above which a worker is replaced gracefully" },
    { "memory_hard_limit_mb", CONFIG_INT, NUM(memory_hard_limit_mb), 8, 1048576, "512", NULL,
      "RSS above which a worker is killed at once" },
    { "drain_timeout_ms", CONFIG_INT, NUM(drain_timeout_ms), 10, 3600000, "10000", NULL,
      "a draining worker is killed after this long" },
    { "ready_timeout_ms", CONFIG_INT, NUM(ready_timeout_ms), 10, 3600000, "10000", NULL,
      "a new worker must report ready within this" },
    { "probation_ms", CONFIG_INT, NUM(probation_ms), 0, 3600000, "10000", NULL,
      "how long a new build is watched during a rollout" },
    { "argon2_opslimit", CONFIG_INT, NUM(argon2_opslimit), 1, 32, "2", NULL,
      "Argon2id passes (crypto_pwhash opslimit)" },
    { "argon2_memlimit_kib", CONFIG_INT, NUM(argon2_memlimit_kib), 8, 4194304, "19456", NULL,
      "Argon2id memory cost in KiB" },
    { "hash_threads", CONFIG_INT, NUM(hash_threads), 0, 128, "0", NULL,
      "Argon2 threads per worker (0 = 2 x CPUs, fewer if half of memory_soft_limit_mb cannot hold a hash a thread); all workers together run one hash a CPU at most" },
    { "hash_queue_max", CONFIG_INT, NUM(hash_queue_max), 1, 100000, "64", NULL,
      "hashes queued per worker before answering 503" },
    { "db_pool_size", CONFIG_INT, NUM(db_pool_size), 1, 64, "4", NULL,
      "PostgreSQL connections per worker" },
    { "session_ttl_s", CONFIG_INT, NUM(session_ttl_s), 60, 31536000, "43200", NULL,
      "absolute session lifetime in seconds" },
    /* At least 120: last use is written at most once a minute, so a shorter
     * idle limit could end a session in use. */
    { "session_idle_s", CONFIG_INT, NUM(session_idle_s), 120, 31536000, "1800", NULL,
      "a session unused this long expires" },
    { "password_min_length", CONFIG_INT, NUM(password_min_length), 8, 64, "12", NULL,
      "shortest accepted password, in characters" },
    { "throttle_account_address", CONFIG_RATE, NUM(throttle_account_address), 1, 31536000, "5/900", NULL,
      "failures per username and client address / seconds" },
    { "throttle_address", CONFIG_RATE, NUM(throttle_address), 1, 31536000, "50/900", NULL,
      "failures per client address / seconds" },
    { "throttle_account", CONFIG_RATE, NUM(throttle_account), 1, 31536000, "100/86400", NULL,
      "failures per username from unknown addresses / seconds" },
    { "trusted_proxies", CONFIG_CIDRS, TEXT(trusted_proxies), 0, 0, "", NULL,
      "CIDRs whose X-Forwarded-For is believed (comma separated; repeat the key for more)" },
    { "audit_retention_days", CONFIG_INT, NUM(audit_retention_days), 1, 36500, "90", NULL,
      "login audit rows older than this are deleted" },
    { "registration", CONFIG_CHOICE, TEXT(registration), 0, 0, "open", "open closed",
      "open, or closed (POST /v1/users answers 403)" },
    { "max_connections", CONFIG_INT, NUM(max_connections), 1, 1048576, "16384", NULL,
      "client connections per worker; at the cap a worker takes no more until one closes (the others and the backlog take them); the open-files limit is raised to fit" },
    { "db_failover_wait_ms", CONFIG_INT, NUM(db_failover_wait_ms), 0, 60000, "5000", NULL,
      "a request that needs PostgreSQL waits this long for a primary (a failover) before 503; readyz turns 503 only after it" },
};

#define CONFIG_KEY_COUNT (sizeof(config_keys) / sizeof(config_keys[0]))
const size_t config_key_count = CONFIG_KEY_COUNT;
_Static_assert(CONFIG_KEY_COUNT <= CONFIG_KEYS_MAX, "struct config: key_line too short");


const struct config_key *config_key_find(const char *name)
{
    for (size_t i = 0; i < CONFIG_KEY_COUNT; i++)
        if (strcmp(config_keys[i].name, name) == 0)
            return &config_keys[i];
    return NULL;
}

