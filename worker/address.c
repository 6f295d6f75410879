/* worker/address.c - client addresses (worker/address.h). */
#include "address.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

/* Address bytes of a text address; returns the family or 0. */
static int address_parse(const char *text, unsigned char *bytes)
{
    if (inet_pton(AF_INET, text, bytes) == 1)
        return AF_INET;
    if (inet_pton(AF_INET6, text, bytes) == 1)
        return AF_INET6;
    return 0;
}

/* An IPv4-mapped IPv6 address (::ffff:a.b.c.d, what a dual-stack
 * listener on [::]:PORT sees of an IPv4 peer) is the IPv4 address it
 * carries: family and bytes are changed to that. */
static void address_unmap(int *family, const unsigned char **bytes)
{
    static const unsigned char mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

    if (*family == AF_INET6 && memcmp(*bytes, mapped, sizeof(mapped)) == 0) {
        *family = AF_INET;
        *bytes += 12;
    }
}

/* IPv4 as it is; IPv6 masked to /64. */
static void address_format(int family, const unsigned char *bytes, char *out, size_t size)
{
    unsigned char net[16];
    char text[INET6_ADDRSTRLEN];

    address_unmap(&family, &bytes);
    if (family == AF_INET) {
        inet_ntop(AF_INET, bytes, text, sizeof(text));
        snprintf(out, size, "%s", text);
        return;
    }
    memcpy(net, bytes, 8);
    memset(net + 8, 0, 8);
    inet_ntop(AF_INET6, net, text, sizeof(text));
    snprintf(out, size, "%s/64", text);
}

static int address_trusted(const struct config *cfg, int family, const unsigned char *bytes)
{
    address_unmap(&family, &bytes);
    for (int i = 0; i < cfg->trusted_proxy_count; i++)
        if (config_cidr_contains(&cfg->trusted_proxy[i], family, bytes))
            return 1;
    return 0;
}

void address_client(const struct config *cfg, const struct sockaddr_storage *peer, const char *xff,
                    char *out, size_t size)
{
    unsigned char bytes[16];
    int family;

    if (peer->ss_family == AF_INET) {
        family = AF_INET;
        memcpy(bytes, &((const struct sockaddr_in *)peer)->sin_addr, 4);
    } else if (peer->ss_family == AF_INET6) {
        family = AF_INET6;
        memcpy(bytes, &((const struct sockaddr_in6 *)peer)->sin6_addr, 16);
    } else {
        snprintf(out, size, "unknown");
        return;
    }

    /* Walk X-Forwarded-For from the right while the hop is trusted. */
    if (xff != NULL && address_trusted(cfg, family, bytes)) {
        size_t end = strlen(xff);
        while (end > 0) {
            size_t start = end;
            char hop[INET6_ADDRSTRLEN + 1];
            unsigned char hop_bytes[16];
            size_t a, b;
            int hop_family;

            while (start > 0 && xff[start - 1] != ',')
                start--;
            a = start;
            b = end;
            while (a < b && (xff[a] == ' ' || xff[a] == '\t'))
                a++;
            while (b > a && (xff[b - 1] == ' ' || xff[b - 1] == '\t'))
                b--;
            end = start > 0 ? start - 1 : 0;
            if (b - a == 0 || b - a >= sizeof(hop))
                break; /* an unusable hop: stop at the last trusted one */
            memcpy(hop, xff + a, b - a);
            hop[b - a] = '\0';
            hop_family = address_parse(hop, hop_bytes);
            if (hop_family == 0)
                break;
            family = hop_family;
            memcpy(bytes, hop_bytes, 16);
            if (!address_trusted(cfg, family, bytes))
                break;
            if (start == 0)
                break;
        }
    }
    address_format(family, bytes, out, size);
}
