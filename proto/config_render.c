/* proto/config_render.c - a config as config lines (what each worker
 * gets over the control socket, and `verona ctl` shows), and whether a
 * value survives that trip.
 */
#include "config_keys.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CONFIG_KEY_COUNT config_key_count

/*
 * Whether "name = value" reads back as the same value: inih strips the
 * spaces around a value, cuts it at ';' after a space (an inline comment:
 * the " = " before the value counts) and reads a line at a time. A file
 * cannot produce such a value, but the environment's URL and config_set()
 * can, and the workers get their settings rendered.
 */
bool config_value_renders(const char *value)
{
    size_t len = strlen(value);

    if (len == 0)
        return true;
    if (isspace((unsigned char)value[0]) || isspace((unsigned char)value[len - 1]) || value[0] == ';')
        return false;
    for (size_t i = 0; i < len; i++) {
        if (value[i] == '\n' || value[i] == '\r')
            return false;
        if (value[i] == ';' && i > 0 && isspace((unsigned char)value[i - 1]))
            return false;
    }
    return true;
}

void config_render_value(const struct config *cfg, const struct config_key *key, char *buf, size_t size)
{
    const char *field = (const char *)cfg + key->offset;

    switch (key->type) {
    case CONFIG_INT:
        snprintf(buf, size, "%d", *(const int *)field);
        break;
    case CONFIG_RATE: {
        const struct config_rate *rate = (const struct config_rate *)field;
        snprintf(buf, size, "%d/%d", rate->count, rate->seconds);
        break;
    }
    default:
        snprintf(buf, size, "%s", field);
        break;
    }
}

/* Appends "name = value\n" to out (*len bytes of *cap); 0, or -1 with
 * *out freed when memory runs out. */
static int config_render_line(char **out, size_t *len, size_t *cap, const char *name, const char *value)
{
    int n = snprintf(NULL, 0, "%s = %s\n", name, value);

    if (*len + (size_t)n + 1 > *cap) {
        size_t want = (*len + (size_t)n + 1) * 2;
        char *bigger = realloc(*out, want);

        if (bigger == NULL) {
            free(*out);
            *out = NULL;
            return -1;
        }
        *out = bigger;
        *cap = want;
    }
    snprintf(*out + *len, *cap - *len, "%s = %s\n", name, value);
    *len += (size_t)n;
    return 0;
}

/* A network list as lines that each fit CONFIG_LINE_MAX (read back, the
 * repeated key appends). */
static int config_render_cidrs(char **out, size_t *len, size_t *cap, const struct config_key *key,
                               const char *field)
{
    char list[sizeof(((struct config *)0)->trusted_proxies)], line[CONFIG_LINE_MAX + 1] = "";
    size_t room = CONFIG_LINE_MAX - strlen(key->name) - strlen(" = ");
    char *save = NULL;

    snprintf(list, sizeof(list), "%s", field);
    for (char *tok = strtok_r(list, ", \t", &save); tok != NULL; tok = strtok_r(NULL, ", \t", &save)) {
        if (line[0] != '\0' && strlen(line) + 2 + strlen(tok) > room) {
            if (config_render_line(out, len, cap, key->name, line) != 0)
                return -1;
            line[0] = '\0';
        }
        snprintf(line + strlen(line), sizeof(line) - strlen(line), "%s%s", line[0] != '\0' ? ", " : "", tok);
    }
    return config_render_line(out, len, cap, key->name, line);
}

char *config_render(const struct config *cfg)
{
    size_t cap = 8192, len = 0;
    char *out = malloc(cap);
    char value[PATH_MAX + 64];

    if (out == NULL)
        return NULL;
    for (size_t i = 0; i < CONFIG_KEY_COUNT; i++) {
        int rc;

        if (config_keys[i].type == CONFIG_CIDRS) {
            rc = config_render_cidrs(&out, &len, &cap, &config_keys[i], (const char *)cfg + config_keys[i].offset);
        } else {
            config_render_value(cfg, &config_keys[i], value, sizeof(value));
            rc = config_render_line(&out, &len, &cap, config_keys[i].name, value);
        }
        if (rc != 0)
            return NULL;
    }
    out[len] = '\0';
    return out;
}

