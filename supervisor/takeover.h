/* supervisor/takeover.h - the new image's half of `ctl upgrade`
 * (supervisor/upgrade.h has the whole story).
 */
#ifndef VERONA_SUPERVISOR_TAKEOVER_H
#define VERONA_SUPERVISOR_TAKEOVER_H

#include <stddef.h>

struct supervisor;

/* `verona serve --takeover-check FD`: reads the state on FD as a
 * takeover would and prints "ok BUILD_ID" (exit 0) or "refused: why"
 * (exit 1) on stdout. */
int takeover_check_main(const char *fd_text);

/* `verona serve --takeover FD`: rebuilds `sup` from the state on FD: its
 * settings, the listening, admin and metrics sockets, the pool with its
 * slots, counters and rollout history, and every worker, adopted. The
 * loop is sup->loop. 0, or -1 with a message (nothing can be given back
 * then: the caller exits and the workers, seeing their control sockets
 * close, drain). */
int takeover_load(struct supervisor *sup, const char *fd_text, char *err, size_t errsize);

/* Once the supervisor runs again: logs supervisor_upgrade and answers
 * the ctl that asked. */
void takeover_done(struct supervisor *sup);

#endif
