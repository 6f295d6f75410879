/* supervisor/admin_request.c - the admin request line (admin_request.h). */
#include "admin_request.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../proto/config.h"

/* A whole decimal number in [min, max], or -1. */
static long admin_number(const char *text, long min, long max)
{
    long v;

    return config_parse_long(text, min, max, &v) == 0 ? v : -1;
}

int admin_request_parse(const char *line, int slots_max, struct admin_request *req, char *err, size_t errsize)
{
    char verb[32] = "", arg[64] = "", extra[8] = "";
    int n = sscanf(line, "%31s %63s %7s", verb, arg, extra);

    memset(req, 0, sizeof(*req));
    if (n <= 0) {
        snprintf(err, errsize, "empty request (status, scale N, recycle PID, reload, stop, upgrade)");
        return 2;
    }
    if (n == 3) {
        snprintf(err, errsize, "too many arguments");
        return 2;
    }
    if (strcmp(verb, "status") == 0) {
        req->verb = ADMIN_STATUS;
        req->json = n == 2 && strcmp(arg, "--json") == 0;
        if (n == 2 && !req->json) {
            snprintf(err, errsize, "status takes only --json");
            return 2;
        }
        return 0;
    }
    if (strcmp(verb, "reload") == 0) {
        req->verb = ADMIN_RELOAD;
        req->wait = n == 2 && strcmp(arg, "--wait") == 0;
        if (n == 2 && !req->wait) {
            snprintf(err, errsize, "reload takes only --wait");
            return 2;
        }
        return 0;
    }
    if (strcmp(verb, "scale") == 0) {
        req->verb = ADMIN_SCALE;
        req->number = n == 2 ? admin_number(arg, 1, slots_max) : -1;
        if (req->number < 0) {
            snprintf(err, errsize, "scale needs a worker count in 1..%d", slots_max);
            return 2;
        }
        return 0;
    }
    if (strcmp(verb, "recycle") == 0) {
        req->verb = ADMIN_RECYCLE;
        req->number = n == 2 ? admin_number(arg, 1, 0x7fffffff) : -1;
        if (req->number < 0) {
            snprintf(err, errsize, "recycle needs a worker pid");
            return 2;
        }
        return 0;
    }
    if (strcmp(verb, "stop") == 0) {
        req->verb = ADMIN_STOP;
        if (n == 2) {
            snprintf(err, errsize, "stop takes no argument");
            return 2;
        }
        return 0;
    }
    if (strcmp(verb, "upgrade") == 0) {
        req->verb = ADMIN_UPGRADE;
        if (n == 2) {
            snprintf(err, errsize, "upgrade takes no argument");
            return 2;
        }
        return 0;
    }
    snprintf(err, errsize, "unknown request '%s' (status, scale N, recycle PID, reload, stop, upgrade)", verb);
    return 2;
}
