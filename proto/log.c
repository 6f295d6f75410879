/* proto/log.c - writes the JSON log line of proto/log.h.
 * A line is built whole in memory and written with one write(2), so lines
 * from several processes sharing stderr never interleave mid-line.
 */
#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static enum log_level log_min_level = LOG_INFO;

static const char *const log_level_names[] = { "debug", "info", "warn", "error" };

void log_json_free(void *ptr)
{
    json_malloc_t malloc_fn;
    json_free_t free_fn;

    json_get_alloc_funcs(&malloc_fn, &free_fn);
    free_fn(ptr);
}

void log_set_level(enum log_level level)
{
    log_min_level = level;
}

static void log_timestamp(char *buf, size_t size)
{
    struct timespec now;
    struct tm tm;

    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    snprintf(buf, size, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
             now.tv_nsec / 1000000L);
}

void log_emit(enum log_level level, const char *event, json_t *fields)
{
    char ts[96];
    json_t *line;
    char *text;
    size_t len;

    if (level < log_min_level) {
        json_decref(fields);
        return;
    }
    log_timestamp(ts, sizeof(ts));
    line = json_object();
    if (line == NULL) {
        json_decref(fields);
        return;
    }
    json_object_set_new(line, "ts", json_string(ts));
    json_object_set_new(line, "level", json_string(log_level_names[level]));
    json_object_set_new(line, "pid", json_integer(getpid()));
    json_object_set_new(line, "event", json_string(event));
    if (fields != NULL && json_is_object(fields))
        json_object_update_missing(line, fields);
    json_decref(fields);

    text = json_dumps(line, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(line);
    if (text == NULL)
        return;
    len = strlen(text);
    text[len] = '\n'; /* the NUL becomes the newline; it is not needed */
    (void)!write(STDERR_FILENO, text, len + 1);
    log_json_free(text);
}

const char *log_one_line(char *out, size_t size, const char *text)
{
    size_t n = 0;

    if (size == 0)
        return out;
    for (; text != NULL && *text != '\0' && n + 1 < size; text++) {
        char ch = (*text == '\n' || *text == '\r' || *text == '\t') ? ' ' : *text;

        if (ch != ' ' || (n > 0 && out[n - 1] != ' '))
            out[n++] = ch;
    }
    while (n > 0 && out[n - 1] == ' ')
        n--;
    out[n] = '\0';
    return out;
}
