/* worker/control.h - the worker's end of the control protocol
 * (proto/control.h): hello, settings, ready, accept, ping/pong, drain,
 * goodbye, over the inherited socket on fd 4. A closed control socket
 * means the supervisor is gone: the worker drains and exits.
 */
#ifndef VERONA_WORKER_CONTROL_H
#define VERONA_WORKER_CONTROL_H

#include "../proto/control.h"

struct worker;

/* Opens `fd` on the worker's loop and says hello; from then on the
 * worker's readiness and goodbye reach the supervisor (w->on_ready,
 * w->on_goodbye). 0 or a negative errno. */
int worker_control_start(struct worker *w, int fd);

/* Removes the supervisor's hash gate if the supervisor died (this process
 * has another parent now); called on the control socket's EOF and again
 * at exit, where it waits up to `wait_ms` for a supervisor that closed
 * the socket to finish dying. */
void worker_control_orphan_gate(struct worker *w, int wait_ms);

#endif
