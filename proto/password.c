/* proto/password.c - username and password rules (proto/password.h). */
#include "password.h"

#include <ctype.h>
#include <string.h>
#include <zxcvbn.h>

/* log2(10^8): zxcvbn reports entropy in bits. */
#define PASSWORD_MIN_ENTROPY_BITS 26.5754

long password_utf8_length(const char *text, size_t len)
{
    const unsigned char *s = (const unsigned char *)text;
    long chars = 0;
    size_t i = 0;

    while (i < len) {
        unsigned char c = s[i];
        size_t n;
        unsigned long cp;

        if (c < 0x80) {
            n = 1;
            cp = c;
        } else if ((c & 0xe0) == 0xc0) {
            n = 2;
            cp = c & 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
            n = 3;
            cp = c & 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            n = 4;
            cp = c & 0x07;
        } else {
            return -1;
        }
        if (i + n > len)
            return -1;
        for (size_t k = 1; k < n; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return -1;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
            (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff || cp == 0)
            return -1;
        i += n;
        chars++;
    }
    return chars;
}

int password_username_valid(const char *username)
{
    size_t len = strlen(username);

    if (len == 0 || len > USERNAME_MAX)
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)username[i];
        if (!isalnum(c) && c != '.' && c != '_' && c != '@' && c != '+' && c != '-')
            return 0;
    }
    return 1;
}

/* Case-insensitive (ASCII) substring search. */
static int password_contains_folded(const char *haystack, const char *needle)
{
    size_t hl = strlen(haystack), nl = strlen(needle);

    if (nl == 0 || nl > hl)
        return 0;
    for (size_t i = 0; i + nl <= hl; i++) {
        size_t k = 0;
        while (k < nl && tolower((unsigned char)haystack[i + k]) == tolower((unsigned char)needle[k]))
            k++;
        if (k == nl)
            return 1;
    }
    return 0;
}

int password_weak_quick(const struct config *cfg, const char *password, const char *username)
{
    long chars = password_utf8_length(password, strlen(password));

    if (chars < cfg->password_min_length || chars > PASSWORD_MAX_CHARS)
        return 1;
    return username != NULL && password_contains_folded(password, username);
}

int password_weak(const struct config *cfg, const char *password, const char *username)
{
    const char *dict[2] = { username, NULL };
    double bits;

    if (password_weak_quick(cfg, password, username))
        return 1;
    bits = ZxcvbnMatch(password, username != NULL && username[0] != '\0' ? dict : NULL, NULL);
    return !(bits >= PASSWORD_MIN_ENTROPY_BITS);
}
