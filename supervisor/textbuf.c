/* supervisor/textbuf.c - see textbuf.h. */
#include "textbuf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void textbuf_init(struct textbuf *b, size_t cap)
{
    b->data = malloc(cap);
    b->len = 0;
    b->cap = cap;
    b->failed = b->data == NULL;
    if (b->data != NULL)
        b->data[0] = '\0';
}

void textbuf_printf(struct textbuf *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (b->failed)
        return;
    for (;;) {
        va_start(ap, fmt);
        n = vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->failed = 1;
            return;
        }
        if ((size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        {
            size_t cap = (b->cap + (size_t)n) * 2;
            char *bigger = realloc(b->data, cap);

            if (bigger == NULL) {
                b->failed = 1;
                return;
            }
            b->data = bigger;
            b->cap = cap;
        }
    }
}

void textbuf_html(struct textbuf *b, const char *text)
{
    for (const char *p = text; *p != '\0' && !b->failed; p++) {
        switch (*p) {
        case '&':
            textbuf_printf(b, "&amp;");
            break;
        case '<':
            textbuf_printf(b, "&lt;");
            break;
        case '>':
            textbuf_printf(b, "&gt;");
            break;
        case '"':
            textbuf_printf(b, "&quot;");
            break;
        case '\'':
            textbuf_printf(b, "&#39;");
            break;
        default:
            textbuf_printf(b, "%c", *p);
        }
    }
}

char *textbuf_take(struct textbuf *b)
{
    char *text = b->data;

    if (b->failed) {
        free(b->data);
        text = NULL;
    }
    b->data = NULL;
    b->len = b->cap = 0;
    return text;
}
