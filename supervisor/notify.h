/* supervisor/notify.h - systemd integration (Type=notify): READY=1 once
 * the pool serves, STATUS= lines when the picture changes, RELOADING=1
 * during a rollout, STOPPING=1, and WATCHDOG=1 from the supervisor's own
 * loop when WatchdogSec is set. Without systemd every call does nothing.
 */
#ifndef VERONA_SUPERVISOR_NOTIFY_H
#define VERONA_SUPERVISOR_NOTIFY_H

#include <uv.h>

struct supervisor;

struct notify {
    int ready_sent;
    int reloading;
    char status[160];
    uv_timer_t watchdog;
    int watchdog_on;
};

void notify_start(struct notify *n, struct supervisor *sup);
/* Called from the supervisor's tick: READY=1 and STATUS= as they change. */
void notify_tick(struct notify *n, struct supervisor *sup);
void notify_reloading(struct notify *n);
void notify_stopping(struct notify *n);
void notify_stop(struct notify *n);

#endif
