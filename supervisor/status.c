/* supervisor/status.c - renders the pool for `ctl status` and its --json. */
#include "status.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "memwatch.h"
#include "supervisor.h"

static uint64_t status_requests(const struct control_counters *c)
{
    uint64_t n = 0;

    for (int r = 0; r < ROUTE_COUNT; r++)
        for (int s = 0; s < CONTROL_STATUS_COUNT; s++)
            n += c->requests[r][s];
    return n;
}

json_t *status_json(struct supervisor *sup)
{
    struct pool *pool = &sup->pool;
    json_t *workers = json_array();
    uint64_t now = pool_now_ms(pool), requests = status_requests(&pool->gone), restarts = 0;
    int live = 0, ready = 0;

    for (int slot = 0; slot < POOL_SLOTS_MAX; slot++) {
        int shown = 0;

        for (struct pool_worker *w = pool->workers; w != NULL; w = w->next) {
            uint64_t n;

            if (w->slot != slot || pool_worker_phase(w) == PHASE_GONE)
                continue;
            n = status_requests(&w->counters);
            w->rss_bytes = memwatch_rss_bytes(w->pid); /* now, not as of the last tick */
            requests += n;
            live++;
            ready += pool_worker_phase(w) == PHASE_READY;
            shown = 1;
            json_array_append_new(
                workers, json_pack("{s:i, s:i, s:s, s:b, s:o, s:I, s:I, s:I, s:I, s:s, s:s}", "slot", slot, "pid", w->pid,
                                   "state", pool_worker_phase_name(pool_worker_phase(w)), "db_up", w->db_up, "db_host",
                                   w->db_host[0] != '\0' ? json_string(w->db_host) : json_null(),
                                   "rss_bytes", (json_int_t)w->rss_bytes, "uptime_s",
                                   (json_int_t)((now - w->started_ms) / 1000), "requests", (json_int_t)n,
                                   "restarts", (json_int_t)pool->slots[slot].restarts, "build_id",
                                   w->build_id, "binary_sha256", w->build->sha256));
        }
        if (!shown && pool->slots[slot].state == SLOT_BACKOFF && slot < pool->target)
            json_array_append_new(
                workers, json_pack("{s:i, s:n, s:s, s:b, s:n, s:i, s:i, s:i, s:I, s:s, s:s, s:I}", "slot", slot, "pid",
                                   "state", "backoff", "db_up", 0, "db_host", "rss_bytes", 0, "uptime_s", 0, "requests", 0, "restarts",
                                   (json_int_t)pool->slots[slot].restarts, "build_id", "", "binary_sha256",
                                   pool->build->sha256, "retry_in_ms",
                                   (json_int_t)(pool->slots[slot].backoff_until_ms > now
                                                    ? pool->slots[slot].backoff_until_ms - now
                                                    : 0)));
    }
    for (int r = 0; r < REASON_COUNT; r++)
        restarts += pool->restarts[r];
    {
        json_t *by_reason = json_object();
        for (int r = 0; r < REASON_COUNT; r++)
            json_object_set_new(by_reason, pool_reason_names[r], json_integer((json_int_t)pool->restarts[r]));
        const struct rollout *r = &pool->rollout;
        json_t *rollout = r->state == ROLLOUT_NONE
                              ? json_null()
                              : json_pack("{s:s, s:s, s:s, s:i, s:i, s:s}", "state", rollout_state_name(r->state),
                                          "from", r->from_sha, "to", r->to_sha, "slots_done", r->slots_done,
                                          "slots_total", r->slots_total, "reason", r->reason);
        char started[32], upgraded[32];
        struct tm tm;

        if (gmtime_r(&sup->started_at, &tm) == NULL || strftime(started, sizeof(started), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
            started[0] = '\0';
        if (sup->upgraded_at == 0 || gmtime_r(&sup->upgraded_at, &tm) == NULL ||
            strftime(upgraded, sizeof(upgraded), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
            upgraded[0] = '\0';
        return json_pack("{s:o, s:{s:i, s:i, s:i, s:I, s:I, s:o}, s:o, s:{s:i, s:s, s:s, s:i, s:s?, s:s?}}", "workers",
                         workers, "totals", "workers", live, "target", pool->target, "ready", ready, "requests",
                         (json_int_t)requests, "restarts", (json_int_t)restarts, "restarts_by_reason", by_reason,
                         "rollout", rollout, "supervisor", "pid", (int)getpid(), "build_id", VERONA_BUILD_ID,
                         "started_at", started, "upgrades", (int)sup->upgrades, "upgraded_at",
                         upgraded[0] != '\0' ? upgraded : NULL, "upgraded_from",
                         sup->upgrades > 0 ? sup->upgraded_from : NULL);
    }
}

char *status_table(struct supervisor *sup)
{
    json_t *doc = status_json(sup), *workers = json_object_get(doc, "workers"), *totals, *row;
    size_t cap = 4096, len = 0, i;
    char *out = malloc(cap);

    if (out == NULL) {
        json_decref(doc);
        return NULL;
    }
    len += (size_t)snprintf(out, cap, "%-5s %-8s %-9s %-4s %9s %8s %10s %8s  %-14s %-12s  %s\n", "SLOT", "PID", "STATE", "DB",
                            "RSS_MB", "UPTIME_S", "REQUESTS", "RESTARTS", "BUILD", "BINARY", "DB_HOST");
    json_array_foreach(workers, i, row) {
        char line[256], pid[16] = "-";
        int n;

        if (json_is_integer(json_object_get(row, "pid"))) /* null: a slot in backoff has no process */
            snprintf(pid, sizeof(pid), "%d", (int)json_integer_value(json_object_get(row, "pid")));
        n = snprintf(line, sizeof(line), "%-5d %-8s %-9s %-4s %9.1f %8lld %10lld %8lld  %-14.14s %-12.12s  %.64s\n",
                         (int)json_integer_value(json_object_get(row, "slot")), pid,
                         json_string_value(json_object_get(row, "state")),
                         json_is_true(json_object_get(row, "db_up")) ? "up" : "down",
                         (double)json_integer_value(json_object_get(row, "rss_bytes")) / 1048576.0,
                         (long long)json_integer_value(json_object_get(row, "uptime_s")),
                         (long long)json_integer_value(json_object_get(row, "requests")),
                         (long long)json_integer_value(json_object_get(row, "restarts")),
                         json_string_value(json_object_get(row, "build_id")),
                         json_string_value(json_object_get(row, "binary_sha256")),
                         json_is_string(json_object_get(row, "db_host"))
                             ? json_string_value(json_object_get(row, "db_host")) : "-");
        if (n < 0)
            continue;
        if (len + (size_t)n + 256 > cap) {
            char *bigger = realloc(out, cap * 2 + (size_t)n);
            if (bigger == NULL)
                break;
            out = bigger;
            cap = cap * 2 + (size_t)n;
        }
        memcpy(out + len, line, (size_t)n + 1);
        len += (size_t)n;
    }
    if (cap - len < 1024) { /* the last three lines: totals, rollout (its reason up to 255), supervisor */
        char *bigger = realloc(out, len + 1024);

        if (bigger == NULL) {
            json_decref(doc);
            free(out);
            return NULL;
        }
        out = bigger;
        cap = len + 1024;
    }
    totals = json_object_get(doc, "totals");
    len += (size_t)snprintf(out + len, cap - len, "workers %lld/%lld ready %lld requests %lld restarts %lld\n",
                            (long long)json_integer_value(json_object_get(totals, "workers")),
                            (long long)json_integer_value(json_object_get(totals, "target")),
                            (long long)json_integer_value(json_object_get(totals, "ready")),
                            (long long)json_integer_value(json_object_get(totals, "requests")),
                            (long long)json_integer_value(json_object_get(totals, "restarts")));
    row = json_object_get(doc, "rollout");
    if (json_is_null(row))
        len += (size_t)snprintf(out + len, cap - len, "rollout: none\n");
    else
        len += (size_t)snprintf(out + len, cap - len, "rollout: %s %.12s -> %.12s, %lld/%lld slots%s%s\n",
                 json_string_value(json_object_get(row, "state")), json_string_value(json_object_get(row, "from")),
                 json_string_value(json_object_get(row, "to")),
                 (long long)json_integer_value(json_object_get(row, "slots_done")),
                 (long long)json_integer_value(json_object_get(row, "slots_total")),
                 json_string_length(json_object_get(row, "reason")) > 0 ? ": " : "",
                 json_string_value(json_object_get(row, "reason")));
    row = json_object_get(doc, "supervisor");
    if (len < cap)
        snprintf(out + len, cap - len, "supervisor: pid %lld, build %s, started %s, upgrades %lld%s%s%s%s%s\n",
                 (long long)json_integer_value(json_object_get(row, "pid")),
                 json_string_value(json_object_get(row, "build_id")),
                 json_string_value(json_object_get(row, "started_at")),
                 (long long)json_integer_value(json_object_get(row, "upgrades")),
                 sup->upgrades > 0 ? " (the last at " : "", sup->upgrades > 0 ? json_string_value(json_object_get(row, "upgraded_at")) : "",
                 sup->upgrades > 0 ? " from " : "", sup->upgrades > 0 ? json_string_value(json_object_get(row, "upgraded_from")) : "",
                 sup->upgrades > 0 ? ")" : "");
    json_decref(doc);
    return out;
}
