/* proto/config.c - the table of configuration keys and everything it drives:
 * defaults, parsing (INI through inih), validation, rendering for the
 * control socket, the example file and the key list of verona.conf(5).
 */
#include "config.h"

#include <libpq-fe.h>

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

enum config_type {
    CONFIG_INT = 0,  /* decimal integer within [min, max] */
    CONFIG_STRING,   /* free text, bounded by the field's size */
    CONFIG_PATH,     /* text; relative paths resolve against the file's folder */
    CONFIG_ADDRESS,  /* host:port, [v6]:port */
    CONFIG_RATE,     /* count/seconds */
    CONFIG_CIDRS,    /* comma or space separated CIDR list */
    CONFIG_CHOICE,   /* one word of `choices` */
};

struct config_key {
    const char *name;
    enum config_type type;
    size_t offset;
    size_t size;        /* for text fields */
    long min, max;      /* for CONFIG_INT and CONFIG_RATE parts */
    const char *def;    /* default in text form; "" = empty/automatic */
    const char *choices;
    const char *help;
};

/* The COUNT of a CONFIG_RATE ("COUNT/SECONDS"); its SECONDS are bounded by
 * the key's min and max. */
#define CONFIG_RATE_COUNT_MIN 1
#define CONFIG_RATE_COUNT_MAX 1000000

#define TEXT(f) offsetof(struct config, f), sizeof(((struct config *)0)->f)
#define NUM(f) offsetof(struct config, f), 0

static const struct config_key config_keys[] = {
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
_Static_assert(CONFIG_KEY_COUNT <= CONFIG_KEYS_MAX, "struct config: key_line too short");

static void config_error(char *err, size_t errsize, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL || errsize == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errsize, fmt, ap);
    va_end(ap);
}

static const struct config_key *config_key_find(const char *name)
{
    for (size_t i = 0; i < CONFIG_KEY_COUNT; i++)
        if (strcmp(config_keys[i].name, name) == 0)
            return &config_keys[i];
    return NULL;
}

