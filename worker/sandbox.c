/* worker/sandbox.c - no_new_privs and the seccomp allow-list (libseccomp).
 *
 * The list is what a serving worker calls: the event loop (epoll, timers,
 * signals through a pipe), TCP and Unix sockets (clients, PostgreSQL, the
 * control socket), threads (libuv's pool hashes, the resolver), memory,
 * reading files (the resolver's /etc files, libpq's passfile, /proc/self)
 * and the clock. Everything else - exec, fork, ptrace, mount, opening a
 * file for writing, a raw or netlink socket, binding a port, sending a
 * signal to another process - traps: the handler writes one log line with
 * the call's number and the worker dies of SIGSYS.
 *
 * Found by strace of every test suite and checked by running them all with
 * the filter on (tests/fault/test_sandbox.c shows a forbidden call kills).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <seccomp.h>

#include "sandbox.h"

#if defined(__SANITIZE_ADDRESS__)
#define SANDBOX_SUPPORTED 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SANDBOX_SUPPORTED 0
#endif
#endif
#ifndef SANDBOX_SUPPORTED
#define SANDBOX_SUPPORTED 1
#endif

int sandbox_supported(void)
{
    return SANDBOX_SUPPORTED;
}

/* Allowed whatever their arguments. */
static const char *const sandbox_calls[] = {
    /* descriptors and files (opened read-only: see openat below) */
    "read", "write", "readv", "writev", "pread64", "pwrite64", "close", "fstat", "newfstatat", "stat", "lstat",
    "statx", "lseek", "fcntl", "dup", "dup2", "dup3", "pipe2", "access", "faccessat", "faccessat2",
    "readlink", "readlinkat", "getcwd", "getdents64",
    /* the event loop */
    "epoll_create1", "epoll_ctl", "epoll_wait", "epoll_pwait", "epoll_pwait2", "eventfd2", "poll", "ppoll",
    "select", "pselect6",
    /* sockets, once made */
    "accept", "accept4", "connect", "sendto", "recvfrom", "sendmsg", "recvmsg", "sendmmsg", "recvmmsg",
    "getsockopt", "setsockopt", "getsockname", "getpeername", "shutdown",
    /* memory */
    "brk", "mmap", "munmap", "mremap", "mprotect", "madvise", "mlock", "munlock", "membarrier",
    /* threads, signals, time */
    "futex", "set_robust_list", "get_robust_list", "rseq", "set_tid_address", "sched_yield",
    "sched_getaffinity", "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "sigaltstack", "restart_syscall",
    "clock_gettime", "clock_getres", "clock_nanosleep", "nanosleep", "gettimeofday", "time",
    "exit", "exit_group",
    /* who and where we are */
    "getpid", "gettid", "getppid", "getuid", "geteuid", "getgid", "getegid", "getgroups", "getresuid",
    "getresgid", "getpriority", "uname", "getrandom", "getrlimit", "prlimit64", "getrusage", "sysinfo",
};

static int sandbox_allow(scmp_filter_ctx ctx, const char *name, unsigned count, const struct scmp_arg_cmp *args)
{
    int nr = seccomp_syscall_resolve_name(name);

    if (nr == __NR_SCMP_ERROR)
        return 0; /* not a call on this architecture */
    return seccomp_rule_add_array(ctx, SCMP_ACT_ALLOW, nr, count, args);
}

