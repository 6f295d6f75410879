/* supervisor/upgrade_state.c - the hand-over document of `ctl upgrade`
 * (supervisor/upgrade_state.h).
 */
#include "upgrade_state.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "supervisor.h"

#define UPGRADE_FORMAT "verona-supervisor-state"
#define COUNTER_WORDS (sizeof(struct control_counters) / sizeof(uint64_t))

int upgrade_state_version(void)
{
#ifdef VERONA_TEST_HOOKS
    const char *knob = getenv("VERONA_TEST_STATE_VERSION");

    if (knob != NULL)
        return atoi(knob);
#endif
    return UPGRADE_STATE_VERSION;
}

/* ---- writing ---- */

static json_t *counters_dump(const struct control_counters *c)
{
    const uint64_t *words = (const uint64_t *)c;
    json_t *a = json_array();

    for (size_t i = 0; i < COUNTER_WORDS; i++)
        json_array_append_new(a, json_integer((json_int_t)words[i]));
    return a;
}

static int fd_of(uv_handle_t *h)
{
    uv_os_fd_t fd;

    return uv_fileno(h, &fd) == 0 ? fd : -1;
}

/* The index of `b` in builds[] (added when new). */
static int build_index(struct build **builds, int *count, struct build *b)
{
    for (int i = 0; i < *count; i++)
        if (builds[i] == b)
            return i;
    builds[*count] = b;
    return (*count)++;
}

static json_t *worker_dump(struct pool_worker *w, int build, char *err, size_t errsize)
{
    char pending[2 * CONTROL_FRAME_MAX + 1];
    int fd = fd_of((uv_handle_t *)&w->control);

    if (fd < 0) {
        snprintf(err, errsize, "worker %d has no control socket", w->pid);
        return NULL;
    }
    sodium_bin2hex(pending, sizeof(pending), (const unsigned char *)w->in, w->in_len);
    return json_pack("{s:i, s:i, s:s, s:s, s:i, s:s, s:i, s:i, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:b, "
                     "s:s, s:i, s:i, s:i, s:o}",
                     "slot", w->slot, "pid", w->pid, "state", pool_worker_state_name(w->state), "killed_in",
                     pool_worker_state_name(w->killed_in), "kill_reason", w->kill_reason, "kill_detail",
                     w->kill_detail, "build", build, "control_fd", fd, "pending", pending, "build_id", w->build_id,
                     "started_ms", (json_int_t)w->started_ms, "ready_ms", (json_int_t)w->ready_ms, "last_pong_ms",
                     (json_int_t)w->last_pong_ms, "drain_ms", (json_int_t)w->drain_ms, "ready_clock_ms",
                     (json_int_t)w->ready_clock_ms, "ping_seq", (json_int_t)w->ping_seq, "rss_bytes",
                     (json_int_t)w->rss_bytes, "db_up", w->db_up, "db_host", w->db_host, "connections",
                     w->connections, "in_flight", w->in_flight, "hash_queue", w->hash_queue, "counters",
                     counters_dump(&w->counters));
}

static json_t *rollout_dump(const struct rollout *r)
{
    json_t *ready = json_array();

    for (int i = 0; i < ROLLOUT_SLOTS_MAX; i++)
        json_array_append_new(ready, json_integer((json_int_t)r->slot_ready_ms[i]));
    return json_pack("{s:i, s:s, s:s, s:i, s:i, s:I, s:o, s:s, s:s, s:s?, s:s, s:I, s:I, s:I}", "state", (int)r->state,
                     "from_sha", r->from_sha, "to_sha", r->to_sha, "slots_total", r->slots_total, "slots_done",
                     r->slots_done, "canary_ready_ms", (json_int_t)r->canary_ready_ms, "slot_ready_ms", ready,
                     "reason", r->reason, "rejected_sha", r->rejected_sha, "rejected_settings",
                     r->rejected_settings, "rejected_reason", r->rejected_reason, "started_ms",
                     (json_int_t)r->started_ms, "count_done", (json_int_t)r->count_done, "count_rolled_back",
                     (json_int_t)r->count_rolled_back);
}

