/* proto/log.h - the JSON log line both programs write to stderr.
 *
 * One object a line: {"ts","level","pid","event", ...fields}. Fields come
 * as a jansson object that the call takes ownership of (may be NULL).
 * Never pass a password or a token: nothing here can tell them apart.
 */
#ifndef VERONA_PROTO_LOG_H
#define VERONA_PROTO_LOG_H

#include <jansson.h>

enum log_level { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR };

/* Writes one line; steals `fields` (a JSON object or NULL). */
void log_emit(enum log_level level, const char *event, json_t *fields);

/* Lines below `level` are dropped (default LOG_INFO; VERONA_LOG_LEVEL=debug). */
void log_set_level(enum log_level level);

/* `text` as one line for stderr (libpq's messages span several): newlines
 * and tabs become spaces, trailing blanks go. Returns out. */
const char *log_one_line(char *out, size_t size, const char *text);

/* Frees what jansson allocated (json_dumps), whatever its allocator. */
void log_json_free(void *ptr);

#endif
