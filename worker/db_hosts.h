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

/* Stops the resolver; a lookup still running frees it when done. */
void db_hosts_stop_resolver(struct db *db);

#endif
