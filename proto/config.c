/* proto/config.c - a config from the key table (proto/config_keys.c):
 * defaults, parsing (INI through inih), the checks of a whole config
 * (config_finish). Rendering is proto/config_render.c, the example file
 * and the man page's key list proto/config_doc.c.
 */
#include "config_keys.h"

#include <libpq-fe.h>

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define CONFIG_KEY_COUNT config_key_count

static void config_error(char *err, size_t errsize, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL || errsize == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errsize, fmt, ap);
    va_end(ap);
}

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
    unsigned char seen[CONFIG_KEYS_MAX];
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

/* inih would read the rest of a line over CONFIG_LINE_MAX as a line of
 * its own: such a line is refused here, by its number. */
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