int config_parse_long(const char *text, long min, long max, long *out)
{
    char *end;
    long v;

    if (*text == '\0')
        return -1;
    errno = 0;
    v = strtol(text, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

/* Splits host:port or [v6]:port; the host must be a numeric address. */
int config_address_parse(const char *text, void *out)
{
    struct sockaddr_storage *ss = out;
    char host[64];
    const char *colon;
    size_t hostlen;
    long port;
    int bracketed = text[0] == '[';

    memset(ss, 0, sizeof(*ss));
    if (bracketed) {
        const char *close = strchr(text, ']');
        if (close == NULL || close[1] != ':')
            return -1;
        hostlen = (size_t)(close - text - 1);
        colon = close + 1;
        text++;
    } else {
        colon = strrchr(text, ':');
        if (colon == NULL)
            return -1;
        hostlen = (size_t)(colon - text);
    }
    if (hostlen == 0 || hostlen >= sizeof(host) || config_parse_long(colon + 1, 1, 65535, &port) != 0)
        return -1;
    memcpy(host, text, hostlen);
    host[hostlen] = '\0';
    if (!bracketed && inet_pton(AF_INET, host, &((struct sockaddr_in *)ss)->sin_addr) == 1) {
        ((struct sockaddr_in *)ss)->sin_family = AF_INET;
        ((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
        return 0;
    }
    if (bracketed && inet_pton(AF_INET6, host, &((struct sockaddr_in6 *)ss)->sin6_addr) == 1) {
        ((struct sockaddr_in6 *)ss)->sin6_family = AF_INET6;
        ((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
        return 0;
    }
    return -1;
}

static int config_address_valid(const char *text)
{
    struct sockaddr_storage ss;

    return config_address_parse(text, &ss) == 0;
}

int config_cidr_parse(const char *text, struct config_cidr *out)
{
    char buf[80];
    char *slash;
    long prefix;
    int maxprefix;

    if (strlen(text) >= sizeof(buf))
        return -1;
    strcpy(buf, text);
    slash = strchr(buf, '/');
    if (slash != NULL)
        *slash = '\0';
    memset(out, 0, sizeof(*out));
    if (inet_pton(AF_INET, buf, out->addr) == 1) {
        out->family = AF_INET;
        maxprefix = 32;
    } else if (inet_pton(AF_INET6, buf, out->addr) == 1) {
        out->family = AF_INET6;
        maxprefix = 128;
    } else {
        return -1;
    }
    prefix = maxprefix;
    if (slash != NULL && config_parse_long(slash + 1, 0, maxprefix, &prefix) != 0)
        return -1;
    out->prefix = (int)prefix;
    return 0;
}

int config_cidr_contains(const struct config_cidr *net, int family, const unsigned char *addr)
{
    int full, rest;

    if (net->family != family)
        return 0;
    full = net->prefix / 8;
    rest = net->prefix % 8;
    if (memcmp(net->addr, addr, (size_t)full) != 0)
        return 0;
    if (rest != 0) {
        unsigned char mask = (unsigned char)(0xff << (8 - rest));
        if ((net->addr[full] & mask) != (addr[full] & mask))
            return 0;
    }
    return 1;
}

/* Splits a CIDR list on commas and blanks; fills cfg->trusted_proxy. */
static int config_cidrs_parse(struct config *cfg, const char *text, char *err, size_t errsize)
{
    char buf[sizeof(cfg->trusted_proxies)];
    char *save = NULL;
    int n = 0;

    if (strlen(text) >= sizeof(buf)) {
        config_error(err, errsize, "list too long");
        return -1;
    }
    strcpy(buf, text);
    for (char *tok = strtok_r(buf, ", \t", &save); tok != NULL; tok = strtok_r(NULL, ", \t", &save)) {
        if (n == CONFIG_CIDR_MAX) {
            config_error(err, errsize, "more than %d networks", CONFIG_CIDR_MAX);
            return -1;
        }
        if (config_cidr_parse(tok, &cfg->trusted_proxy[n]) != 0) {
            config_error(err, errsize, "'%s' is not an address or CIDR", tok);
            return -1;
        }
        n++;
    }
    cfg->trusted_proxy_count = n;
    return 0;
}

static int config_choice_valid(const char *choices, const char *value)
{
    size_t len = strlen(value);

    for (const char *p = choices; *p != '\0';) {
        size_t wlen = strcspn(p, " ");
        if (wlen == len && strncmp(p, value, len) == 0)
            return 1;
        p += wlen;
        while (*p == ' ')
            p++;
    }
    return 0;
}

static int config_set_key(struct config *cfg, const struct config_key *key, const char *value,
                          const char *base_dir, char *err, size_t errsize)
{
    char *field = (char *)cfg + key->offset;
    long v;

    switch (key->type) {
    case CONFIG_INT:
        if (config_parse_long(value, key->min, key->max, &v) != 0) {
            config_error(err, errsize, "%s: '%s' is not an integer in %ld..%ld", key->name, value,
                         key->min, key->max);
            return -1;
        }
        *(int *)field = (int)v;
        return 0;
    case CONFIG_RATE: {
        struct config_rate *rate = (struct config_rate *)field;
        char buf[32];
        char *slash;
        long count, seconds;

        if (strlen(value) >= sizeof(buf) || (slash = strchr(strcpy(buf, value), '/')) == NULL) {
            config_error(err, errsize, "%s: '%s' is not COUNT/SECONDS", key->name, value);
            return -1;
        }
        *slash = '\0';
        if (config_parse_long(buf, CONFIG_RATE_COUNT_MIN, CONFIG_RATE_COUNT_MAX, &count) != 0 ||
            config_parse_long(slash + 1, key->min, key->max, &seconds) != 0) {
            config_error(err, errsize, "%s: '%s' is not COUNT/SECONDS (%d..%d / %ld..%ld)",
                         key->name, value, CONFIG_RATE_COUNT_MIN, CONFIG_RATE_COUNT_MAX, key->min, key->max);
            return -1;
        }
        rate->count = (int)count;
        rate->seconds = (int)seconds;
        return 0;
    }
    case CONFIG_ADDRESS:
        if (!config_address_valid(value)) {
            config_error(err, errsize, "%s: '%s' is not HOST:PORT with a numeric host", key->name,
                         value);
            return -1;
        }
        break;
    case CONFIG_CIDRS:
        if (config_cidrs_parse(cfg, value, err, errsize) != 0) {
            char inner[CONFIG_ERROR_MAX];
            snprintf(inner, sizeof(inner), "%s", err);
            config_error(err, errsize, "%s: %s", key->name, inner);
            return -1;
        }
        break;
    case CONFIG_CHOICE:
        if (!config_choice_valid(key->choices, value)) {
            config_error(err, errsize, "%s: '%s' is not one of: %s", key->name, value, key->choices);
            return -1;
        }
        break;
    case CONFIG_STRING:
    case CONFIG_PATH:
        break;
    }

    if (key->type == CONFIG_PATH && value[0] != '\0' && value[0] != '/' && base_dir != NULL) {
        int n = snprintf(field, key->size, "%s/%s", base_dir, value);
        if (n < 0 || (size_t)n >= key->size) {
            config_error(err, errsize, "%s: path too long", key->name);
            return -1;
        }
        return 0;
    }
    if (strlen(value) >= key->size) {
        config_error(err, errsize, "%s: value longer than %zu bytes", key->name, key->size - 1);
        return -1;
    }
    strcpy(field, value);
    return 0;
}

int config_set(struct config *cfg, const char *name, const char *value, char *err, size_t errsize)
{
    const struct config_key *key = config_key_find(name);

    if (key == NULL) {
        config_error(err, errsize, "unknown key '%s'", name);
        return -1;
    }
    return config_set_key(cfg, key, value, NULL, err, errsize);
}

void config_defaults(struct config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    for (size_t i = 0; i < CONFIG_KEY_COUNT; i++)
        if (config_set_key(cfg, &config_keys[i], config_keys[i].def, NULL, NULL, 0) != 0)
            abort(); /* a default that fails its own validation is a bug */
}

struct config_parse_state {
    struct config *cfg;
    const char *base_dir;
    char *err;
    size_t errsize;
    unsigned char seen[CONFIG_KEY_COUNT];
};

/* A second trusted_proxies line adds its networks to the first: a list
 * longer than a line holds (like nginx's repeated set_real_ip_from). */
static int config_append_cidrs(struct config_parse_state *st, const struct config_key *key, const char *value)
{
    const char *field = (const char *)st->cfg + key->offset;
    char joined[sizeof(st->cfg->trusted_proxies) + 1];
    int n = snprintf(joined, sizeof(joined), "%s%s%s", field, field[0] != '\0' ? ", " : "", value);

    if (n < 0 || (size_t)n >= sizeof(joined) - 1) {
        config_error(st->err, st->errsize, "%s: list longer than %zu bytes", key->name, key->size - 1);
        return 0;
    }
    return config_set_key(st->cfg, key, joined, st->base_dir, st->err, st->errsize) == 0;
}

static int config_on_ini_line(void *user, const char *section, const char *name, const char *value)
{
    struct config_parse_state *st = user;
    const struct config_key *key;

    /* inih goes on after an error and reports the first bad line: keep the
     * first message too, so the two match. */
    if (st->err[0] != '\0')
        return 0;

    if (section[0] != '\0' && strcmp(section, "verona") != 0) {
        config_error(st->err, st->errsize, "unknown section [%s] (keys go at the top or in [verona])",
                     section);
        return 0;
    }
    key = config_key_find(name);
    if (key == NULL) {
        config_error(st->err, st->errsize, "unknown key '%s'", name);
        return 0;
    }
    if (value == NULL) {
        config_error(st->err, st->errsize, "%s: missing '= value'", name);
        return 0;
    }
    /* Set twice, the last one wins (as in postgresql.conf), except that
     * each trusted_proxies line adds its networks. */
    if (st->seen[key - config_keys] && key->type == CONFIG_CIDRS)
        return config_append_cidrs(st, key, value);
    st->seen[key - config_keys] = 1;
    return config_set_key(st->cfg, key, value, st->base_dir, st->err, st->errsize) == 0;
}

static int config_parse_result(int rc, const char *origin, char *msg, char *err, size_t errsize)
{
    if (rc == 0)
        return 0;
    if (rc == -1)
        config_error(err, errsize, "%s: cannot open: %s", origin, strerror(errno));
    else if (rc == -2)
        config_error(err, errsize, "%s: out of memory", origin);
    else if (msg[0] != '\0')
        config_error(err, errsize, "%s:%d: %s", origin, rc, msg);
    else
        config_error(err, errsize, "%s:%d: syntax error (expected key = value)", origin, rc);
    return -1;
}

/*
 * inih reads each line into a buffer of INI_MAX_LINE bytes (Debian builds
 * it without growing the buffer) and would read the rest of a longer line
 * as a line of its own: such a line is refused here, by its number.
 */
#define CONFIG_LINE_MAX (INI_MAX_LINE - 2) /* bytes before the newline */
#define CONFIG_FILE_MAX (1024 * 1024)

static int config_check_lines(const char *text, const char *origin, char *err, size_t errsize)
{
    const char *p = text;

    for (int line = 1;; line++) {
        const char *end = strchr(p, '\n');
        size_t len = end != NULL ? (size_t)(end - p) : strlen(p);

        if (len > CONFIG_LINE_MAX) {
            size_t name = strcspn(p, " \t=:");

            config_error(err, errsize, "%s:%d: %.*s: the line is %zu bytes long; a config line holds at most %d",
                         origin, line, (int)(name < 64 ? name : 64), p, len, CONFIG_LINE_MAX);
            return -1;
        }
        if (end == NULL)
            return 0;
        p = end + 1;
    }
}

/* The whole file, NUL-terminated (malloc'd), or NULL with the reason. */
static char *config_read_file(const char *path, char *err, size_t errsize)
{
    FILE *f = fopen(path, "r");
    struct stat st;
    char *text = NULL;
    size_t n;

    if (f == NULL) {
        config_error(err, errsize, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode))
        config_error(err, errsize, "%s: not a regular file", path);
    else if (st.st_size > CONFIG_FILE_MAX)
        config_error(err, errsize, "%s: larger than %d bytes", path, CONFIG_FILE_MAX);
    else if ((text = malloc((size_t)st.st_size + 1)) == NULL)
        config_error(err, errsize, "%s: out of memory", path);
    else if ((n = fread(text, 1, (size_t)st.st_size, f)) != (size_t)st.st_size || ferror(f)) {
        config_error(err, errsize, "%s: cannot read", path);
        free(text);
        text = NULL;
    } else {
        text[n] = '\0';
    }
    fclose(f);
    return text;
}

/* Notes the line each key is set on (the last, for a repeated key), for
 * the messages of config_finish() about keys together. */
static void config_note_lines(struct config *cfg, const char *text, const char *origin)
{
    const char *p = text;

    snprintf(cfg->origin, sizeof(cfg->origin), "%s", origin);
    for (int line = 1; *p != '\0'; line++) {
        const char *end = strchr(p, '\n');
        size_t start = strspn(p, " \t"), n = strspn(p + start, "abcdefghijklmnopqrstuvwxyz_0123456789");

        for (size_t i = 0; i < CONFIG_KEY_COUNT && n > 0; i++)
            if (strlen(config_keys[i].name) == n && strncmp(p + start, config_keys[i].name, n) == 0)
                cfg->key_line[i] = line;
        if (end == NULL)
            break;
        p = end + 1;
    }
}

const char *config_where(const struct config *cfg, const char *a, const char *b, char *buf, size_t size)
{
    const struct config_key *ka = config_key_find(a), *kb = b != NULL ? config_key_find(b) : NULL;
    int la = ka != NULL ? cfg->key_line[ka - config_keys] : 0;
    int lb = kb != NULL ? cfg->key_line[kb - config_keys] : 0;
    int line = la > lb ? la : lb;

    if (line > 0)
        snprintf(buf, size, "%s:%d: ", cfg->origin, line);
    else if (size > 0)
        buf[0] = '\0';
    return buf;
}

int config_load_file(struct config *cfg, const char *path, char *err, size_t errsize)
{
    char base_dir[PATH_MAX];
    char msg[CONFIG_ERROR_MAX] = "";
    struct config_parse_state st = { cfg, base_dir, msg, sizeof(msg), { 0 } };
    const char *slash = strrchr(path, '/');
    char *text;
    int rc;

    if (slash == NULL) {
        if (getcwd(base_dir, sizeof(base_dir)) == NULL)
            strcpy(base_dir, ".");
    } else {
        int len = slash == path ? 1 : (int)(slash - path); /* "/x.conf" lives in "/" */
        snprintf(base_dir, sizeof(base_dir), "%.*s", len, path);
    }
    text = config_read_file(path, err, errsize);
    if (text == NULL)
        return -1;
    if (config_check_lines(text, path, err, errsize) != 0) {
        free(text);
        return -1;
    }
    rc = ini_parse_string(text, config_on_ini_line, &st);
    if (rc == 0)
        config_note_lines(cfg, text, path);
    free(text);
    return config_parse_result(rc, path, msg, err, errsize);
}

int config_load_string(struct config *cfg, const char *text, const char *origin, char *err,
                       size_t errsize)
{
    char msg[CONFIG_ERROR_MAX] = "";
    struct config_parse_state st = { cfg, NULL, msg, sizeof(msg), { 0 } };

    int rc;

    if (config_check_lines(text, origin, err, errsize) != 0)
        return -1;
    rc = ini_parse_string(text, config_on_ini_line, &st);
    if (rc == 0)
        config_note_lines(cfg, text, origin);
    return config_parse_result(rc, origin, msg, err, errsize);
}

int config_cpus(void)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);

    return cpus < 1 ? 1 : cpus > 4096 ? 4096 : (int)cpus;
}

static void config_render_value(const struct config *cfg, const struct config_key *key, char *buf,
                                size_t size);

/*
 * Whether "name = value" reads back as the same value: inih strips the
 * spaces around a value, cuts it at ';' after a space (an inline comment:
 * the " = " before the value counts) and reads a line at a time. A file
 * cannot produce such a value, but the environment's URL and config_set()
 * can, and the workers get their settings rendered.
 */
static bool config_value_renders(const char *value)
{
    size_t len = strlen(value);

    if (len == 0)
        return true;
    if (isspace((unsigned char)value[0]) || isspace((unsigned char)value[len - 1]) || value[0] == ';')
        return false;
    for (size_t i = 0; i < len; i++) {
        if (value[i] == '\n' || value[i] == '\r')
            return false;
        if (value[i] == ';' && i > 0 && isspace((unsigned char)value[i - 1]))
            return false;
    }
    return true;
}

int config_finish(struct config *cfg, char *err, size_t errsize)
{
    const char *url = getenv("VERONA_DATABASE_URL");
    int cpus = config_cpus();
    char where[PATH_MAX + 16];

    if (url == NULL || url[0] == '\0')
        url = getenv("DATABASE_URL");
    if (url != NULL && url[0] != '\0') {
        if (strlen(url) >= sizeof(cfg->database_url)) {
            config_error(err, errsize, "VERONA_DATABASE_URL: longer than %zu bytes",
                         sizeof(cfg->database_url) - 1);
            return -1;
        }
        strcpy(cfg->database_url, url);
    }
    if (cfg->workers == 0)
        cfg->workers = cpus > 128 ? 128 : cpus;
    if (cfg->hash_threads == 0) {
        /*
         * Two threads a CPU. The supervisor's hash gate lets one hash a CPU
         * run, over all workers, and the threads beyond that wait in the
         * gate's queue, first come first served across workers (a job left
         * in a worker's own queue would lose its turn). A client's logins
         * stay on the worker holding its connection, so one worker may need
         * every CPU. Fewer threads if half the soft limit cannot hold a
         * running hash (argon2_memlimit_kib) a thread: without the gate (a
         * worker on its own) every thread may hash at once.
         */
        long budget = (long)cfg->memory_soft_limit_mb * 1024 / 2 / cfg->argon2_memlimit_kib;

        cfg->hash_threads = cpus > 64 ? 128 : 2 * cpus;
        if (budget < cfg->hash_threads) /* ungated, every thread may hash at once */
            cfg->hash_threads = budget < 1 ? 1 : (int)budget;
    }
    if (cfg->memory_hard_limit_mb < cfg->memory_soft_limit_mb) {
        config_error(err, errsize, "%smemory_hard_limit_mb (%d) is below memory_soft_limit_mb (%d)",
                     config_where(cfg, "memory_hard_limit_mb", "memory_soft_limit_mb", where, sizeof(where)),
                     cfg->memory_hard_limit_mb, cfg->memory_soft_limit_mb);
        return -1;
    }
    if (cfg->metrics_listen[0] != '\0' && strcmp(cfg->metrics_listen, cfg->listen) == 0) {
        config_error(err, errsize, "%smetrics_listen (%s) is the address of listen: give /metrics its own port",
                     config_where(cfg, "metrics_listen", "listen", where, sizeof(where)), cfg->metrics_listen);
        return -1;
    }
    if (cfg->health_timeout_ms < cfg->health_interval_ms) {
        config_error(err, errsize, "%shealth_timeout_ms (%d) is below health_interval_ms (%d)",
                     config_where(cfg, "health_timeout_ms", "health_interval_ms", where, sizeof(where)),
                     cfg->health_timeout_ms, cfg->health_interval_ms);
        return -1;
    }
    if (cfg->database_url[0] == '\0') {
        config_error(err, errsize, "%sdatabase_url is not set (set it in the file, or VERONA_DATABASE_URL)",
                     config_where(cfg, "database_url", NULL, where, sizeof(where)));
        return -1;
    }
    {
        /* libpq's own parser, so that a worker never meets a URL it cannot
         * read; its message may quote the URL, password and all: not shown. */
        char *perr = NULL;
        PQconninfoOption *opts = PQconninfoParse(cfg->database_url, &perr);

        PQfreemem(perr);
        if (opts == NULL) {
            config_error(err, errsize, "%sdatabase_url cannot be parsed (libpq's syntax: "
                         "postgresql://[user@]host[:port][,host2[:port2]...]/dbname[?param=value]; "
                         "the value is not repeated here, it may hold a password)",
                         config_where(cfg, "database_url", NULL, where, sizeof(where)));
            return -1;
        }
        PQconninfoFree(opts);
    }
    /* The supervisor hands its workers the settings as config lines. */
    for (size_t i = 0; i < CONFIG_KEY_COUNT; i++) {
        char value[PATH_MAX + 64];
        size_t len;

        if (config_keys[i].type == CONFIG_CIDRS)
            continue; /* rendered over as many lines as it takes */
        config_render_value(cfg, &config_keys[i], value, sizeof(value));
        if (!config_value_renders(value)) {
            config_error(err, errsize,
                         "%s: a value cannot begin or end with a space, begin with ';', hold ';' after a "
                         "space or tab, or hold a line break: the config syntax would cut it there",
                         config_keys[i].name);
            return -1;
        }
        len = strlen(config_keys[i].name) + strlen(" = ") + strlen(value);
        if (len > CONFIG_LINE_MAX) {
            config_error(err, errsize,
                         "%s: %zu bytes long; with its name a setting holds at most %d%s", config_keys[i].name,
                         strlen(value), CONFIG_LINE_MAX,
                         strcmp(config_keys[i].name, "database_url") == 0
                             ? " (for a long connection string use a libpq service file: service=NAME)"
                             : "");
            return -1;
        }
    }
    cfg->registration_open = strcmp(cfg->registration, "open") == 0;
    return 0;
}

static void config_render_value(const struct config *cfg, const struct config_key *key, char *buf,
                                size_t size)
{
    const char *field = (const char *)cfg + key->offset;

    switch (key->type) {
    case CONFIG_INT:
        snprintf(buf, size, "%d", *(const int *)field);
        break;
    case CONFIG_RATE: {
        const struct config_rate *rate = (const struct config_rate *)field;
        snprintf(buf, size, "%d/%d", rate->count, rate->seconds);
        break;
    }
    default:
        snprintf(buf, size, "%s", field);
        break;
    }
}

/* Appends "name = value\n" to out (*len bytes of *cap); 0, or -1 with
 * *out freed when memory runs out. */
static int config_render_line(char **out, size_t *len, size_t *cap, const char *name, const char *value)
{
    int n = snprintf(NULL, 0, "%s = %s\n", name, value);

    if (*len + (size_t)n + 1 > *cap) {
        size_t want = (*len + (size_t)n + 1) * 2;
        char *bigger = realloc(*out, want);

        if (bigger == NULL) {
            free(*out);
            *out = NULL;
            return -1;
        }
        *out = bigger;
        *cap = want;
    }
    snprintf(*out + *len, *cap - *len, "%s = %s\n", name, value);
    *len += (size_t)n;
    return 0;
}

/* A network list as lines that each fit CONFIG_LINE_MAX (read back, the
 * repeated key appends). */
static int config_render_cidrs(char **out, size_t *len, size_t *cap, const struct config_key *key,
                               const char *field)
{
    char list[sizeof(((struct config *)0)->trusted_proxies)], line[CONFIG_LINE_MAX + 1] = "";
    size_t room = CONFIG_LINE_MAX - strlen(key->name) - strlen(" = ");
    char *save = NULL;

    snprintf(list, sizeof(list), "%s", field);
    for (char *tok = strtok_r(list, ", \t", &save); tok != NULL; tok = strtok_r(NULL, ", \t", &save)) {
        if (line[0] != '\0' && strlen(line) + 2 + strlen(tok) > room) {
            if (config_render_line(out, len, cap, key->name, line) != 0)
                return -1;
            line[0] = '\0';
        }
        snprintf(line + strlen(line), sizeof(line) - strlen(line), "%s%s", line[0] != '\0' ? ", " : "", tok);
    }
    return config_render_line(out, len, cap, key->name, line);
}

char *config_render(const struct config *cfg)
{
    size_t cap = 8192, len = 0;
    char *out = malloc(cap);
    char value[PATH_MAX + 64];

    if (out == NULL)
        return NULL;
    for (size_t i = 0; i < CONFIG_KEY_COUNT; i++) {
        int rc;

        if (config_keys[i].type == CONFIG_CIDRS) {
            rc = config_render_cidrs(&out, &len, &cap, &config_keys[i], (const char *)cfg + config_keys[i].offset);
        } else {
            config_render_value(cfg, &config_keys[i], value, sizeof(value));
            rc = config_render_line(&out, &len, &cap, config_keys[i].name, value);
        }
        if (rc != 0)
            return NULL;
    }
    out[len] = '\0';
    return out;
}

void config_write_example(FILE *out)
{
    fprintf(out, "# Verona configuration: every key with its default.\n"
                 "# Relative paths resolve against this file's folder.\n"
                 "# An unknown key or a bad value stops `verona serve` with FILE:LINE.\n\n");
    for (size_t i = 0; i < CONFIG_KEY_COUNT; i++)
        fprintf(out, "# %s\n# %s = %s\n\n", config_keys[i].help, config_keys[i].name,
                config_keys[i].def);
}

/* Writes the `len` bytes at `text` as roff text: a backslash as \e, a
 * hyphen as \- (what a reader types: verona-worker, X-Forwarded-For) or,
 * between two digits, an en dash (a range: 1-128), non-ASCII UTF-8 as
 * \[uXXXX] (a malformed byte as U+FFFD), and a line that would start with
 * a dot, an apostrophe or a blank (a request, or a break) guarded by \&. */
static void config_man_escape(FILE *out, const char *text, size_t len)
{
    const unsigned char *p = (const unsigned char *)text, *end = p + len;
    int line_start = 1;

    while (p < end) {
        unsigned char c = *p;

        if (line_start && (c == '.' || c == '\'' || c == ' ' || c == '\t'))
            fputs("\\&", out);
        line_start = c == '\n';
        if (c == '\\') {
            fputs("\\e", out);
        } else if (c == '-') {
            int range = p > (const unsigned char *)text && p + 1 < end && p[-1] >= '0' && p[-1] <= '9' &&
                        p[1] >= '0' && p[1] <= '9';
            fputs(range ? "\\(en" : "\\-", out);
        } else if (c >= 0x80) {
            int n = c >= 0xf0 && c <= 0xf4 ? 4 : c >= 0xe0 && c <= 0xef ? 3 : c >= 0xc2 && c <= 0xdf ? 2 : 1;
            unsigned long cp = n == 4 ? c & 0x07u : n == 3 ? c & 0x0fu : c & 0x1fu;

            for (int i = 1; i < n; i++) {
                if (p + i >= end || (p[i] & 0xc0) != 0x80) {
                    n = 1;
                    break;
                }
                cp = cp << 6 | (p[i] & 0x3fu);
            }
            if (n == 1 || (n == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
                (n == 4 && (cp < 0x10000 || cp > 0x10ffff))) {
                cp = 0xfffd;
                n = 1;
            }
            fprintf(out, "\\[u%04lX]", cp);
            p += n;
            continue;
        } else {
            fputc(c, out);
        }
        p++;
    }
}

/* A bound: a negative one with a minus sign, not a hyphen. */
static void config_man_number(FILE *out, long v)
{
    if (v < 0)
        fprintf(out, "\\-%lu", 0UL - (unsigned long)v);
    else
        fprintf(out, "%ld", v);
}

/* config_man_escape() of a whole string. */
static void config_man_text(FILE *out, const char *text)
{
    config_man_escape(out, text, strlen(text));
}

void config_write_man(FILE *out)
{
    /* The form of a value, for the tag (roff already). */
    static const char *const forms[] = {
        [CONFIG_INT] = "\\fIinteger\\fR",
        [CONFIG_STRING] = "\\fItext\\fR",
        [CONFIG_PATH] = "\\fIpath\\fR",
        [CONFIG_ADDRESS] = "\\fIhost\\fR:\\fIport\\fR",
        [CONFIG_RATE] = "\\fIcount\\fR/\\fIseconds\\fR",
        [CONFIG_CIDRS] = "\\fInetwork\\fR[, \\fInetwork\\fR ...]",
        [CONFIG_CHOICE] = "", /* its choices instead */
    };

    for (size_t i = 0; i < CONFIG_KEY_COUNT; i++) {
        const struct config_key *key = &config_keys[i];
        size_t help_len = strlen(key->help);

        /* The tag: name = form, or name = \fBopen\fR | \fBclosed\fR. */
        fputs(".TP\n\\fB", out);
        config_man_text(out, key->name);
        fprintf(out, "\\fR = %s", forms[key->type]);
        for (const char *p = key->type == CONFIG_CHOICE ? key->choices : ""; *p != '\0';) {
            size_t len = strcspn(p, " ");

            fputs(p == key->choices ? "\\fB" : " | \\fB", out);
            config_man_escape(out, p, len);
            fputs("\\fR", out);
            p += len;
            p += strspn(p, " ");
        }
        /* The help, a sentence; then the default and the bounds. */
        fputc('\n', out);
        if (help_len > 0) {
            config_man_text(out, key->help);
            fputs(key->help[help_len - 1] == '.' ? "\n.br\n" : ".\n.br\n", out);
        }
        fputs("Default: ", out);
        if (key->def[0] == '\0') {
            fputs("empty", out);
        } else {
            fputs("\\fB", out);
            config_man_text(out, key->def);
            fputs("\\fR", out);
        }
        fputc('.', out);
        if (key->type == CONFIG_INT || key->type == CONFIG_RATE) {
            if (key->type == CONFIG_RATE)
                fprintf(out, " Range: \\fIcount\\fR %d\\(en%d, \\fIseconds\\fR ", CONFIG_RATE_COUNT_MIN,
                        CONFIG_RATE_COUNT_MAX);
            else
                fputs(" Range: ", out);
            config_man_number(out, key->min);
            fputs("\\(en", out);
            config_man_number(out, key->max);
            fputc('.', out);
        } else if (key->type == CONFIG_CIDRS) {
            fprintf(out, " At most %d networks.", CONFIG_CIDR_MAX);
        }
        fputc('\n', out);
    }
}
