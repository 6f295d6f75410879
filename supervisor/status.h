/* supervisor/status.h - what `verona ctl status` shows: one row a worker
 * (and a slot in backoff), pool totals, any rollout (SPEC.md section 6). */
#ifndef VERONA_SUPERVISOR_STATUS_H
#define VERONA_SUPERVISOR_STATUS_H

#include <jansson.h>

struct supervisor;

/* The status as the JSON document of SPEC.md section 6 (new reference). */
json_t *status_json(struct supervisor *sup);

/* The same as a table (malloc'd text). */
char *status_table(struct supervisor *sup);

#endif
