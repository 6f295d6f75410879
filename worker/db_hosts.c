/* worker/db_hosts.c - the hosts of the database URL (worker/db_hosts.h):
 * the list libpq would walk, and a resolver thread that looks their names
 * up off the loop.
 */
#include "db_hosts.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

static void db_hosts_on_close(uv_handle_t *h)
{
    struct db *db = h->data;

    db->handles_open--;
}

/*
 * The resolver: one thread that looks host names up when asked, so that
 * getaddrinfo never runs on the loop (nor on the threads that hash). It
 * shares only this struct with the loop, under `lock`; the loop hears of
 * new addresses through `async`. The last of the two owners to let go
 * frees it, so a lookup still running at shutdown touches nothing freed.
 */
struct db_resolver {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    int refs;
    int stop;
    int requested;
    int count;
    char names[DB_HOSTS_MAX][256];
    char ports[DB_HOSTS_MAX][16];
    char addrs[DB_HOSTS_MAX][64];
    uv_async_t *async; /* NULL once the loop closed it */
};

static void db_hosts_resolver_release(struct db_resolver *r)
{
    int last;

    pthread_mutex_lock(&r->lock);
    last = --r->refs == 0;
    pthread_mutex_unlock(&r->lock);
    if (last) {
        pthread_mutex_destroy(&r->lock);
        pthread_cond_destroy(&r->wake);
        free(r);
    }
}

static void *db_hosts_resolver_main(void *arg)
{
    struct db_resolver *r = arg;
    char names[DB_HOSTS_MAX][256], ports[DB_HOSTS_MAX][16], addrs[DB_HOSTS_MAX][64];
    int count;

    pthread_mutex_lock(&r->lock);
    while (!r->stop) {
        if (!r->requested) {
            pthread_cond_wait(&r->wake, &r->lock);
            continue;
        }
        r->requested = 0;
        count = r->count;
        memcpy(names, r->names, sizeof(names));
        memcpy(ports, r->ports, sizeof(ports));
        pthread_mutex_unlock(&r->lock);
        for (int i = 0; i < count; i++) {
            struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res = NULL;

            addrs[i][0] = '\0';
            if (names[i][0] == '\0')
                continue;
            if (getaddrinfo(names[i], ports[i][0] != '\0' ? ports[i] : NULL, &hints, &res) == 0 && res != NULL) {
                const void *a = res->ai_family == AF_INET6
                                    ? (const void *)&((struct sockaddr_in6 *)res->ai_addr)->sin6_addr
                                    : (const void *)&((struct sockaddr_in *)res->ai_addr)->sin_addr;
                if (inet_ntop(res->ai_family, a, addrs[i], sizeof(addrs[i])) == NULL)
                    addrs[i][0] = '\0';
            }
            if (res != NULL)
                freeaddrinfo(res);
        }
        pthread_mutex_lock(&r->lock);
        memcpy(r->addrs, addrs, sizeof(addrs));
        if (r->async != NULL)
            uv_async_send(r->async);
    }
    pthread_mutex_unlock(&r->lock);
    db_hosts_resolver_release(r);
    return NULL;
}

/* Asks for a fresh lookup of every name (after a failed connect too: a
 * name may point elsewhere after a failover). */
void db_hosts_resolve(struct db *db)
{
    if (db->resolver == NULL)
        return;
    pthread_mutex_lock(&db->resolver->lock);
    db->resolver->requested = 1;
    pthread_cond_signal(&db->resolver->wake);
    pthread_mutex_unlock(&db->resolver->lock);
}

static void db_hosts_on_resolved(uv_async_t *a)
{
    struct db *db = a->data;

    if (db->resolver == NULL)
        return;
    pthread_mutex_lock(&db->resolver->lock);
    for (int i = 0; i < db->host_count; i++)
        if (db->hosts[i].needs_resolve && db->resolver->addrs[i][0] != '\0')
            snprintf(db->hosts[i].addr, sizeof(db->hosts[i].addr), "%s", db->resolver->addrs[i]);
    pthread_mutex_unlock(&db->resolver->lock);
}

