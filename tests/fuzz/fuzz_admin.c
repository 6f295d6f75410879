/* tests/fuzz/fuzz_admin.c - libFuzzer target for the admin socket's
 * request line (supervisor/admin_request.c): any line must parse or be
 * refused with exit code 2 and a message, without a crash or undefined
 * behaviour; what parses is one of the requests of supervisor/admin.h. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../supervisor/admin.h"
#include "../../supervisor/admin_request.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char line[ADMIN_REQUEST_MAX + 1], err[128];
    struct admin_request req;
    int rc;

    /* What the socket hands over: at most ADMIN_REQUEST_MAX bytes, NUL-free. */
    if (size > ADMIN_REQUEST_MAX || memchr(data, '\0', size) != NULL)
        return 0;
    memcpy(line, data, size);
    line[size] = '\0';
    err[0] = '\0';
    rc = admin_request_parse(line, 128, &req, err, sizeof(err));
    if (rc != 0 && (rc != 2 || err[0] == '\0'))
        abort();
    if (rc == 0 && ((req.verb == ADMIN_SCALE && (req.number < 1 || req.number > 128)) ||
                    (req.verb == ADMIN_RECYCLE && req.number < 1)))
        abort();
    return 0;
}
