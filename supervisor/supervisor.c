/* supervisor/supervisor.c - what the running supervisor does on its own
 * and on request (signals, the admin socket): the health tick, reload
 * (a rolling restart onto the build and config now on disk), graceful
 * and immediate stop. serve.c sets it up; admin.c and the signals ask.
 */
#include "supervisor.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "../proto/log.h"
#include "cli.h"

#define SUPERVISOR_QUIT_GRACE_MS 2000

/* Ends the loop once every worker is gone. */
static void supervisor_maybe_finish(struct supervisor *sup)
{
    if (sup->state == SUPERVISOR_RUNNING || pool_live_count(&sup->pool) > 0)
        return;
    log_emit(LOG_INFO, "supervisor_exit", NULL);
    uv_stop(sup->loop);
}

void supervisor_on_tick(uv_timer_t *t)
{
    struct supervisor *sup = t->data;

    if (sup->state == SUPERVISOR_RUNNING) {
        pool_tick(&sup->pool);
        notify_tick(&sup->notify, sup);
    }
    supervisor_maybe_finish(sup);
}

static void supervisor_on_stop_deadline(uv_timer_t *t)
{
    struct supervisor *sup = t->data;

    log_emit(LOG_WARN, "stop_deadline", json_pack("{s:i}", "workers_left", pool_live_count(&sup->pool)));
    pool_stop(&sup->pool, 1);
}

static int supervisor_try_reload(struct supervisor *sup, char *err, size_t errsize)
{
    struct config cfg;
    struct build *build;
    char cerr[CONFIG_ERROR_MAX];
    const char *path = NULL;
    int old_target;

    if (sup->state != SUPERVISOR_RUNNING) {
        snprintf(err, errsize, "stopping");
        return 1;
    }
    if (rollout_active(&sup->pool.rollout)) {
        snprintf(err, errsize, "rollout in progress");
        return 1;
    }
    if (upgrade_running(&sup->upgrade)) {
        snprintf(err, errsize, "upgrade in progress");
        return 1;
    }
    /* The file serve read at start: -c, else the default path (also one
     * created since). */
    if (sup->config_path[0] != '\0')
        path = sup->config_path;
    else if (access(CLI_DEFAULT_CONFIG, F_OK) == 0)
        path = CLI_DEFAULT_CONFIG;
    config_defaults(&cfg);
    if ((path != NULL && config_load_file(&cfg, path, cerr, sizeof(cerr)) != 0) ||
        config_finish(&cfg, cerr, sizeof(cerr)) != 0) {
        snprintf(err, errsize, "config refused, pool unchanged: %s", cerr);
        return 2;
    }
    /* The sockets serve bound at start stay; changing one needs a restart. */
    static const struct {
        const char *name;
        size_t offset;
    } fixed[] = {
        { "listen", offsetof(struct config, listen) },
        { "admin_socket", offsetof(struct config, admin_socket) },
        { "metrics_listen", offsetof(struct config, metrics_listen) },
        { "user", offsetof(struct config, user) },
    };
    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
        const char *was = (const char *)&sup->cfg + fixed[i].offset, *now = (const char *)&cfg + fixed[i].offset;

        if (strcmp(was, now) != 0) {
            snprintf(err, errsize, "config refused, pool unchanged: %s changed (%.64s -> %.64s): restart verona serve",
                     fixed[i].name, was, now);
            return 2;
        }
    }
    build = build_open(&cfg, cerr, sizeof(cerr));
    if (build == NULL) {
        snprintf(err, errsize, "reload refused, pool unchanged: %s", cerr);
        return 2; /* as at startup: the config names a build that is not there */
    }
    /* A scaled size survives a reload unless the file's `workers` changed;
     * a refused reload changes nothing, the size included. */
    old_target = sup->pool.target;
    if (cfg.workers != sup->file_workers)
        sup->pool.target = cfg.workers;
    log_emit(LOG_INFO, "reload", json_pack("{s:s, s:s, s:i}", "binary", build->path, "binary_sha256", build->sha256,
                                           "workers", sup->pool.target));
    if (pool_rollout_start(&sup->pool, build, cerr, sizeof(cerr)) != 0) {
        sup->pool.target = old_target;
        snprintf(err, errsize, "%s", cerr);
        return 1;
    }
    sup->file_workers = cfg.workers;
    notify_reloading(&sup->notify);
    return 0;
}

int supervisor_reload(struct supervisor *sup, char *err, size_t errsize)
{
    int rc = supervisor_try_reload(sup, err, errsize);

    /* Whoever asked (SIGHUP, ctl), a refusal is in the log. */
    if (rc != 0)
        log_emit(LOG_WARN, "reload_refused", json_pack("{s:s}", "reason", err));
    return rc;
}

void supervisor_stop(struct supervisor *sup, int immediate, const char *why)
{
    if (sup->state == SUPERVISOR_QUITTING || (sup->state == SUPERVISOR_STOPPING && !immediate))
        return;
    log_emit(LOG_INFO, "supervisor_stop", json_pack("{s:s, s:b}", "reason", why, "immediate", immediate));
    sup->state = immediate ? SUPERVISOR_QUITTING : SUPERVISOR_STOPPING;
    notify_stopping(&sup->notify);
    rollout_cancel_waiters(&sup->pool.rollout, "the supervisor is stopping");
    upgrade_cancel(&sup->upgrade, "the supervisor is stopping");
    pool_stop(&sup->pool, immediate);
    uv_timer_start(&sup->stop_timer, supervisor_on_stop_deadline,
                   immediate ? SUPERVISOR_QUIT_GRACE_MS : (uint64_t)sup->cfg.drain_timeout_ms + 2000, 0);
    /* Exits are noticed by the tick; keep it running while stopping. */
    uv_timer_start(&sup->tick, supervisor_on_tick, 50, 50);
}

