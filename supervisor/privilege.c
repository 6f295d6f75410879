/* supervisor/privilege.c - dropping root for the `user` key. */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../proto/log.h"
#include "privilege.h"

int privilege_plan(struct privilege *p, const char *user, char *err, size_t errsize)
{
    struct passwd pw, *found = NULL;
    char buf[4096];
    int rc;

    memset(p, 0, sizeof(*p));
    if (user[0] == '\0')
        return 0;
    rc = getpwnam_r(user, &pw, buf, sizeof(buf), &found);
    if (found == NULL) {
        snprintf(err, errsize, "user: no user '%.63s'%s%s", user, rc != 0 ? ": " : "", rc != 0 ? strerror(rc) : "");
        return -1;
    }
    if (geteuid() != 0) {
        if (found->pw_uid != geteuid())
            log_emit(LOG_WARN, "user_ignored",
                     json_pack("{s:s, s:s}", "user", user, "reason", "verona serve was not started as root"));
        return 0;
    }
    if (found->pw_uid == 0)
        return 0; /* root asked to stay root */
    p->drop = 1;
    snprintf(p->name, sizeof(p->name), "%s", found->pw_name);
    snprintf(p->home, sizeof(p->home), "%s", found->pw_dir != NULL ? found->pw_dir : "/");
    p->uid = found->pw_uid;
    p->gid = found->pw_gid;
    return 0;
}

int privilege_drop(const struct privilege *p, char *err, size_t errsize)
{
    uid_t ruid, euid, suid;
    gid_t rgid, egid, sgid;

    if (!p->drop)
        return 0;
    if (initgroups(p->name, p->gid) != 0) {
        snprintf(err, errsize, "user %s: supplementary groups: %s", p->name, strerror(errno));
        return -1;
    }
    if (setresgid(p->gid, p->gid, p->gid) != 0) {
        snprintf(err, errsize, "user %s: group %d: %s", p->name, (int)p->gid, strerror(errno));
        return -1;
    }
    if (setresuid(p->uid, p->uid, p->uid) != 0) {
        snprintf(err, errsize, "user %s: uid %d: %s", p->name, (int)p->uid, strerror(errno));
        return -1;
    }
    /* No way back: every id is the user's, and root cannot be had again. */
    if (getresuid(&ruid, &euid, &suid) != 0 || getresgid(&rgid, &egid, &sgid) != 0 || ruid != p->uid ||
        euid != p->uid || suid != p->uid || rgid != p->gid || egid != p->gid || sgid != p->gid ||
        setuid(0) == 0) {
        snprintf(err, errsize, "user %s: the ids did not change for good", p->name);
        return -1;
    }
    /* libpq and anything else looking for the user's files. */
    setenv("HOME", p->home, 1);
    setenv("USER", p->name, 1);
    setenv("LOGNAME", p->name, 1);
    log_emit(LOG_INFO, "privileges_dropped",
             json_pack("{s:s, s:i, s:i}", "user", p->name, "uid", (int)p->uid, "gid", (int)p->gid));
    return 0;
}
