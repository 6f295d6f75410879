/* supervisor/cmd_user.c - `verona user add|passwd|lock|unlock NAME`: user
 * administration for operators. Passwords come from stdin (never argv);
 * `passwd` and `lock` end all of the user's sessions in the same
 * transaction.
 */
#include <getopt.h>
#include <libpq-fe.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../proto/log.h"
#include "../proto/password.h"
#include "cli.h"

/* libpq's last error, as one line (its messages span several). */
static const char *users_pg_error(PGconn *pg)
{
    static char line[1024];

    return log_one_line(line, sizeof(line), PQerrorMessage(pg));
}

static void users_usage(void)
{
    printf("usage: verona user add|passwd|lock|unlock NAME [-c FILE]\n"
           "  add and passwd read the password from stdin (one line)\n");
}

/* Reads one line (the password) from stdin; 0, or -1 with a message. */
static int users_read_password(char *buf, size_t size)
{
    size_t len;

    if (fgets(buf, (int)size, stdin) == NULL) {
        fprintf(stderr, "verona user: no password on stdin\n");
        return -1;
    }
    len = strlen(buf);
    if (len > 0 && buf[len - 1] == '\n')
        buf[--len] = '\0';
    else if (!feof(stdin)) {
        fprintf(stderr, "verona user: password longer than %d characters\n", PASSWORD_MAX_CHARS);
        return -1;
    }
    if (len > 0 && buf[len - 1] == '\r')
        buf[--len] = '\0';
    return 0;
}

/* Runs one parameterised statement; returns rows affected or -1. */
static int users_exec(PGconn *pg, const char *sql, int n, const char *const *values)
{
    PGresult *res = PQexecParams(pg, sql, n, NULL, values, NULL, NULL, 0);
    int rows = -1;

    if (PQresultStatus(res) == PGRES_COMMAND_OK || PQresultStatus(res) == PGRES_TUPLES_OK)
        rows = atoi(PQcmdTuples(res));
    else
        fprintf(stderr, "verona user: %s\n", users_pg_error(pg));
    PQclear(res);
    return rows;
}

static int users_run(PGconn *pg, const char *action, const char *name, const char *hash)
{
    const char *values[2] = { name, hash };
    int rows;

    if (strcmp(action, "add") == 0) {
        rows = users_exec(pg,
                          "INSERT INTO users (username, password_hash) VALUES ($1, $2) "
                          "ON CONFLICT DO NOTHING",
                          2, values);
        if (rows == 0)
            fprintf(stderr, "verona user: '%s' exists already (usernames ignore case)\n", name);
        return rows == 1 ? CLI_OK : CLI_FAILED;
    }
    if (users_exec(pg, "BEGIN", 0, NULL) < 0)
        return CLI_FAILED;
    if (strcmp(action, "passwd") == 0)
        rows = users_exec(pg,
                          "UPDATE users SET password_hash = $2, password_changed_at = now() "
                          "WHERE lower(username) = lower($1)",
                          2, values);
    else
        rows = users_exec(pg,
                          strcmp(action, "lock") == 0
                              ? "UPDATE users SET locked = true WHERE lower(username) = lower($1)"
                              : "UPDATE users SET locked = false WHERE lower(username) = lower($1)",
                          1, values);
    if (rows == 1 && strcmp(action, "unlock") != 0)
        rows = users_exec(pg,
                          "DELETE FROM sessions WHERE user_id = "
                          "(SELECT id FROM users WHERE lower(username) = lower($1))",
                          1, values) >= 0 ? 1 : -1;
    if (rows != 1) {
        if (rows == 0)
            fprintf(stderr, "verona user: no user '%s'\n", name);
        users_exec(pg, "ROLLBACK", 0, NULL);
        return CLI_FAILED;
    }
    return users_exec(pg, "COMMIT", 0, NULL) >= 0 ? CLI_OK : CLI_FAILED;
}

int users_main(int argc, char **argv)
{
    char hash[crypto_pwhash_STRBYTES] = "";
    const char *config_path = NULL, *action, *name;
    struct config cfg;
    PGconn *pg;
    int opt, rc, first;

    if (argc >= 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
        users_usage();
        return CLI_OK;
    }
    if (argc < 2) {
        fprintf(stderr, "verona user: missing action (add, passwd, lock, unlock) (see verona user -h)\n");
        return CLI_USAGE;
    }
    action = argv[1];
    if (strcmp(action, "add") != 0 && strcmp(action, "passwd") != 0 && strcmp(action, "lock") != 0 &&
        strcmp(action, "unlock") != 0) {
        fprintf(stderr, "verona user: unknown action '%.64s' (add, passwd, lock, unlock)\n", action);
        return CLI_USAGE;
    }
    /* "-bob" is a valid username; "--" ends the options before NAME. */
    first = argc > 2 && strcmp(argv[2], "--") == 0 ? 3 : 2;
    if (argc <= first || (first == 2 && (strcmp(argv[2], "-c") == 0 || strcmp(argv[2], "-h") == 0 ||
                                         strcmp(argv[2], "--help") == 0))) {
        fprintf(stderr, "verona user %s: missing NAME (see verona user -h)\n", action);
        return CLI_USAGE;
    }
    name = argv[first];
    optind = first + 1;
    while ((opt = cli_getopt(argc, argv, "user")) != -1) {
        if (opt == 'h') {
            users_usage();
            return CLI_OK;
        }
        if (opt != 'c')
            return CLI_USAGE;
        config_path = optarg;
    }
    if (optind != argc) {
        fprintf(stderr, "verona user: unexpected argument '%s'\n", argv[optind]);
        return CLI_USAGE;
    }
    if (!password_username_valid(name)) {
        fprintf(stderr, "verona user: '%s' is not a username (1-64 of A-Z a-z 0-9 . _ @ + -)\n", name);
        return CLI_USAGE;
    }
    if (cli_config_load(&cfg, config_path) != CLI_OK)
        return CLI_USAGE;
    if (strcmp(action, "add") == 0 || strcmp(action, "passwd") == 0) {
        static char password[PASSWORD_MAX_BYTES + 2];

        if (users_read_password(password, sizeof(password)) != 0)
            return CLI_USAGE;
        if (password_utf8_length(password, strlen(password)) < 0) {
            fprintf(stderr, "verona user: the password is not valid UTF-8\n");
            sodium_memzero(password, sizeof(password));
            return CLI_USAGE;
        }
        if (password_weak(&cfg, password, name)) {
            fprintf(stderr, "verona user: weak password (at least %d characters, not containing the "
                            "username, not easy to guess)\n", cfg.password_min_length);
            sodium_memzero(password, sizeof(password));
            return CLI_USAGE;
        }
        rc = crypto_pwhash_str(hash, password, strlen(password),
                               (unsigned long long)cfg.argon2_opslimit,
                               (size_t)cfg.argon2_memlimit_kib * 1024);
        sodium_memzero(password, sizeof(password));
        if (rc != 0) {
            fprintf(stderr, "verona user: hashing failed (argon2_memlimit_kib too high?)\n");
            return CLI_FAILED;
        }
    }
    pg = cli_db_connect(cfg.database_url);
    if (PQstatus(pg) != CONNECTION_OK) {
        fprintf(stderr, "verona user: cannot connect: %s\n", users_pg_error(pg));
        PQfinish(pg);
        return CLI_FAILED;
    }
    rc = users_run(pg, action, name, hash);
    PQfinish(pg);
    if (rc == CLI_OK)
        printf("%s: %s done\n", name, action);
    return rc;
}