json_t *upgrade_state_dump(struct supervisor *sup, int client_fd, char *err, size_t errsize)
{
    struct pool *pool = &sup->pool;
    struct build *builds[POOL_SLOTS_MAX * 2 + 2];
    int nbuilds = 0, ibuild, igood;
    json_t *doc, *jbuilds, *jslots, *jworkers, *restarts;
    char *settings;

    if (rollout_active(&pool->rollout)) {
        snprintf(err, errsize, "rollout in progress");
        return NULL;
    }
    ibuild = build_index(builds, &nbuilds, pool->build);
    igood = build_index(builds, &nbuilds, pool->good);
    jworkers = json_array();
    for (struct pool_worker *w = pool->workers; w != NULL; w = w->next) {
        json_t *row;

        if (w->state == WORKER_EXITED)
            continue; /* reaped: its counters are in pool->gone */
        if ((size_t)nbuilds >= sizeof(builds) / sizeof(builds[0])) {
            snprintf(err, errsize, "too many builds");
            json_decref(jworkers);
            return NULL;
        }
        row = worker_dump(w, build_index(builds, &nbuilds, w->build), err, errsize);
        if (row == NULL) {
            json_decref(jworkers);
            return NULL;
        }
        json_array_append_new(jworkers, row);
    }
    jbuilds = json_array();
    for (int i = 0; i < nbuilds; i++) {
        settings = config_render(&builds[i]->cfg);
        json_array_append_new(jbuilds, json_pack("{s:i, s:s, s:s, s:s?}", "fd", builds[i]->fd, "path",
                                                 builds[i]->path, "sha256", builds[i]->sha256, "settings", settings));
        free(settings);
    }
    jslots = json_array();
    for (int i = 0; i < POOL_SLOTS_MAX; i++) {
        const struct pool_slot *s = &pool->slots[i];
        uint64_t now = pool_now_ms(pool);

        json_array_append_new(jslots, json_pack("{s:s, s:i, s:I, s:I}", "state", pool_slot_state_name(s->state),
                                                "failures", s->failures, "restarts", (json_int_t)s->restarts,
                                                "backoff_left_ms",
                                                (json_int_t)(s->state == SLOT_BACKOFF && s->backoff_until_ms > now
                                                                 ? s->backoff_until_ms - now
                                                                 : 0)));
    }
    restarts = json_array();
    for (int i = 0; i < REASON_COUNT; i++)
        json_array_append_new(restarts, json_integer((json_int_t)pool->restarts[i]));
    settings = config_render(&sup->cfg);
    doc = json_pack("{s:s, s:i, s:s, s:s, s:s, s:s, s:s?, s:I, s:I, s:i, s:i, "
                    "s:{s:i, s:i, s:i, s:i}, s:i, s:o, "
                    "s:{s:i, s:i, s:i, s:o, s:o, s:o}, s:o, s:o}",
                    "format", UPGRADE_FORMAT, "version", upgrade_state_version(), "build_id", VERONA_BUILD_ID, "self",
                    sup->self_path, "config_path", sup->config_path, "admin_path", sup->admin.path, "settings",
                    settings, "started_at", (json_int_t)sup->started_at, "started_ms", (json_int_t)sup->started_ms,
                    "upgrades", (int)sup->upgrades, "file_workers", sup->file_workers, "fds", "listen",
                    sup->listen_fd, "admin", fd_of((uv_handle_t *)&sup->admin.server), "metrics",
                    fd_of((uv_handle_t *)&sup->metrics.server), "client", client_fd, "gate", pool->gate, "builds",
                    jbuilds, "pool", "target", pool->target, "build", ibuild, "good", igood, "restarts", restarts,
                    "gone", counters_dump(&pool->gone), "slots", jslots, "rollout", rollout_dump(&pool->rollout),
                    "workers", jworkers);
    free(settings);
    if (doc == NULL)
        snprintf(err, errsize, "out of memory");
    return doc;
}

