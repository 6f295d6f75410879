/* proto/config_address.c - the values with a grammar of their own:
 * bounded integers, host:port addresses and CIDR networks (config.h).
 */
#include "config_keys.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

int config_parse_long(const char *text, long min, long max, long *out)
{
    char *end;
    long v;

    if (*text == '\0')
        return -1;
    errno = 0;
    v = strtol(text, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

/* Splits host:port or [v6]:port; the host must be a numeric address. */
int config_address_parse(const char *text, void *out)
{
    struct sockaddr_storage *ss = out;
    char host[64];
    const char *colon;
    size_t hostlen;
    long port;
    int bracketed = text[0] == '[';

    memset(ss, 0, sizeof(*ss));
    if (bracketed) {
        const char *close = strchr(text, ']');
        if (close == NULL || close[1] != ':')
            return -1;
        hostlen = (size_t)(close - text - 1);
        colon = close + 1;
        text++;
    } else {
        colon = strrchr(text, ':');
        if (colon == NULL)
            return -1;
        hostlen = (size_t)(colon - text);
    }
    if (hostlen == 0 || hostlen >= sizeof(host) || config_parse_long(colon + 1, 1, 65535, &port) != 0)
        return -1;
    memcpy(host, text, hostlen);
    host[hostlen] = '\0';
    if (!bracketed && inet_pton(AF_INET, host, &((struct sockaddr_in *)ss)->sin_addr) == 1) {
        ((struct sockaddr_in *)ss)->sin_family = AF_INET;
        ((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
        return 0;
    }
    if (bracketed && inet_pton(AF_INET6, host, &((struct sockaddr_in6 *)ss)->sin6_addr) == 1) {
        ((struct sockaddr_in6 *)ss)->sin6_family = AF_INET6;
        ((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
        return 0;
    }
    return -1;
}

int config_address_valid(const char *text)
{
    struct sockaddr_storage ss;

    return config_address_parse(text, &ss) == 0;
}

int config_cidr_parse(const char *text, struct config_cidr *out)
{
    char buf[80];
    char *slash;
    long prefix;
    int maxprefix;

    if (strlen(text) >= sizeof(buf))
        return -1;
    strcpy(buf, text);
    slash = strchr(buf, '/');
    if (slash != NULL)
        *slash = '\0';
    memset(out, 0, sizeof(*out));
    if (inet_pton(AF_INET, buf, out->addr) == 1) {
        out->family = AF_INET;
        maxprefix = 32;
    } else if (inet_pton(AF_INET6, buf, out->addr) == 1) {
        out->family = AF_INET6;
        maxprefix = 128;
    } else {
        return -1;
    }
    prefix = maxprefix;
    if (slash != NULL && config_parse_long(slash + 1, 0, maxprefix, &prefix) != 0)
        return -1;
    out->prefix = (int)prefix;
    return 0;
}

int config_cidr_contains(const struct config_cidr *net, int family, const unsigned char *addr)
{
    int full, rest;

    if (net->family != family)
        return 0;
    full = net->prefix / 8;
    rest = net->prefix % 8;
    if (memcmp(net->addr, addr, (size_t)full) != 0)
        return 0;
    if (rest != 0) {
        unsigned char mask = (unsigned char)(0xff << (8 - rest));
        if ((net->addr[full] & mask) != (addr[full] & mask))
            return 0;
    }
    return 1;
}

/* Splits a CIDR list on commas and blanks; fills cfg->trusted_proxy. */
