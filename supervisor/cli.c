/* supervisor/cli.c - what the subcommands of `verona` share
 * (supervisor/cli.h): loading the config, their getopt, the blocking
 * database connection of the one-shot commands. The program's main() and
 * its usage are in main.c.
 */
#include <getopt.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

int cli_config_load_file(struct config *cfg, const char *path)
{
    char err[CONFIG_ERROR_MAX];

    config_defaults(cfg);
    if (path == NULL && access(CLI_DEFAULT_CONFIG, F_OK) == 0)
        path = CLI_DEFAULT_CONFIG;
    if (path != NULL && config_load_file(cfg, path, err, sizeof(err)) != 0) {
        fprintf(stderr, "verona: %s\n", err);
        return CLI_USAGE;
    }
    return CLI_OK;
}

int cli_config_load(struct config *cfg, const char *path)
{
    char err[CONFIG_ERROR_MAX];

    if (cli_config_load_file(cfg, path) != CLI_OK)
        return CLI_USAGE;
    if (path == NULL && access(CLI_DEFAULT_CONFIG, F_OK) == 0)
        path = CLI_DEFAULT_CONFIG;
    if (config_finish(cfg, err, sizeof(err)) != 0) {
        /* An error about keys of the file starts with its FILE:LINE. */
        if (path != NULL && strncmp(err, path, strlen(path)) == 0 && err[strlen(path)] == ':')
            fprintf(stderr, "verona: %s\n", err);
        else
            fprintf(stderr, "verona: %s: %s\n", path != NULL ? path : "defaults", err);
        return CLI_USAGE;
    }
    return CLI_OK;
}

struct pg_conn *cli_db_connect(const char *url)
{
    static const char *const keys[] = { "dbname", "target_session_attrs", NULL };
    const char *values[] = { url, "read-write", NULL };
    PQconninfoOption *opts = PQconninfoParse(url, NULL);
    int has_own = 0;

    for (PQconninfoOption *o = opts; o != NULL && o->keyword != NULL; o++)
        if (strcmp(o->keyword, "target_session_attrs") == 0 && o->val != NULL && o->val[0] != '\0')
            has_own = 1;
    PQconninfoFree(opts);
    if (has_own)
        return PQconnectdb(url);
    /* expand_dbname: the URL is read whole, and the key after it is added. */
    return PQconnectdbParams(keys, values, 1);
}

int cli_getopt(int argc, char **argv, const char *command)
{
    static const struct option options[] = { { "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 } };
    int opt;

    opterr = 0; /* one line of our own instead */
    opt = getopt_long(argc, argv, "+c:h", options, NULL);
    if (opt != '?')
        return opt;
    if (optopt == 'c')
        fprintf(stderr, "verona %s: -c needs a FILE (see verona %s -h)\n", command, command);
    else if (optopt != 0)
        fprintf(stderr, "verona %s: unknown option '-%c' (see verona %s -h)\n", command, optopt, command);
    else
        fprintf(stderr, "verona %s: unknown option '%.64s' (see verona %s -h)\n", command, argv[optind - 1],
                command);
    return '?';
}
