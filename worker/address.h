/* worker/address.h - the client address a request is throttled and
 * audited under (SPEC.md section 5): the TCP peer, or behind a trusted
 * proxy the right-most X-Forwarded-For entry that is not a trusted proxy;
 * IPv6 addresses are reduced to their /64.
 */
#ifndef VERONA_WORKER_ADDRESS_H
#define VERONA_WORKER_ADDRESS_H

#include <stddef.h>
#include <sys/socket.h>

#include "../proto/config.h"

#define ADDRESS_TEXT_MAX 64

/* Writes the throttle key of the client into `out` (at least
 * ADDRESS_TEXT_MAX bytes). `xff` may be NULL. */
void address_client(const struct config *cfg, const struct sockaddr_storage *peer, const char *xff,
                    char *out, size_t size);

#endif