static int sandbox_rules(scmp_filter_ctx ctx, const struct sandbox_scope *scope)
{
    int rc = 0;

    for (size_t i = 0; i < sizeof(sandbox_calls) / sizeof(sandbox_calls[0]) && rc == 0; i++)
        rc = sandbox_allow(ctx, sandbox_calls[i], 0, NULL);
    if (rc != 0)
        return rc;

    /* Files only for reading: a worker never writes one. */
    struct scmp_arg_cmp read_only[] = { SCMP_A2(SCMP_CMP_MASKED_EQ, O_ACCMODE | O_CREAT | O_TRUNC, O_RDONLY) };
    rc = sandbox_allow(ctx, "openat", 1, read_only);
    if (rc == 0) {
        struct scmp_arg_cmp open_read_only[] = { SCMP_A1(SCMP_CMP_MASKED_EQ, O_ACCMODE | O_CREAT | O_TRUNC,
                                                         O_RDONLY) };
        rc = sandbox_allow(ctx, "open", 1, open_read_only);
    }

    /* Threads, never processes. glibc tries clone3 first and falls back
     * to clone when it is missing: clone3's flags are behind a pointer,
     * where a filter cannot read them. */
    if (rc == 0) {
        struct scmp_arg_cmp thread[] = { SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD, CLONE_THREAD) };
        rc = sandbox_allow(ctx, "clone", 1, thread);
    }
    if (rc == 0 && seccomp_syscall_resolve_name("clone3") != __NR_SCMP_ERROR)
        rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), seccomp_syscall_resolve_name("clone3"), 0);

    /* Sockets of the three families a worker speaks (clients, PostgreSQL
     * over TCP or a Unix socket, DNS); no raw, packet or netlink socket. */
    static const int families[] = { AF_UNIX, AF_INET, AF_INET6 };
    for (size_t i = 0; i < sizeof(families) / sizeof(families[0]) && rc == 0; i++) {
        struct scmp_arg_cmp family[] = { SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)families[i]) };
        rc = sandbox_allow(ctx, "socket", 1, family);
    }

    /* The hashing threads lower their own priority (worker/auth.c). */
    if (rc == 0) {
        struct scmp_arg_cmp process[] = { SCMP_A0(SCMP_CMP_EQ, PRIO_PROCESS) };
        rc = sandbox_allow(ctx, "setpriority", 1, process);
    }

    /* Signals to itself only (raise, abort, libuv's wake-ups). */
    if (rc == 0) {
        struct scmp_arg_cmp self[] = { SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)getpid()) };
        rc = sandbox_allow(ctx, "tgkill", 1, self);
        if (rc == 0)
            rc = sandbox_allow(ctx, "kill", 1, self);
    }

    /* ioctl: non-blocking and close-on-exec switches, bytes waiting, and
     * the terminal check stdio makes. */
    static const unsigned long requests[] = { FIONBIO, FIOCLEX, FIONCLEX, FIONREAD, TCGETS };
    for (size_t i = 0; i < sizeof(requests) / sizeof(requests[0]) && rc == 0; i++) {
        struct scmp_arg_cmp request[] = { SCMP_A1(SCMP_CMP_EQ, (scmp_datum_t)requests[i]) };
        rc = sandbox_allow(ctx, "ioctl", 1, request);
    }

    /* listen on the shared socket only (accepting begins after the
     * filter is in place); never bind. */
    if (rc == 0 && scope->listen_fd >= 0) {
        struct scmp_arg_cmp shared[] = { SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)scope->listen_fd) };
        rc = sandbox_allow(ctx, "listen", 1, shared);
    }

    /* The hash gate, the one System V semaphore set a worker touches:
     * waits on it, and removes it when the supervisor died and left it. */
    static const char *const sem_calls[] = { "semop", "semtimedop", "semctl" };
    for (size_t i = 0; i < sizeof(sem_calls) / sizeof(sem_calls[0]) && rc == 0 && scope->hash_gate >= 0; i++) {
        struct scmp_arg_cmp gate[] = { SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)scope->hash_gate) };
        rc = sandbox_allow(ctx, sem_calls[i], 1, gate);
    }

    /* Waiting for a dying supervisor to finish dying (a pidfd of it). */
    if (rc == 0 && scope->supervisor > 0) {
        struct scmp_arg_cmp parent[] = { SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)scope->supervisor) };
        rc = sandbox_allow(ctx, "pidfd_open", 1, parent);
    }
    return rc;
}

/* Async-signal-safe: one log line with the call's number, then the
 * default action, so the worker dies of SIGSYS (its core, if enabled,
 * shows where). */
static void sandbox_on_sigsys(int sig, siginfo_t *info, void *context)
{
    char line[192], digits[24];
    size_t n, d = 0;
    unsigned long nr = info->si_syscall < 0 ? 0 : (unsigned long)info->si_syscall;
    static const char head[] = "{\"level\":\"error\",\"event\":\"forbidden_syscall\",\"syscall\":";
    static const char tail[] = ",\"hint\":\"not on the seccomp allow-list (worker/sandbox.c): the worker dies "
                               "and is replaced\"}\n";
    struct sigaction dfl;

    (void)context;
    memcpy(line, head, sizeof(head) - 1);
    n = sizeof(head) - 1;
    do {
        digits[d++] = (char)('0' + nr % 10);
        nr /= 10;
    } while (nr > 0 && d < sizeof(digits));
    while (d > 0)
        line[n++] = digits[--d];
    memcpy(line + n, tail, sizeof(tail) - 1);
    n += sizeof(tail) - 1;
    (void)!write(STDERR_FILENO, line, n);
    memset(&dfl, 0, sizeof(dfl));
    dfl.sa_handler = SIG_DFL;
    sigaction(sig, &dfl, NULL);
    raise(sig); /* delivered when the handler returns */
}

int sandbox_enter(const struct sandbox_scope *scope, char *err, size_t errlen)
{
    struct sigaction sa;
    scmp_filter_ctx ctx;
    int rc;

    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
        snprintf(err, errlen, "no_new_privs: %s", strerror(errno));
        return -1;
    }
    if (!SANDBOX_SUPPORTED)
        return 0;
    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = sandbox_on_sigsys;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGSYS, &sa, NULL) != 0) {
        snprintf(err, errlen, "SIGSYS handler: %s", strerror(errno));
        return -1;
    }
    ctx = seccomp_init(SCMP_ACT_TRAP);
    if (ctx == NULL) {
        snprintf(err, errlen, "seccomp_init failed");
        return -1;
    }
    /* Every thread (the resolver may already run), not only this one. */
    rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1);
    if (rc == 0)
        rc = sandbox_rules(ctx, scope);
    if (rc == 0)
        rc = seccomp_load(ctx);
    seccomp_release(ctx);
    if (rc != 0) {
        snprintf(err, errlen, "seccomp: %s", strerror(-rc));
        return -1;
    }
    return 0;
}
