/* worker/http_request.c - a request as the server holds it
 * (worker/http.h, worker/http_internal.h): its headers, read by name; its
 * reset between requests; a request line of a method http_parser does not
 * know; the statuses' reason phrases.
 */
#include "http_internal.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

const char *http_status_text(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 411: return "Length Required";
    case 413: return "Payload Too Large";
    case 415: return "Unsupported Media Type";
    case 417: return "Expectation Failed";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return "Unknown";
    }
}

void http_request_reset(struct http_request *req)
{
    if (req->body != NULL)
        sodium_memzero(req->body, req->body_len);
    req->path = NULL;
    req->text_len = 0;
    req->header_count = 0;
    req->body_len = 0;
    req->keep_alive = 0;
    req->route_data = NULL;
    req->route = -1; /* none yet: the counters go by the path */
    req->start_ns = uv_hrtime();
}

const char *http_header_value(const struct http_request *req, const struct http_header *h)
{
    return h->value_len == 0 && h->value_off == 0 ? "" : req->text + h->value_off;
}

int http_request_expect(const struct http_request *req)
{
    int found = 0;

    for (int i = 0; i < req->header_count; i++) {
        const struct http_header *h = &req->headers[i];

        if (strcasecmp(req->text + h->name_off, "expect") != 0)
            continue;
        if (strcasecmp(http_header_value(req, h), "100-continue") != 0)
            return -1;
        found = 1;
    }
    return found;
}

const char *http_request_header(const struct http_request *req, const char *name)
{
    for (int i = 0; i < req->header_count; i++) {
        const struct http_header *h = &req->headers[i];
        if (strcasecmp(req->text + h->name_off, name) == 0)
            return http_header_value(req, h);
    }
    return NULL;
}

int http_request_header_count(const struct http_request *req, const char *name)
{
    int n = 0;

    for (int i = 0; i < req->header_count; i++)
        n += strcasecmp(req->text + req->headers[i].name_off, name) == 0;
    return n;
}

const char *http_request_header_all(const struct http_request *req, const char *name, char *buf, size_t size)
{
    size_t n = 0;
    int found = 0;

    if (size == 0)
        return NULL;
    buf[0] = '\0';
    for (int i = 0; i < req->header_count; i++) {
        const struct http_header *h = &req->headers[i];
        const char *value;
        int len;

        if (strcasecmp(req->text + h->name_off, name) != 0)
            continue;
        value = http_header_value(req, h);
        len = snprintf(buf + n, size - n, "%s%s", found ? ", " : "", value);
        if (len < 0 || (size_t)len >= size - n)
            return NULL; /* cannot happen within the header limit */
        n += (size_t)len;
        found = 1;
    }
    return found ? buf : NULL;
}

/* RFC 9110 5.6.2 token characters. */
static int http_is_tchar(unsigned char ch)
{
    return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
           (ch != '\0' && strchr("!#$%&'*+-.^_`|~", ch) != NULL);
}

/* A request line whose method http_parser does not know: the handler
 * answers it as any method its route does not allow (404 or 405 with
 * Allow). The rest of the request cannot be framed: the connection
 * closes after the answer. */
int http_request_line_unknown(const char *in, size_t len, struct http_request *req)
{
    const char *p = in, *end = in + len, *target, *stop;
    size_t method_len = 0, path_len;

    while (p < end && (*p == '\r' || *p == '\n'))
        p++;
    while (p + method_len < end && http_is_tchar((unsigned char)p[method_len]))
        method_len++;
    if (method_len == 0 || p + method_len >= end || p[method_len] != ' ')
        return -1;
    target = p + method_len + 1;
    stop = memchr(target, ' ', (size_t)(end - target));
    /* The whole line: " HTTP/1.0" or " HTTP/1.1", then CRLF (or LF). */
    if (stop == NULL || *target != '/' || end - stop < 10 ||
        (memcmp(stop, " HTTP/1.1", 9) != 0 && memcmp(stop, " HTTP/1.0", 9) != 0) ||
        !(stop[9] == '\n' || (stop[9] == '\r' && end - stop >= 11 && stop[10] == '\n')))
        return -1;
    path_len = 0;
    for (const char *t = target; t < stop; t++) {
        if ((unsigned char)*t <= 0x20 || (unsigned char)*t == 0x7f)
            return -1;
        if (*t == '?' && path_len == 0)
            path_len = (size_t)(t - target);
    }
    if (path_len == 0)
        path_len = (size_t)(stop - target);
    if (path_len >= sizeof(req->text))
        return -1;
    http_request_reset(req);
    memcpy(req->text, target, path_len);
    req->text[path_len] = '\0';
    req->text_len = (unsigned)path_len + 1;
    req->path = req->text;
    req->method = HTTP_METHOD_UNKNOWN;
    return 0;
}
