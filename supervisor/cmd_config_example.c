/* supervisor/cmd_config_example.c - `verona config-example`: prints the
 * example config, every key with its default and help (proto/config.c's
 * table), as deploy/verona.conf holds it.
 */
#include <stdio.h>

#include "cli.h"

int config_example_main(int argc, char **argv)
{
    if (argc > 1) {
        fprintf(stderr, "verona: config-example takes no arguments (got '%s')\n", argv[1]);
        return CLI_USAGE;
    }
    config_write_example(stdout);
    return CLI_OK;
}
