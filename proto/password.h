/* proto/password.h - the username and password rules both programs apply
 * (the worker on registration and change, `verona user` for operators):
 * SPEC.md sections 4 and 5.
 */
#ifndef VERONA_PROTO_PASSWORD_H
#define VERONA_PROTO_PASSWORD_H

#include <stddef.h>

#include "config.h"

#define PASSWORD_MAX_CHARS 1024
#define PASSWORD_MAX_BYTES (PASSWORD_MAX_CHARS * 4)
#define USERNAME_MAX 64

/* Characters of valid UTF-8 text (no NUL, no surrogates, no overlong
 * forms), or -1 when it is not valid UTF-8. */
long password_utf8_length(const char *text, size_t len);

/* 1 when the username has 1-64 bytes of [A-Za-z0-9._@+-]. */
int password_username_valid(const char *username);

/* The cheap rules: length in characters, and containing the username
 * (case-insensitive; `username` may be NULL). 1 = weak. */
int password_weak_quick(const struct config *cfg, const char *password, const char *username);

/* The cheap rules, then zxcvbn: fewer than 10^8 estimated guesses is weak.
 * Costs up to milliseconds: keep it off an event loop. */
int password_weak(const struct config *cfg, const char *password, const char *username);

#endif
