/* supervisor/admin_request.h - one request line of the admin socket,
 * parsed (the grammar in supervisor/admin.h), apart from the supervisor
 * so that it can be tested and fuzzed alone (tests/fuzz/fuzz_admin.c).
 */
#ifndef VERONA_SUPERVISOR_ADMIN_REQUEST_H
#define VERONA_SUPERVISOR_ADMIN_REQUEST_H

#include <stddef.h>

enum admin_verb { ADMIN_STATUS, ADMIN_RELOAD, ADMIN_SCALE, ADMIN_RECYCLE, ADMIN_STOP, ADMIN_UPGRADE };

struct admin_request {
    enum admin_verb verb;
    int json;        /* status --json */
    int wait;        /* reload --wait */
    long number;     /* scale: the worker count; recycle: the pid */
};

/* Parses `line` (NUL-terminated, no newline). Returns 0, or 2 (bad
 * usage) with a one-line message in `err`. `slots_max` bounds scale. */
int admin_request_parse(const char *line, int slots_max, struct admin_request *req, char *err, size_t errsize);

#endif