/* Splits `list` at commas into out[max][size]; returns the count, or -1
 * when there are too many or one is too long. */
static int db_hosts_split(const char *list, char *out, size_t size, int max)
{
    int n = 0;

    for (const char *p = list;; n++) {
        size_t len = strcspn(p, ",");

        if (n == max || len >= size)
            return -1;
        memcpy(out + (size_t)n * size, p, len);
        out[(size_t)n * size + len] = '\0';
        if (p[len] == '\0')
            return n + 1;
        p += len + 1;
    }
}

const char *db_hosts_option(const struct db *db, const char *keyword)
{
    for (const PQconninfoOption *o = db->options; o != NULL && o->keyword != NULL; o++)
        if (strcmp(o->keyword, keyword) == 0)
            return o->val != NULL && o->val[0] != '\0' ? o->val : NULL;
    return NULL;
}

/* Reads the host list of the URL. A URL that sets hostaddr itself is
 * passed to libpq as it is (one entry that libpq walks). Returns 0, or -1
 * with the reason (which never quotes the URL: it may hold a password). */
int db_hosts_parse(struct db *db, const char *url, const char **why)
{
    char hosts[DB_HOSTS_MAX][256], ports[DB_HOSTS_MAX][16];
    const char *host, *port;
    int nports = 0;
    char *err = NULL;

    db->options = PQconninfoParse(url, &err);
    if (db->options == NULL) {
        PQfreemem(err); /* libpq's message may quote the URL, password and all */
        *why = "database_url cannot be parsed";
        return -1;
    }
    host = db_hosts_option(db, "host");
    port = db_hosts_option(db, "port");
    if (db_hosts_option(db, "hostaddr") != NULL) {
        db->host_count = 1; /* hosts[0] all empty: libpq's own walk */
        return 0;
    }
    db->host_count = db_hosts_split(host != NULL ? host : "", &hosts[0][0], sizeof(hosts[0]), DB_HOSTS_MAX);
    if (port != NULL)
        nports = db_hosts_split(port, &ports[0][0], sizeof(ports[0]), DB_HOSTS_MAX);
    if (db->host_count < 0 || nports < 0 || (nports > 1 && nports != db->host_count)) {
        *why = "database_url: too many hosts, or ports that do not match them";
        return -1;
    }
    for (int i = 0; i < db->host_count; i++) {
        struct db_host *h = &db->hosts[i];
        unsigned char buf[16];

        _Static_assert(sizeof(h->name) == sizeof(hosts[0]) && sizeof(h->port) == sizeof(ports[0]),
                       "host fields and their split buffers");
        memcpy(h->name, hosts[i], sizeof(h->name)); /* db_split ended each within its size */
        if (nports > 0)
            memcpy(h->port, ports[nports == 1 ? 0 : i], sizeof(h->port));
        if (h->name[0] == '\0' || h->name[0] == '/' || h->name[0] == '@')
            continue; /* a socket folder: nothing to resolve */
        if (inet_pton(AF_INET, h->name, buf) == 1 || inet_pton(AF_INET6, h->name, buf) == 1)
            snprintf(h->addr, sizeof(h->addr), "%s", h->name);
        else
            h->needs_resolve = 1;
    }
    return 0;
}

