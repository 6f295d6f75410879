/* supervisor/status_page.h - the status page, GET / on metrics_listen:
 * the pool (slot, pid, state, RSS against the limits, restarts, build,
 * database), the rollout in progress, and charts of the last minutes
 * (supervisor/history.h). HTML with inline SVG; no script.
 */
#ifndef VERONA_SUPERVISOR_STATUS_PAGE_H
#define VERONA_SUPERVISOR_STATUS_PAGE_H

struct supervisor;

/* The page (malloc'd), or NULL when memory ran out. */
char *status_page_render(struct supervisor *sup);

#endif
