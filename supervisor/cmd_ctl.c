/* supervisor/cmd_ctl.c - `verona ctl`: sends one request line to the admin
 * socket (supervisor/admin.h) and prints the answer; the answer's code is
 * the exit code. Checks the usage itself first, so a typo never reaches
 * the supervisor.
 */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "admin.h"
#include "cli.h"

#define CTL_TIMEOUT_MS 10000
#define CTL_UPGRADE_TIMEOUT_MS 60000 /* the dry run, the settling, the exec and the takeover */

static const struct option ctl_options[] = {
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
};

static void ctl_usage(FILE *out)
{
    fprintf(out, "usage: verona ctl [-s SOCKET | -c FILE] COMMAND\n"
                 "  status [--json]   one row a worker, pool totals, rollout\n"
                 "  scale N           grow or shrink the pool to N workers (1-128)\n"
                 "  recycle PID       gracefully replace one worker\n"
                 "  reload [--wait]   roll every worker onto the binary now on disk (--wait: until it ends;\n"
                 "                    exit 0 done, 1 halted and rolled back)\n"
                 "  stop              graceful shutdown of the whole cluster\n"
                 "  upgrade           replace the supervisor with the verona binary now on disk, in place\n"
                 "                    (same pid, workers untouched; refused if that binary cannot take over)\n");
}

/* What is wrong with the command line (into msg), or 0 when it is a
 * request the supervisor takes. */
static int ctl_check(int argc, char **argv, char *msg, size_t size)
{
    static const char *const verbs[] = { "status", "scale", "recycle", "reload", "stop", "upgrade" };
    const char *verb = argc > 0 ? argv[0] : "";
    size_t i;

    if (argc == 0) {
        snprintf(msg, size, "missing command (status, scale N, recycle PID, reload, stop, upgrade)");
        return -1;
    }
    for (i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
        if (strcmp(verb, verbs[i]) == 0)
            break;
    if (i == sizeof(verbs) / sizeof(verbs[0])) {
        snprintf(msg, size, "unknown command '%.64s' (status, scale N, recycle PID, reload, stop, upgrade)", verb);
        return -1;
    }
    if (strcmp(verb, "scale") == 0 || strcmp(verb, "recycle") == 0) {
        const char *what = verb[0] == 's' ? "a worker count 1-128" : "a worker's pid";
        char *end;
        long v;

        if (argc != 2) {
            snprintf(msg, size, "%s takes one argument: %s", verb, what);
            return -1;
        }
        errno = 0;
        v = strtol(argv[1], &end, 10);
        if (errno != 0 || *end != '\0' || end == argv[1] || v < 1 || (verb[0] == 's' ? v > 128 : v > 0x7fffffff)) {
            snprintf(msg, size, "%s: '%.64s' is not %s", verb, argv[1], what);
            return -1;
        }
        return 0;
    }
    /* status and reload take one flag; the first argument that is not it is named. */
    const char *flag = strcmp(verb, "status") == 0 ? "--json" : strcmp(verb, "reload") == 0 ? "--wait" : NULL;
    int bad = 1;

    if (argc == 1)
        return 0;
    if (flag != NULL && strcmp(argv[1], flag) == 0) {
        if (argc == 2)
            return 0;
        bad = 2;
    }
    snprintf(msg, size, "%s: unexpected argument '%.64s'%s%s%s", verb, argv[bad], flag != NULL ? " (only " : "",
             flag != NULL ? flag : "", flag != NULL ? ")" : "");
    return -1;
}

int ctl_main(int argc, char **argv)
{
    const char *socket_path = NULL, *config_path = NULL;
    char request[ADMIN_REQUEST_MAX], answer[1 << 16];
    struct sockaddr_un sun;
    struct config cfg;
    size_t len = 0, rlen = 0;
    int opt, fd, code, wait = 0, timeout_ms;

    optind = 1;
    opterr = 0; /* one line of our own instead */
    while ((opt = getopt_long(argc, argv, "+s:c:h", ctl_options, NULL)) != -1) {
        switch (opt) {
        case 's':
            socket_path = optarg;
            break;
        case 'c':
            config_path = optarg;
            break;
        case 'h':
            ctl_usage(stdout);
            return CLI_OK;
        default:
            if (optopt == 's' || optopt == 'c')
                fprintf(stderr, "verona ctl: -%c needs a value (see verona ctl -h)\n", optopt);
            else if (optopt != 0)
                fprintf(stderr, "verona ctl: unknown option '-%c' (see verona ctl -h)\n", optopt);
            else
                fprintf(stderr, "verona ctl: unknown option '%.64s' (see verona ctl -h)\n", argv[optind - 1]);
            return CLI_USAGE;
        }
    }
    if (ctl_check(argc - optind, argv + optind, answer, sizeof(answer)) != 0) {
        fprintf(stderr, "verona ctl: %s (see verona ctl -h)\n", answer);
        return CLI_USAGE;
    }
    if (socket_path == NULL) {
        if (cli_config_load_file(&cfg, config_path) != CLI_OK)
            return CLI_USAGE;
        socket_path = cfg.admin_socket;
    }
    for (int i = optind; i < argc; i++)
        rlen += (size_t)snprintf(request + rlen, sizeof(request) - rlen, "%s%s", i > optind ? " " : "", argv[i]);
    if (rlen + 2 > sizeof(request)) {
        fprintf(stderr, "verona ctl: request too long\n");
        return CLI_USAGE;
    }
    request[rlen++] = '\n';
    wait = argc - optind == 2 && strcmp(argv[optind + 1], "--wait") == 0;
    timeout_ms = strcmp(argv[optind], "upgrade") == 0 ? CTL_UPGRADE_TIMEOUT_MS : CTL_TIMEOUT_MS;

    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    if (strlen(socket_path) >= sizeof(sun.sun_path)) {
        fprintf(stderr, "verona ctl: socket path too long: %s\n", socket_path);
        return CLI_USAGE;
    }
    strcpy(sun.sun_path, socket_path);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0) {
        fprintf(stderr, "verona ctl: cannot reach the supervisor at %s: %s\n", socket_path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return CLI_FAILED;
    }
    /* The supervisor may answer and close before reading (a refused
     * peer): no SIGPIPE, and its answer is still read below. */
    if (send(fd, request, rlen, MSG_NOSIGNAL) != (ssize_t)rlen && errno != EPIPE && errno != ECONNRESET) {
        fprintf(stderr, "verona ctl: %s: write failed: %s\n", socket_path, strerror(errno));
        close(fd);
        return CLI_FAILED;
    }
    for (;;) {
        struct pollfd p = { fd, POLLIN, 0 };
        ssize_t n;
        /* reload --wait lasts as long as the rollout; everything else answers at once. */
        int timeout = wait ? -1 : timeout_ms;

        if (poll(&p, 1, timeout) <= 0) {
            fprintf(stderr, "verona ctl: no answer from %s within %d s\n", socket_path, timeout_ms / 1000);
            close(fd);
            return CLI_FAILED;
        }
        n = read(fd, answer + len, sizeof(answer) - 1 - len);
        if (n <= 0)
            break;
        len += (size_t)n;
        if (len == sizeof(answer) - 1)
            break;
    }
    close(fd);
    answer[len] = '\0';
    if (len < 2 || answer[1] != '\n' || answer[0] < '0' || answer[0] > '2') {
        fprintf(stderr, "verona ctl: malformed answer from %s\n", socket_path);
        return CLI_FAILED;
    }
    code = answer[0] - '0';
    fputs(answer + 2, code == 0 ? stdout : stderr);
    return code;
}
