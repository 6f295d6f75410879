/* tests/fuzz/fuzz_config.c - libFuzzer target for the config parser (the
 * file `verona serve -c` reads, and the settings message a worker gets):
 * any text must load or be refused with a message, without a crash, a
 * leak or undefined behaviour; what loads and passes config_finish() (as
 * `verona serve` needs) must render, and the rendering (what each worker
 * gets) must load and pass again, to the same rendering. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../proto/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct config cfg, again;
    char err[CONFIG_ERROR_MAX];
    char *text = malloc(size + 1), *rendered, *rerendered;

    if (text == NULL)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    config_defaults(&cfg);
    if (config_load_string(&cfg, text, "fuzz", err, sizeof(err)) != 0) {
        if (err[0] == '\0')
            abort(); /* refused without saying why */
        free(text);
        return 0;
    }
    if (config_finish(&cfg, err, sizeof(err)) != 0) {
        if (err[0] == '\0')
            abort();
        free(text);
        return 0; /* `verona serve` stops here: nothing is rendered */
    }
    rendered = config_render(&cfg);
    if (rendered != NULL) {
        config_defaults(&again);
        if (config_load_string(&again, rendered, "rendered", err, sizeof(err)) != 0)
            abort(); /* what was accepted must render to something accepted */
        if (config_finish(&again, err, sizeof(err)) != 0)
            abort(); /* nor to something that stops a worker */
        rerendered = config_render(&again);
        if (rerendered == NULL || strcmp(rendered, rerendered) != 0)
            abort();
        free(rerendered);
        free(rendered);
    }
    free(text);
    return 0;
}
