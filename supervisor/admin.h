/* supervisor/admin.h - the admin socket `verona ctl` talks to: a Unix
 * socket (mode 0600, peers checked with SO_PEERCRED: root or our own
 * user). One request line, one answer, then the connection closes:
 *
 *   request:  "status" | "status --json" | "scale N" | "recycle PID" |
 *             "reload" | "reload --wait" | "stop" | "upgrade"
 *   answer:   "<exit code>\n<text>"   (0 done, 1 failed, 2 bad usage)
 */
#ifndef VERONA_SUPERVISOR_ADMIN_H
#define VERONA_SUPERVISOR_ADMIN_H

#include <limits.h>
#include <stddef.h>
#include <uv.h>

#define ADMIN_REQUEST_MAX 256

struct supervisor;

struct admin {
    struct supervisor *sup;
    uv_pipe_t server;
    char path[PATH_MAX];
    int open;
};

/* Binds the socket (refusing when another supervisor answers on it).
 * Returns 0 or -1 with a message. */
int admin_start(struct admin *admin, struct supervisor *sup, const char *path, char *err, size_t errsize);

/* Listens on `fd`, the admin socket the supervisor's previous image
 * bound at `path` (ctl upgrade). 0, or -1 with a message. */
int admin_adopt(struct admin *admin, struct supervisor *sup, const char *path, int fd, char *err, size_t errsize);

/* Closes the socket and removes its file. */
void admin_stop(struct admin *admin);

/* Runs one request line; returns the malloc'd answer "<code>\n<text>".
 * Public for tests and for the signal handlers that share its actions. */
char *admin_execute(struct supervisor *sup, const char *line);

#endif
