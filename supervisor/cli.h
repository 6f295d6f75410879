/* supervisor/cli.h - the subcommands of the `verona` program. Each takes
 * the arguments after its name and returns the process exit code: 0 done,
 * 1 failed at run time, 2 bad usage or config.
 */
#ifndef VERONA_SUPERVISOR_CLI_H
#define VERONA_SUPERVISOR_CLI_H

#include "../proto/config.h"

#define CLI_OK 0
#define CLI_FAILED 1
#define CLI_USAGE 2

#define CLI_DEFAULT_CONFIG "/etc/verona/verona.conf"

/* Loads the config for a subcommand: -c FILE, else /etc/verona/verona.conf
 * when it exists, else the defaults; then the environment. Prints the
 * error and returns CLI_USAGE on failure. */
int cli_config_load(struct config *cfg, const char *path);

/* For `ctl`, which needs only the admin socket: the file over the
 * defaults, without the checks of a config that serves (an unset
 * database_url, say). Same contract as cli_config_load. */
int cli_config_load_file(struct config *cfg, const char *path);

/* getopt for the subcommands that take -c FILE and -h/--help: returns
 * 'c' (optarg set), 'h', -1 at the end, or '?' after printing one line
 * that says what is wrong ("verona COMMAND: ..."). */
int cli_getopt(int argc, char **argv, const char *command);

/* A blocking connection for the one-shot commands (migrate, user): to the
 * read-write node of a URL that may name several hosts
 * (target_session_attrs=read-write unless the URL says otherwise). The
 * caller checks PQstatus and PQfinishes it. */
struct pg_conn;
struct pg_conn *cli_db_connect(const char *url);

int migrate_main(int argc, char **argv);
int users_main(int argc, char **argv);
int serve_main(int argc, char **argv);
int ctl_main(int argc, char **argv);
int config_example_main(int argc, char **argv);

#endif
