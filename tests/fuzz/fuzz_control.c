/* tests/fuzz/fuzz_control.c - libFuzzer target for the control protocol
 * decoder: any bytes must decode, ask for more, or be refused, without a
 * crash, a leak or undefined behaviour; what decodes must re-encode. */
#include <stdint.h>
#include <stdlib.h>

#include "../../proto/control.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct control_msg msg;
    char err[256];
    long n = control_msg_decode((const char *)data, size, &msg, err, sizeof(err));

    if (n > 0) {
        char *frame;
        size_t len;
        if (control_msg_encode(&msg, &frame, &len) == 0)
            free(frame);
        control_msg_fini(&msg);
    }
    return 0;
}
