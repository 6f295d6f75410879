/* docs/man/mkconf.c - builds verona.conf(5): copies the hand-written
 * template to stdout and puts the key list in place of its marker line,
 * written by config_write_man() from the table that drives parsing and
 * `verona config-example`, so the page cannot drift from the code.
 *   mkconf docs/man/verona.conf.5.in > verona.conf.5
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "../../proto/config.h"

/* The line of the template the key list replaces (a roff comment, so the
 * template alone still formats). */
#define MKCONF_MARKER ".\\\" @CONFIG_KEYS@\n"

int main(int argc, char **argv)
{
    char line[4096];
    FILE *in;
    int markers = 0, lineno = 0;

    if (argc != 2) {
        fprintf(stderr, "usage: mkconf TEMPLATE > PAGE\n");
        return 2;
    }
    in = fopen(argv[1], "r");
    if (in == NULL) {
        fprintf(stderr, "mkconf: %s: %s\n", argv[1], strerror(errno));
        return 1;
    }
    while (fgets(line, sizeof(line), in) != NULL) {
        lineno++;
        if (strchr(line, '\n') == NULL && !feof(in)) {
            fprintf(stderr, "mkconf: %s:%d: line longer than %zu bytes\n", argv[1], lineno, sizeof(line) - 2);
            fclose(in);
            return 1;
        }
        if (strcmp(line, MKCONF_MARKER) == 0) {
            config_write_man(stdout);
            markers++;
        } else {
            fputs(line, stdout);
        }
    }
    if (ferror(in)) {
        fprintf(stderr, "mkconf: %s: read error\n", argv[1]);
        fclose(in);
        return 1;
    }
    fclose(in);
    if (markers != 1) {
        fprintf(stderr, "mkconf: %s: %d marker lines '%.*s' (want exactly one)\n", argv[1], markers,
                (int)strlen(MKCONF_MARKER) - 1, MKCONF_MARKER);
        return 1;
    }
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "mkconf: writing the page: %s\n", strerror(errno));
        return 1;
    }
    return 0;
}
