/* supervisor/privilege.h - the `user` key (SPEC 3, 5): `verona serve`
 * started as root binds what it needs, then it and every worker it starts
 * run as that user, for good (no way back to root).
 */
#ifndef VERONA_SUPERVISOR_PRIVILEGE_H
#define VERONA_SUPERVISOR_PRIVILEGE_H

#include <stddef.h>
#include <sys/types.h>

struct privilege {
    int drop;           /* 1: started as root and `user` names another user */
    char name[64];
    char home[256];
    uid_t uid;
    gid_t gid;
};

/* Looks `user` up before anything is bound, so a wrong name fails at once.
 * Empty, or not started as root: nothing to drop (drop = 0; not root with
 * a user set is logged). Returns 0, or -1 with `err` (no such user). */
int privilege_plan(struct privilege *p, const char *user, char *err, size_t errsize);

/* Becomes the user: supplementary groups, group and user ids (real,
 * effective and saved), HOME; then checks root cannot be had back.
 * Returns 0, or -1 with `err`. */
int privilege_drop(const struct privilege *p, char *err, size_t errsize);

#endif
