/* proto/config_doc.c - the key table written for people: the example
 * config (`verona config-example`, deploy/verona.conf) and the key list
 * of verona.conf(5).
 */
#include "config_keys.h"

#include <stdio.h>
#include <string.h>

#define CONFIG_KEY_COUNT config_key_count

void config_write_example(FILE *out)
{
    fprintf(out, "# Verona configuration: every key with its default.\n"
                 "# Relative paths resolve against this file's folder.\n"
                 "# An unknown key or a bad value stops `verona serve` with FILE:LINE.\n\n");
    for (size_t i = 0; i < CONFIG_KEY_COUNT; i++)
        fprintf(out, "# %s\n# %s = %s\n\n", config_keys[i].help, config_keys[i].name,
                config_keys[i].def);
}

/* Writes the `len` bytes at `text` as roff text: a backslash as \e, a
 * hyphen as \- (what a reader types: verona-worker, X-Forwarded-For) or,
 * between two digits, an en dash (a range: 1-128), non-ASCII UTF-8 as
 * \[uXXXX] (a malformed byte as U+FFFD), and a line that would start with
 * a dot, an apostrophe or a blank (a request, or a break) guarded by \&. */
static void config_man_escape(FILE *out, const char *text, size_t len)
{
    const unsigned char *p = (const unsigned char *)text, *end = p + len;
    int line_start = 1;

    while (p < end) {
        unsigned char c = *p;

        if (line_start && (c == '.' || c == '\'' || c == ' ' || c == '\t'))
            fputs("\\&", out);
        line_start = c == '\n';
        if (c == '\\') {
            fputs("\\e", out);
        } else if (c == '-') {
            int range = p > (const unsigned char *)text && p + 1 < end && p[-1] >= '0' && p[-1] <= '9' &&
                        p[1] >= '0' && p[1] <= '9';
            fputs(range ? "\\(en" : "\\-", out);
        } else if (c >= 0x80) {
            int n = c >= 0xf0 && c <= 0xf4 ? 4 : c >= 0xe0 && c <= 0xef ? 3 : c >= 0xc2 && c <= 0xdf ? 2 : 1;
            unsigned long cp = n == 4 ? c & 0x07u : n == 3 ? c & 0x0fu : c & 0x1fu;

            for (int i = 1; i < n; i++) {
                if (p + i >= end || (p[i] & 0xc0) != 0x80) {
                    n = 1;
                    break;
                }
                cp = cp << 6 | (p[i] & 0x3fu);
            }
            if (n == 1 || (n == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
                (n == 4 && (cp < 0x10000 || cp > 0x10ffff))) {
                cp = 0xfffd;
                n = 1;
            }
            fprintf(out, "\\[u%04lX]", cp);
            p += n;
            continue;
        } else {
            fputc(c, out);
        }
        p++;
    }
}

/* A bound: a negative one with a minus sign, not a hyphen. */
static void config_man_number(FILE *out, long v)
{
    if (v < 0)
        fprintf(out, "\\-%lu", 0UL - (unsigned long)v);
    else
        fprintf(out, "%ld", v);
}

/* config_man_escape() of a whole string. */
static void config_man_text(FILE *out, const char *text)
{
    config_man_escape(out, text, strlen(text));
}

void config_write_man(FILE *out)
{
    /* The form of a value, for the tag (roff already). */
    static const char *const forms[] = {
        [CONFIG_INT] = "\\fIinteger\\fR",
        [CONFIG_STRING] = "\\fItext\\fR",
        [CONFIG_PATH] = "\\fIpath\\fR",
        [CONFIG_ADDRESS] = "\\fIhost\\fR:\\fIport\\fR",
        [CONFIG_RATE] = "\\fIcount\\fR/\\fIseconds\\fR",
        [CONFIG_CIDRS] = "\\fInetwork\\fR[, \\fInetwork\\fR ...]",
        [CONFIG_CHOICE] = "", /* its choices instead */
    };

    for (size_t i = 0; i < CONFIG_KEY_COUNT; i++) {
        const struct config_key *key = &config_keys[i];
        size_t help_len = strlen(key->help);

        /* The tag: name = form, or name = \fBopen\fR | \fBclosed\fR. */
        fputs(".TP\n\\fB", out);
        config_man_text(out, key->name);
        fprintf(out, "\\fR = %s", forms[key->type]);
        for (const char *p = key->type == CONFIG_CHOICE ? key->choices : ""; *p != '\0';) {
            size_t len = strcspn(p, " ");

            fputs(p == key->choices ? "\\fB" : " | \\fB", out);
            config_man_escape(out, p, len);
            fputs("\\fR", out);
            p += len;
            p += strspn(p, " ");
        }
        /* The help, a sentence; then the default and the bounds. */
        fputc('\n', out);
        if (help_len > 0) {
            config_man_text(out, key->help);
            fputs(key->help[help_len - 1] == '.' ? "\n.br\n" : ".\n.br\n", out);
        }
        fputs("Default: ", out);
        if (key->def[0] == '\0') {
            fputs("empty", out);
        } else {
            fputs("\\fB", out);
            config_man_text(out, key->def);
            fputs("\\fR", out);
        }
        fputc('.', out);
        if (key->type == CONFIG_INT || key->type == CONFIG_RATE) {
            if (key->type == CONFIG_RATE)
                fprintf(out, " Range: \\fIcount\\fR %d\\(en%d, \\fIseconds\\fR ", CONFIG_RATE_COUNT_MIN,
                        CONFIG_RATE_COUNT_MAX);
            else
                fputs(" Range: ", out);
            config_man_number(out, key->min);
            fputs("\\(en", out);
            config_man_number(out, key->max);
            fputc('.', out);
        } else if (key->type == CONFIG_CIDRS) {
            fprintf(out, " At most %d networks.", CONFIG_CIDR_MAX);
        }
        fputc('\n', out);
    }
}
