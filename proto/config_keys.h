/* proto/config_keys.h - inside proto/: the table of configuration keys
 * (proto/config_keys.c) and what the files of proto/config*.c share.
 * Outside proto/, proto/config.h is the interface.
 */
#ifndef VERONA_PROTO_CONFIG_KEYS_H
#define VERONA_PROTO_CONFIG_KEYS_H

#include <ini.h>
#include <stdbool.h>
#include <stddef.h>

#include "config.h"

/* inih reads each line into a buffer of INI_MAX_LINE bytes (Debian builds
 * it without growing the buffer): bytes a line may hold before its newline. */
#define CONFIG_LINE_MAX (INI_MAX_LINE - 2)

enum config_type {
    CONFIG_INT = 0,  /* decimal integer within [min, max] */
    CONFIG_STRING,   /* free text, bounded by the field's size */
    CONFIG_PATH,     /* text; relative paths resolve against the file's folder */
    CONFIG_ADDRESS,  /* host:port, [v6]:port */
    CONFIG_RATE,     /* count/seconds */
    CONFIG_CIDRS,    /* comma or space separated CIDR list */
    CONFIG_CHOICE,   /* one word of `choices` */
};

struct config_key {
    const char *name;
    enum config_type type;
    size_t offset;
    size_t size;        /* for text fields */
    long min, max;      /* for CONFIG_INT and CONFIG_RATE parts */
    const char *def;    /* default in text form; "" = empty/automatic */
    const char *choices;
    const char *help;
};

/* The COUNT of a CONFIG_RATE ("COUNT/SECONDS"); its SECONDS are bounded by
 * the key's min and max. */
#define CONFIG_RATE_COUNT_MIN 1
#define CONFIG_RATE_COUNT_MAX 1000000

extern const struct config_key config_keys[];
extern const size_t config_key_count;

/* The key named `name`, or NULL. */
const struct config_key *config_key_find(const char *name);

/* 1 when `text` is a host:port or [v6]:port that config_address_parse takes. */
int config_address_valid(const char *text);

/* A key's value as its config line shows it, into buf. */
void config_render_value(const struct config *cfg, const struct config_key *key, char *buf, size_t size);

/* Whether "name = value" reads back as the same value (proto/config_render.c). */
bool config_value_renders(const char *value);

#endif
