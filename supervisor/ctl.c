/* supervisor/ctl.c - `verona ctl`: sends one request line to the admin
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

static void ctl_usage(FILE *out)
{
    fprintf(out, "usage: verona ctl [-s SOCKET | -c FILE] COMMAND\n"
                 "  status [--json]   one row a worker, pool totals, rollout\n"
                 "  scale N           grow or shrink the pool to N workers (1-128)\n"
                 "  recycle PID       gracefully replace one worker\n"
                 "  reload [--wait]   roll every worker onto the binary now on disk (--wait: until it ends;\n"
                 "                    exit 0 done, 1 halted and rolled back)\n"
                 "  stop              graceful shutdown of the whole cluster\n");
}

static int ctl_valid(int argc, char **argv)
{
    char *end;

    if (argc == 1 && (strcmp(argv[0], "status") == 0 || strcmp(argv[0], "stop") == 0 ||
                      strcmp(argv[0], "reload") == 0))
        return 1;
    if (argc == 2 && strcmp(argv[0], "reload") == 0 && strcmp(argv[1], "--wait") == 0)
        return 1;
    if (argc == 2 && strcmp(argv[0], "status") == 0 && strcmp(argv[1], "--json") == 0)
        return 1;
    if (argc == 2 && (strcmp(argv[0], "scale") == 0 || strcmp(argv[0], "recycle") == 0)) {
        long v = strtol(argv[1], &end, 10);
        return *end == '\0' && end != argv[1] && v >= 1 &&
               (strcmp(argv[0], "recycle") == 0 || v <= 128);
    }
    return 0;
}

int ctl_main(int argc, char **argv)
{
    const char *socket_path = NULL, *config_path = NULL;
    char request[ADMIN_REQUEST_MAX], answer[1 << 16];
    struct sockaddr_un sun;
    struct config cfg;
    size_t len = 0, rlen = 0;
    int opt, fd, code, wait = 0;

    optind = 1;
    while ((opt = getopt(argc, argv, "+s:c:h")) != -1) {
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
            ctl_usage(stderr);
            return CLI_USAGE;
        }
    }
    if (!ctl_valid(argc - optind, argv + optind)) {
        ctl_usage(stderr);
        return CLI_USAGE;
    }
    if (socket_path == NULL) {
        if (cli_config_load(&cfg, config_path) != CLI_OK)
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
        int timeout = wait ? -1 : CTL_TIMEOUT_MS;

        if (poll(&p, 1, timeout) <= 0) {
            fprintf(stderr, "verona ctl: no answer from %s within %d s\n", socket_path, CTL_TIMEOUT_MS / 1000);
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
