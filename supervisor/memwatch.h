/* supervisor/memwatch.h - a worker's resident memory, read by the
 * supervisor itself from /proc (a worker's own word is not needed). */
#ifndef VERONA_SUPERVISOR_MEMWATCH_H
#define VERONA_SUPERVISOR_MEMWATCH_H

#include <stdint.h>

/* RSS of `pid` in bytes, or 0 when it cannot be read (the process is gone). */
uint64_t memwatch_rss_bytes(int pid);

#endif
