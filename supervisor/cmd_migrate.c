/* supervisor/cmd_migrate.c - `verona migrate`: applies the pending migrations
 * compiled in from sql/, in order, each in its own transaction, recorded in
 * schema_migrations, under a session advisory lock so that several hosts
 * may run it at once (the others wait, then find nothing to do).
 */
#include <getopt.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>

#include "../proto/log.h"
#include "../sql/migrations.h"
#include "cli.h"

/* libpq's last error, as one line (its messages span several). */
static const char *migrate_pg_error(PGconn *pg)
{
    static char line[1024];

    return log_one_line(line, sizeof(line), PQerrorMessage(pg));
}

#define MIGRATE_LOCK_KEY "7420431, 1"

static int migrate_exec(PGconn *pg, const char *sql, const char *what)
{
    PGresult *res = PQexec(pg, sql);
    int ok = PQresultStatus(res) == PGRES_COMMAND_OK || PQresultStatus(res) == PGRES_TUPLES_OK;

    if (!ok)
        fprintf(stderr, "verona migrate: %s: %s\n", what, migrate_pg_error(pg));
    PQclear(res);
    return ok ? 0 : -1;
}

static int migrate_applied(PGconn *pg, int version)
{
    char text[16];
    const char *values[1] = { text };
    PGresult *res;
    int applied;

    snprintf(text, sizeof(text), "%d", version);
    res = PQexecParams(pg, "SELECT 1 FROM schema_migrations WHERE version = $1", 1, NULL, values,
                       NULL, NULL, 0);
    applied = PQresultStatus(res) == PGRES_TUPLES_OK ? PQntuples(res) : -1;
    PQclear(res);
    return applied;
}

static int migrate_one(PGconn *pg, const struct migration *m)
{
    char version[16];
    const char *values[2] = { version, m->name };
    PGresult *res;

    snprintf(version, sizeof(version), "%d", m->version);
    if (migrate_exec(pg, "BEGIN", "BEGIN") != 0)
        return -1;
    if (migrate_exec(pg, m->sql, m->name) != 0)
        goto fail;
    res = PQexecParams(pg, "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", 2, NULL,
                       values, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        fprintf(stderr, "verona migrate: recording %s: %s\n", m->name, migrate_pg_error(pg));
        PQclear(res);
        goto fail;
    }
    PQclear(res);
    if (migrate_exec(pg, "COMMIT", "COMMIT") != 0)
        return -1;
    printf("applied %s\n", m->name);
    return 0;
fail:
    migrate_exec(pg, "ROLLBACK", "ROLLBACK");
    return -1;
}

int migrate_main(int argc, char **argv)
{
    const char *config_path = NULL;
    struct config cfg;
    PGconn *pg;
    int opt, rc = CLI_FAILED, applied = 0;

    optind = 1;
    while ((opt = cli_getopt(argc, argv, "migrate")) != -1) {
        if (opt == 'h') {
            printf("usage: verona migrate [-c FILE]\n"
                   "  Applies the migrations this build has and the database lacks, each in a\n"
                   "  transaction, under an advisory lock (safe from several hosts at once).\n");
            return CLI_OK;
        }
        if (opt != 'c')
            return CLI_USAGE;
        config_path = optarg;
    }
    if (optind != argc) {
        fprintf(stderr, "verona migrate: unexpected argument '%s'\n", argv[optind]);
        return CLI_USAGE;
    }
    if (cli_config_load(&cfg, config_path) != CLI_OK)
        return CLI_USAGE;
    pg = cli_db_connect(cfg.database_url);
    if (PQstatus(pg) != CONNECTION_OK) {
        fprintf(stderr, "verona migrate: cannot connect: %s\n", migrate_pg_error(pg));
        PQfinish(pg);
        return CLI_FAILED;
    }
    if (migrate_exec(pg, "SET client_min_messages = warning", "settings") != 0 ||
        migrate_exec(pg, "SELECT pg_advisory_lock(" MIGRATE_LOCK_KEY ")", "advisory lock") != 0)
        goto done;
    if (migrate_exec(pg,
                     "CREATE TABLE IF NOT EXISTS schema_migrations ("
                     " version integer PRIMARY KEY, name text NOT NULL,"
                     " applied_at timestamptz NOT NULL DEFAULT now())",
                     "schema_migrations") != 0)
        goto unlock;
    for (int i = 0; i < migrations_count; i++) {
        int done = migrate_applied(pg, migrations[i].version);
        if (done < 0) {
            fprintf(stderr, "verona migrate: reading schema_migrations: %s\n", migrate_pg_error(pg));
            goto unlock;
        }
        if (done > 0)
            continue;
        if (migrate_one(pg, &migrations[i]) != 0)
            goto unlock;
        applied++;
    }
    printf("schema at version %d (%d applied now)\n", migrations_latest, applied);
    rc = CLI_OK;
unlock:
    migrate_exec(pg, "SELECT pg_advisory_unlock(" MIGRATE_LOCK_KEY ")", "advisory unlock");
done:
    PQfinish(pg);
    return rc;
}
