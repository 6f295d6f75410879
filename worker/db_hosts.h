/* worker/db_hosts.h - the hosts of the database URL: which ones, in
 * libpq's order, and their addresses, looked up on a thread of their own
 * so that getaddrinfo never runs on the loop (worker/db.c uses them).
 */
#ifndef VERONA_WORKER_DB_HOSTS_H
#define VERONA_WORKER_DB_HOSTS_H

#include "db.h"

/* Reads the host list of the URL into db->hosts. A URL that sets hostaddr
 * itself is passed to libpq as it is (one entry that libpq walks).
 * Returns 0, or -1 with the reason (which never quotes the URL: it may
 * hold a password). */
int db_hosts_parse(struct db *db, const char *url, const char **why);

/* A keyword's value in the parsed URL, or NULL when unset or empty. */
const char *db_hosts_option(const struct db *db, const char *keyword);

/* Starts the resolver when some host is a name. Returns 0 or -1. */
int db_hosts_start_resolver(struct db *db);

/* Asks for a fresh lookup of every name (after a failed connect too: a
 * name may point elsewhere after a failover). */
void db_hosts_resolve(struct db *db);

/* The options of a connection to host `h`: the URL's own, with this one
 * host (and its address, resolved off the loop), read-write sessions and
 * keepalives that notice a silent primary within about 3 s, unless the
 * URL sets them. Writes up to `max` pairs (NULL-ended); returns how many. */
int db_hosts_conn_params(const struct db *db, const struct db_host *h, const char **keys, const char **vals,
                         int max);

/* "host:port" of connection `c`, which is up ("[v6]:port"; a socket
 * folder as it is), for status and logs. */
void db_hosts_label(const struct db_conn *c, char *buf, size_t size);

/* Stops the resolver; a lookup still running frees it when done. */
void db_hosts_stop_resolver(struct db *db);

#endif