/* ---- reading ---- */

static int counters_parse(json_t *a, struct control_counters *c)
{
    uint64_t *words = (uint64_t *)c;

    if (!json_is_array(a) || json_array_size(a) != COUNTER_WORDS)
        return -1;
    for (size_t i = 0; i < COUNTER_WORDS; i++) {
        json_t *v = json_array_get(a, i);

        if (!json_is_integer(v) || json_integer_value(v) < 0)
            return -1;
        words[i] = (uint64_t)json_integer_value(v);
    }
    return 0;
}

static int copy_string(char *dst, size_t size, const char *src)
{
    if (src == NULL || strlen(src) >= size)
        return -1;
    memcpy(dst, src, strlen(src) + 1);
    return 0;
}

/* A config from its rendering, as a worker reads its settings. */
static int settings_parse(const char *text, struct config *cfg, char *err, size_t errsize)
{
    char cerr[CONFIG_ERROR_MAX];

    config_defaults(cfg);
    if (text == NULL || config_load_string(cfg, text, "handed-over settings", cerr, sizeof(cerr)) != 0 ||
        config_finish(cfg, cerr, sizeof(cerr)) != 0) {
        snprintf(err, errsize, "settings: %s", text == NULL ? "missing" : cerr);
        return -1;
    }
    return 0;
}

static int state_of(const char *name, int *out)
{
    for (int s = WORKER_SPAWNED; s <= WORKER_EXITED; s++)
        if (name != NULL && strcmp(name, pool_worker_state_name((enum pool_worker_state)s)) == 0) {
            *out = s;
            return 0;
        }
    return -1;
}

