/* proto/nofile.c - see proto/nofile.h. */
#include "nofile.h"

#include <sys/resource.h>

long nofile_raise(long want)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return -1;
    if ((rlim_t)want <= rl.rlim_cur)
        return (long)rl.rlim_cur;
    rl.rlim_cur = rl.rlim_max != RLIM_INFINITY && (rlim_t)want > rl.rlim_max ? rl.rlim_max : (rlim_t)want;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0 && getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return -1;
    return (long)rl.rlim_cur;
}
