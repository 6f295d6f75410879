/* supervisor/textbuf.h - a growing text buffer for the answers the
 * supervisor builds (the metrics text, the status page). A failed
 * allocation marks the buffer failed; the caller checks once at the end.
 */
#ifndef VERONA_SUPERVISOR_TEXTBUF_H
#define VERONA_SUPERVISOR_TEXTBUF_H

#include <stddef.h>

struct textbuf {
    char *data;   /* NUL-terminated while not failed */
    size_t len, cap;
    int failed;
};

/* Starts empty with `cap` bytes (failed if that cannot be had). */
void textbuf_init(struct textbuf *b, size_t cap);

void textbuf_printf(struct textbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Appends `text` with &, <, >, " and ' escaped for HTML. */
void textbuf_html(struct textbuf *b, const char *text);

/* The text (the caller frees it), or NULL after a failure (freed). */
char *textbuf_take(struct textbuf *b);

#endif