/* Starts the resolver when some host is a name. Returns 0 or -1. */
int db_hosts_start_resolver(struct db *db)
{
    struct db_resolver *r;
    pthread_t thread;
    int names = 0;

    for (int i = 0; i < db->host_count; i++)
        names += db->hosts[i].needs_resolve;
    if (names == 0)
        return 0;
    r = calloc(1, sizeof(*r));
    if (r == NULL)
        return -1;
    pthread_mutex_init(&r->lock, NULL);
    pthread_cond_init(&r->wake, NULL);
    r->refs = 2; /* the loop's and the thread's */
    r->requested = 1;
    r->count = db->host_count;
    for (int i = 0; i < db->host_count; i++) {
        if (db->hosts[i].needs_resolve)
            snprintf(r->names[i], sizeof(r->names[i]), "%s", db->hosts[i].name);
        snprintf(r->ports[i], sizeof(r->ports[i]), "%s", db->hosts[i].port);
    }
    if (uv_async_init(db->loop, &db->resolved, db_hosts_on_resolved) != 0) {
        pthread_mutex_destroy(&r->lock);
        pthread_cond_destroy(&r->wake);
        free(r);
        return -1;
    }
    db->resolved.data = db;
    db->handles_open++;
    r->async = &db->resolved;
    if (pthread_create(&thread, NULL, db_hosts_resolver_main, r) != 0) {
        uv_close((uv_handle_t *)&db->resolved, db_hosts_on_close);
        pthread_mutex_destroy(&r->lock);
        pthread_cond_destroy(&r->wake);
        free(r);
        return -1;
    }
    pthread_detach(thread);
    db->resolver = r;
    return 0;
}

void db_hosts_stop_resolver(struct db *db)
{
    if (db->resolver == NULL)
        return;
    pthread_mutex_lock(&db->resolver->lock);
    db->resolver->stop = 1;
    db->resolver->async = NULL;
    pthread_cond_signal(&db->resolver->wake);
    pthread_mutex_unlock(&db->resolver->lock);
    db_hosts_resolver_release(db->resolver);
    db->resolver = NULL;
}

/* The options of a connection to host `h`: the URL's own, with this one
 * host (and its address, resolved off the loop), read-write sessions and
 * keepalives that notice a silent primary within about 3 s, unless the
 * URL sets them. Returns the number of pairs written. */
int db_hosts_conn_params(const struct db *db, const struct db_host *h, const char **keys, const char **vals,
                          int max)
{
    static const char *const ours[][2] = {
        { "target_session_attrs", "read-write" }, { "keepalives", "1" }, { "keepalives_idle", "1" },
        { "keepalives_interval", "1" },           { "keepalives_count", "2" }, { "tcp_user_timeout", "3000" },
    };
    int n = 0, passthrough = db_hosts_option(db, "hostaddr") != NULL;

    for (const PQconninfoOption *o = db->options; o->keyword != NULL && n < max - 10; o++) {
        if (o->val == NULL || o->val[0] == '\0')
            continue;
        if (!passthrough && (strcmp(o->keyword, "host") == 0 || strcmp(o->keyword, "port") == 0))
            continue;
        keys[n] = o->keyword;
        vals[n++] = o->val;
    }
    for (size_t i = 0; i < sizeof(ours) / sizeof(ours[0]); i++) {
        if (db_hosts_option(db, ours[i][0]) != NULL)
            continue;
        keys[n] = ours[i][0];
        vals[n++] = ours[i][1];
    }
    if (!passthrough) {
        if (h->name[0] != '\0') {
            keys[n] = "host";
            vals[n++] = h->name;
        }
        if (h->addr[0] != '\0' && h->needs_resolve) {
            keys[n] = "hostaddr";
            vals[n++] = h->addr;
        }
        if (h->port[0] != '\0') {
            keys[n] = "port";
            vals[n++] = h->port;
        }
    }
    keys[n] = NULL;
    vals[n] = NULL;
    return n;
}

/* "host:port" of a connection that is up, for status and logs. */
void db_hosts_label(const struct db_conn *c, char *buf, size_t size)
{
    const char *host = PQhost(c->pg), *port = PQport(c->pg);

    if (host != NULL && strchr(host, ':') != NULL && host[0] != '/')
        snprintf(buf, size, "[%s]:%s", host, port != NULL ? port : "");
    else
        snprintf(buf, size, "%s:%s", host != NULL ? host : "", port != NULL ? port : "");
}
