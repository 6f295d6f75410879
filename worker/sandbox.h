/* worker/sandbox.h - least privilege for a serving worker (SPEC 5):
 * no_new_privs and a seccomp allow-list of the system calls a worker
 * makes once it serves. A call outside the list logs its number and kills
 * the worker with SIGSYS; the supervisor replaces it like any crash.
 */
#ifndef VERONA_WORKER_SANDBOX_H
#define VERONA_WORKER_SANDBOX_H

#include <stddef.h>
#include <sys/types.h>

/* 1 when this build loads the filter: not under AddressSanitizer, whose
 * leak check at exit needs ptrace (SPEC 10.10). */
int sandbox_supported(void);

/* What some calls are allowed on; -1 (or 0 for the pid): nothing. */
struct sandbox_scope {
    int listen_fd;      /* `listen` on the shared socket */
    int hash_gate;      /* semop and semctl on the hash gate (proto/hash_gate.h) */
    pid_t supervisor;   /* pidfd_open of the supervisor (worker/control.c) */
};

/* Sets no_new_privs and loads the allow-list for every thread of the
 * process. Returns 0, or -1 with `err` filled. */
int sandbox_enter(const struct sandbox_scope *scope, char *err, size_t errlen);

#endif
