/* supervisor/main.c - the `verona` program: picks the subcommand. */
#include <stdio.h>
#include <string.h>
#include <sodium.h>

#include "cli.h"

static void cli_usage(FILE *out)
{
    fprintf(out,
            "usage: verona COMMAND [ARGS]\n"
            "  serve [-c FILE]                   run the supervisor and its workers (foreground)\n"
            "  ctl [-s SOCKET|-c FILE] status [--json] | scale N | recycle PID | reload [--wait] | stop | upgrade\n"
            "  migrate [-c FILE]                 apply pending sql/ migrations\n"
            "  user add|passwd NAME [-c FILE]    create a user / set a password (read from stdin)\n"
            "  user lock|unlock NAME [-c FILE]   lock (ending every session) or unlock a user\n"
            "  config-example                    print the example config with every key\n"
            "exit codes: 0 done, 1 failed, 2 bad usage or config\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "verona: missing command (serve, ctl, migrate, user, config-example) (see verona --help)\n");
        return CLI_USAGE;
    }
    if (sodium_init() < 0) {
        fprintf(stderr, "verona: libsodium failed to initialise\n");
        return CLI_FAILED;
    }
    if (strcmp(argv[1], "serve") == 0)
        return serve_main(argc - 1, argv + 1);
    if (strcmp(argv[1], "ctl") == 0)
        return ctl_main(argc - 1, argv + 1);
    if (strcmp(argv[1], "migrate") == 0)
        return migrate_main(argc - 1, argv + 1);
    if (strcmp(argv[1], "user") == 0)
        return users_main(argc - 1, argv + 1);
    if (strcmp(argv[1], "config-example") == 0)
        return config_example_main(argc - 1, argv + 1);
    if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "help") == 0) {
        cli_usage(stdout);
        return CLI_OK;
    }
    fprintf(stderr, "verona: unknown command '%s' (see verona --help)\n", argv[1]);
    return CLI_USAGE;
}