static int builds_parse(json_t *a, int dry, struct upgrade_state *st, char *err, size_t errsize)
{
    if (!json_is_array(a) || json_array_size(a) == 0 || json_array_size(a) > POOL_SLOTS_MAX * 2 + 2) {
        snprintf(err, errsize, "builds: not a list of 1 to %d", POOL_SLOTS_MAX * 2 + 2);
        return -1;
    }
    st->builds = calloc(json_array_size(a), sizeof(*st->builds));
    if (st->builds == NULL) {
        snprintf(err, errsize, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < json_array_size(a); i++) {
        const char *path, *sha, *settings = NULL;
        struct build *b = calloc(1, sizeof(*b));
        int fd;

        if (b == NULL) {
            snprintf(err, errsize, "out of memory");
            return -1;
        }
        b->fd = -1;
        b->refs = 1;
        st->builds[st->build_count++] = b;
        if (json_unpack(json_array_get(a, i), "{s:i, s:s, s:s, s:s}", "fd", &fd, "path", &path, "sha256", &sha,
                        "settings", &settings) != 0 ||
            fd < 0 || copy_string(b->path, sizeof(b->path), path) != 0 ||
            copy_string(b->sha256, sizeof(b->sha256), sha) != 0) {
            snprintf(err, errsize, "builds[%zu]: malformed", i);
            return -1;
        }
        if (settings_parse(settings, &b->cfg, err, errsize) != 0)
            return -1;
        if (!dry) {
            b->fd = fd;
            snprintf(b->exec_path, sizeof(b->exec_path), "/proc/self/fd/%d", fd);
        }
    }
    return 0;
}

static int build_ref_of(const struct upgrade_state *st, int index, struct build **out)
{
    if (index < 0 || index >= st->build_count)
        return -1;
    *out = st->builds[index];
    return 0;
}

static int worker_parse(json_t *row, size_t i, struct upgrade_state *st, char *err, size_t errsize)
{
    struct pool_worker *w = calloc(1, sizeof(*w));
    const char *state = NULL, *killed_in = NULL, *kill_detail, *pending, *build_id, *db_host;
    json_int_t started, ready, pong, drain, ready_clock, seq, rss;
    int db_up, build, fd, s, k;
    struct build *b = NULL;
    json_t *counters;
    size_t bin_len;

    if (w == NULL || (w->in = malloc(CONTROL_FRAME_MAX)) == NULL) {
        free(w);
        snprintf(err, errsize, "out of memory");
        return -1;
    }
    st->workers[st->worker_count] = w;
    st->worker_fds[st->worker_count++] = -1;
    if (json_unpack(row,
                    "{s:i, s:i, s:s, s:s, s:i, s:s, s:i, s:i, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:b, "
                    "s:s, s:i, s:i, s:i, s:o}",
                    "slot", &w->slot, "pid", &w->pid, "state", &state, "killed_in", &killed_in, "kill_reason",
                    &w->kill_reason, "kill_detail", &kill_detail, "build", &build, "control_fd", &fd, "pending",
                    &pending, "build_id", &build_id, "started_ms", &started, "ready_ms", &ready, "last_pong_ms", &pong,
                    "drain_ms", &drain, "ready_clock_ms", &ready_clock, "ping_seq", &seq, "rss_bytes", &rss, "db_up",
                    &db_up, "db_host", &db_host, "connections", &w->connections, "in_flight", &w->in_flight,
                    "hash_queue", &w->hash_queue, "counters", &counters) != 0 ||
        w->slot < 0 || w->slot >= POOL_SLOTS_MAX || w->pid <= 1 || fd < 0 || state_of(state, &s) != 0 ||
        state_of(killed_in, &k) != 0 || s == WORKER_EXITING || s == WORKER_EXITED || w->kill_reason < -1 ||
        w->kill_reason >= REASON_COUNT || build_ref_of(st, build, &b) != 0 ||
        copy_string(w->kill_detail, sizeof(w->kill_detail), kill_detail) != 0 ||
        copy_string(w->build_id, sizeof(w->build_id), build_id) != 0 ||
        copy_string(w->db_host, sizeof(w->db_host), db_host) != 0 || counters_parse(counters, &w->counters) != 0 ||
        started < 0 || ready < 0 || pong < 0 || drain < 0 || ready_clock < 0 || seq < 0 || rss < 0 ||
        sodium_hex2bin((unsigned char *)w->in, CONTROL_FRAME_MAX, pending, strlen(pending), NULL, &bin_len, NULL) !=
            0) {
        snprintf(err, errsize, "workers[%zu]: malformed", i);
        return -1;
    }
    w->build = b;
    build_ref(b);
    w->state = (enum pool_worker_state)s;
    w->killed_in = (enum pool_worker_state)k;
    w->in_len = bin_len;
    w->started_ms = (uint64_t)started;
    w->ready_ms = (uint64_t)ready;
    w->last_pong_ms = (uint64_t)pong;
    w->drain_ms = (uint64_t)drain;
    w->ready_clock_ms = (uint64_t)ready_clock;
    w->ping_seq = (uint64_t)seq;
    w->rss_bytes = (uint64_t)rss;
    w->db_up = db_up;
    st->worker_fds[st->worker_count - 1] = fd;
    return 0;
}

static int slot_parse(json_t *row, struct upgrade_slot *slot)
{
    const char *state;
    json_int_t restarts, left;

    if (json_unpack(row, "{s:s, s:i, s:I, s:I}", "state", &state, "failures", &slot->failures, "restarts", &restarts,
                    "backoff_left_ms", &left) != 0 ||
        slot->failures < 0 || restarts < 0 || left < 0 || left > 3600000)
        return -1;
    for (int s = SLOT_EMPTY; s <= SLOT_RETIRED; s++)
        if (strcmp(state, pool_slot_state_name((enum pool_slot_state)s)) == 0) {
            slot->state = (enum pool_slot_state)s;
            slot->restarts = (uint64_t)restarts;
            slot->backoff_left_ms = (uint64_t)left;
            return 0;
        }
    return -1;
}

static int rollout_parse(json_t *o, struct rollout *r)
{
    const char *from, *to, *reason, *rejected_sha, *rejected_settings = NULL, *rejected_reason;
    json_int_t canary, started, done, rolled_back;
    json_t *ready, *settings;
    int state;

    memset(r, 0, sizeof(*r));
    if (json_unpack(o, "{s:i, s:s, s:s, s:i, s:i, s:I, s:o, s:s, s:s, s:o, s:s, s:I, s:I, s:I}", "state", &state,
                    "from_sha", &from, "to_sha", &to, "slots_total", &r->slots_total, "slots_done", &r->slots_done,
                    "canary_ready_ms", &canary, "slot_ready_ms", &ready, "reason", &reason, "rejected_sha",
                    &rejected_sha, "rejected_settings", &settings, "rejected_reason", &rejected_reason,
                    "started_ms", &started, "count_done", &done, "count_rolled_back", &rolled_back) != 0 ||
        (!json_is_null(settings) && (rejected_settings = json_string_value(settings)) == NULL) ||
        (state != ROLLOUT_NONE && state != ROLLOUT_ROLLED_BACK && state != ROLLOUT_DONE) ||
        copy_string(r->from_sha, sizeof(r->from_sha), from) != 0 || copy_string(r->to_sha, sizeof(r->to_sha), to) != 0 ||
        copy_string(r->reason, sizeof(r->reason), reason) != 0 ||
        copy_string(r->rejected_sha, sizeof(r->rejected_sha), rejected_sha) != 0 ||
        copy_string(r->rejected_reason, sizeof(r->rejected_reason), rejected_reason) != 0 || !json_is_array(ready) ||
        json_array_size(ready) != ROLLOUT_SLOTS_MAX || canary < 0 || started < 0 || done < 0 || rolled_back < 0)
        return -1;
    for (int i = 0; i < ROLLOUT_SLOTS_MAX; i++) {
        json_t *v = json_array_get(ready, (size_t)i);

        if (!json_is_integer(v) || json_integer_value(v) < 0)
            return -1;
        r->slot_ready_ms[i] = (uint64_t)json_integer_value(v);
    }
    if (rejected_settings != NULL && (r->rejected_settings = strdup(rejected_settings)) == NULL)
        return -1;
    r->state = (enum rollout_state)state;
    r->canary_ready_ms = (uint64_t)canary;
    r->started_ms = (uint64_t)started;
    r->count_done = (uint64_t)done;
    r->count_rolled_back = (uint64_t)rolled_back;
    return 0;
}

int upgrade_state_parse(const char *text, size_t len, int dry, struct upgrade_state *st, char *err,
                        size_t errsize)
{
    json_error_t jerr;
    json_t *doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    json_t *builds, *pool, *restarts, *gone, *slots, *rollout, *workers;
    const char *format = NULL, *build_id, *self, *config_path, *admin_path, *settings = NULL;
    json_int_t started_at, started_ms;
    int version = -1, upgrades, rc = -1;

    memset(st, 0, sizeof(*st));
    if (doc == NULL) {
        snprintf(err, errsize, "not a state document: %s (line %d)", jerr.text, jerr.line);
        return -1;
    }
    if (json_unpack(doc, "{s:s, s:i}", "format", &format, "version", &version) != 0 ||
        strcmp(format, UPGRADE_FORMAT) != 0) {
        snprintf(err, errsize, "not a state document (no format and version)");
        goto out;
    }
    if (version != upgrade_state_version()) {
        snprintf(err, errsize, "state version %d, this build reads version %d", version, upgrade_state_version());
        goto out;
    }
    if (json_unpack(doc,
                    "{s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:i, s:i, s:{s:i, s:i, s:i, s:i}, s:i, s:o, s:o, s:o, s:o}",
                    "build_id", &build_id, "self", &self, "config_path", &config_path, "admin_path", &admin_path,
                    "settings", &settings, "started_at", &started_at, "started_ms", &started_ms, "upgrades", &upgrades,
                    "file_workers", &st->file_workers, "fds", "listen", &st->listen_fd, "admin", &st->admin_fd,
                    "metrics", &st->metrics_fd, "client", &st->client_fd, "gate", &st->gate, "builds", &builds,
                    "pool", &pool, "rollout", &rollout, "workers", &workers) != 0 ||
        copy_string(st->build_id, sizeof(st->build_id), build_id) != 0 ||
        copy_string(st->self_path, sizeof(st->self_path), self) != 0 || self[0] != '/' ||
        copy_string(st->config_path, sizeof(st->config_path), config_path) != 0 ||
        copy_string(st->admin_path, sizeof(st->admin_path), admin_path) != 0 || started_at < 0 || started_ms < 0 ||
        upgrades < 0 || st->listen_fd < 0 || st->admin_fd < 0 || st->metrics_fd < 0 || st->client_fd < -1) {
        snprintf(err, errsize, "malformed: a supervisor field is missing or out of range");
        goto out;
    }
    st->started_at = (time_t)started_at;
    st->started_ms = (uint64_t)started_ms;
    st->upgrades = (unsigned)upgrades;
    if (settings_parse(settings, &st->cfg, err, errsize) != 0 || builds_parse(builds, dry, st, err, errsize) != 0)
        goto out;
    if (json_unpack(pool, "{s:i, s:i, s:i, s:o, s:o, s:o}", "target", &st->target, "build", &st->build, "good",
                    &st->good, "restarts", &restarts, "gone", &gone, "slots", &slots) != 0 ||
        st->target < 1 || st->target > POOL_SLOTS_MAX || st->build < 0 || st->build >= st->build_count ||
        st->good < 0 || st->good >= st->build_count || !json_is_array(restarts) ||
        json_array_size(restarts) != REASON_COUNT || counters_parse(gone, &st->gone) != 0 || !json_is_array(slots) ||
        json_array_size(slots) != POOL_SLOTS_MAX) {
        snprintf(err, errsize, "malformed: pool");
        goto out;
    }
    for (int i = 0; i < REASON_COUNT; i++) {
        json_t *v = json_array_get(restarts, (size_t)i);

        if (!json_is_integer(v) || json_integer_value(v) < 0) {
            snprintf(err, errsize, "malformed: pool restarts");
            goto out;
        }
        st->restarts[i] = (uint64_t)json_integer_value(v);
    }
    for (int i = 0; i < POOL_SLOTS_MAX; i++)
        if (slot_parse(json_array_get(slots, (size_t)i), &st->slots[i]) != 0) {
            snprintf(err, errsize, "malformed: slots[%d]", i);
            goto out;
        }
    if (rollout_parse(rollout, &st->rollout) != 0) {
        snprintf(err, errsize, "malformed: rollout (or one in progress)");
        goto out;
    }
    if (!json_is_array(workers) || json_array_size(workers) > POOL_SLOTS_MAX * 4) {
        snprintf(err, errsize, "malformed: workers");
        goto out;
    }
    st->workers = calloc(json_array_size(workers) + 1, sizeof(*st->workers));
    st->worker_fds = calloc(json_array_size(workers) + 1, sizeof(*st->worker_fds));
    if (st->workers == NULL || st->worker_fds == NULL) {
        snprintf(err, errsize, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < json_array_size(workers); i++)
        if (worker_parse(json_array_get(workers, i), i, st, err, errsize) != 0)
            goto out;
    rc = 0;
out:
    json_decref(doc);
    if (rc != 0)
        upgrade_state_fini(st);
    return rc;
}

void upgrade_state_fini(struct upgrade_state *st)
{
    for (int i = 0; i < st->worker_count; i++) {
        struct pool_worker *w = st->workers[i];

        if (w == NULL)
            continue;
        if (w->build != NULL)
            build_unref(w->build);
        free(w->in);
        free(w);
    }
    for (int i = 0; i < st->build_count; i++)
        build_unref(st->builds[i]);
    free(st->workers);
    free(st->worker_fds);
    free(st->builds);
    rollout_fini(&st->rollout);
    st->workers = NULL;
    st->worker_fds = NULL;
    st->builds = NULL;
    st->worker_count = st->build_count = 0;
}
