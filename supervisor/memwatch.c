/* supervisor/memwatch.c - RSS from /proc/PID/statm (one small read). */
#include "memwatch.h"

#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

uint64_t memwatch_rss_bytes(int pid)
{
    char path[64], buf[128];
    unsigned long long size, resident;
    ssize_t n;
    int fd;

    snprintf(path, sizeof(path), "/proc/%d/statm", pid);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    if (sscanf(buf, "%llu %llu", &size, &resident) != 2)
        return 0;
    return (uint64_t)resident * (uint64_t)sysconf(_SC_PAGESIZE);
}
