/* supervisor/status_page.c - GET / on metrics_listen (SPEC 7): the pool
 * as one HTML page that refreshes itself. Plain HTML and inline SVG, no
 * script and no outside asset (the answer's Content-Security-Policy
 * allows neither); every value that reaches the page is escaped.
 */
#include "status_page.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "history.h"
#include "rollout.h"
#include "supervisor.h"
#include "textbuf.h"

#define PAGE_REFRESH_S 2
#define CHART_W 300
#define CHART_H 60

static const struct config *page_worker_cfg(const struct supervisor *sup, const struct pool_worker *w)
{
    return w->build != NULL ? &w->build->cfg : &sup->cfg;
}

/* A line chart of `n` values (oldest first) scaled to `max`, with a
 * dashed line at `limit` (0: none). */
static void page_chart(struct textbuf *b, const char *id, const char *label, const double *v, int n, double max,
                       double limit)
{
    textbuf_printf(b, "<svg class=\"chart\" id=\"");
    textbuf_html(b, id);
    textbuf_printf(b, "\" viewBox=\"0 0 %d %d\" width=\"%d\" height=\"%d\" role=\"img\" aria-label=\"", CHART_W,
                   CHART_H, CHART_W, CHART_H);
    textbuf_html(b, label);
    textbuf_printf(b, "\"><rect width=\"%d\" height=\"%d\" fill=\"#f6f6f6\"/>", CHART_W, CHART_H);
    if (max <= 0)
        max = 1;
    if (limit > 0) {
        double y = CHART_H - 2 - (limit / max) * (CHART_H - 4);

        textbuf_printf(b, "<line x1=\"0\" x2=\"%d\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#c33\" stroke-dasharray=\"4 3\"/>",
                       CHART_W, y, y);
    }
    if (n > 1) {
        textbuf_printf(b, "<polyline fill=\"none\" stroke=\"#246\" stroke-width=\"1.5\" points=\"");
        for (int i = 0; i < n; i++) {
            double x = (double)(HISTORY_POINTS - n + i) * CHART_W / (HISTORY_POINTS - 1); /* newest at the right */
            double y = CHART_H - 2 - (v[i] > max ? max : v[i]) / max * (CHART_H - 4);

            textbuf_printf(b, "%.1f,%.1f ", x, y);
        }
        textbuf_printf(b, "\"/>");
    }
    textbuf_printf(b, "</svg>");
}

static void page_head(struct textbuf *b)
{
    textbuf_printf(b,
                   "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                   "<meta http-equiv=\"refresh\" content=\"%d\"><link rel=\"icon\" href=\"data:,\">"
                   "<title>Verona status</title><style>"
                   "body{font:14px system-ui,sans-serif;margin:1.5em;color:#222}"
                   "table{border-collapse:collapse}td,th{padding:.25em .7em;border-bottom:1px solid #ddd;text-align:left}"
                   "th{background:#eee}.bad{color:#b00;font-weight:bold}.ok{color:#070}"
                   ".charts{display:flex;flex-wrap:wrap;gap:1em}.charts figure{margin:0}"
                   "figcaption{font-size:12px;color:#555}"
                   "</style></head><body>\n",
                   PAGE_REFRESH_S);
}

static void page_summary(struct textbuf *b, struct supervisor *sup)
{
    struct pool *pool = &sup->pool;
    int ready = 0, live = 0;

    for (struct pool_worker *w = pool->workers; w != NULL; w = w->next)
        if (pool_worker_phase(w) != PHASE_GONE) {
            live++;
            ready += pool_worker_phase(w) == PHASE_READY;
        }
    textbuf_printf(b, "<h1>Verona</h1><p id=\"summary\">supervisor pid %d, up %llu s; <span class=\"%s\">%d ready</span>"
                      " of %d workers (target %d); good build <code>",
                   (int)getpid(), (unsigned long long)((uv_now(sup->loop) - sup->started_ms) / 1000),
                   ready == 0 ? "bad" : "ok", ready, live, pool->target);
    textbuf_html(b, pool->good != NULL ? pool->good->sha256 : "");
    textbuf_printf(b, "</code>; this page refreshes every %d s</p>\n", PAGE_REFRESH_S);
}

static void page_rollout(struct textbuf *b, struct supervisor *sup)
{
    const struct rollout *r = &sup->pool.rollout;

    textbuf_printf(b, "<h2>Rollout</h2><p id=\"rollout\" data-state=\"%s\">", rollout_state_name(r->state));
    if (r->state == ROLLOUT_NONE) {
        textbuf_printf(b, "none since start</p>\n");
        return;
    }
    textbuf_printf(b, "<strong>");
    textbuf_html(b, rollout_state_name(r->state));
    textbuf_printf(b, "</strong>: <code>%.12s</code> &rarr; <code>%.12s</code>, ", r->from_sha, r->to_sha);
    textbuf_printf(b, "<span id=\"rollout-progress\">%d of %d slots</span>", r->slots_done, r->slots_total);
    textbuf_printf(b, " <progress max=\"%d\" value=\"%d\"></progress>", r->slots_total > 0 ? r->slots_total : 1,
                   r->slots_done > r->slots_total ? r->slots_total : r->slots_done);
    if (r->reason[0] != '\0') {
        textbuf_printf(b, "; <span class=\"bad\">");
        textbuf_html(b, r->reason);
        textbuf_printf(b, "</span>");
    }
    textbuf_printf(b, "</p>\n");
}

static void page_workers(struct textbuf *b, struct supervisor *sup)
{
    struct pool *pool = &sup->pool;

    textbuf_printf(b, "<h2>Workers</h2><table id=\"workers\"><tr><th>slot</th><th>pid</th><th>state</th>"
                      "<th>RSS / soft / hard (MiB)</th><th>restarts</th><th>build</th><th>database</th></tr>\n");
    for (int slot = 0; slot < POOL_SLOTS_MAX; slot++) {
        int shown = 0;

        for (struct pool_worker *w = pool->workers; w != NULL; w = w->next) {
            const struct config *cfg;

            if (w->slot != slot || pool_worker_phase(w) == PHASE_GONE)
                continue;
            cfg = page_worker_cfg(sup, w);
            shown = 1;
            textbuf_printf(b, "<tr class=\"worker\" data-pid=\"%d\" data-state=\"%s\"><td>%d</td><td>%d</td><td>%s</td>",
                           w->pid, pool_worker_phase_name(pool_worker_phase(w)), slot, w->pid, pool_worker_phase_name(pool_worker_phase(w)));
            textbuf_printf(b, "<td><span class=\"%s\">%.1f</span> / %d / %d</td><td>%llu</td><td><code>",
                           w->rss_bytes > ((uint64_t)cfg->memory_soft_limit_mb << 20) * 6 / 10 ? "bad" : "",
                           (double)w->rss_bytes / 1048576.0, cfg->memory_soft_limit_mb, cfg->memory_hard_limit_mb,
                           (unsigned long long)pool->slots[slot].restarts);
            textbuf_html(b, w->build_id);
            textbuf_printf(b, "</code> <code>%.12s</code></td><td class=\"%s\">%s", w->build != NULL ? w->build->sha256 : "",
                           w->db_up ? "ok" : "bad", w->db_up ? "up" : "down");
            if (w->db_host[0] != '\0') {
                textbuf_printf(b, " (");
                textbuf_html(b, w->db_host);
                textbuf_printf(b, ")");
            }
            textbuf_printf(b, "</td></tr>\n");
        }
        if (!shown && slot < pool->target && pool->slots[slot].state == SLOT_BACKOFF)
            textbuf_printf(b, "<tr class=\"worker\" data-state=\"backoff\"><td>%d</td><td></td><td class=\"bad\">backoff</td>"
                              "<td></td><td>%llu</td><td></td><td></td></tr>\n",
                           slot, (unsigned long long)pool->slots[slot].restarts);
    }
    textbuf_printf(b, "</table>\n");
}

/* A chart of one of the pool's rates, scaled to its peak. */
static void page_rate(struct textbuf *b, const struct history *h, const double *ring, const char *id, const char *label,
                      const char *caption)
{
    double v[HISTORY_POINTS] = { 0 }, max = 1;
    int n = h->count;

    for (int i = 0; i < n; i++) {
        v[i] = ring[history_index(h, i)];
        max = v[i] > max ? v[i] : max;
    }
    textbuf_printf(b, "<figure>");
    page_chart(b, id, label, v, n, max * 1.1, 0);
    textbuf_printf(b, "<figcaption>%s (now %.1f, peak %.1f)</figcaption></figure>\n", caption, n > 0 ? v[n - 1] : 0.0, max);
}

static void page_charts(struct textbuf *b, struct supervisor *sup, const struct history *h)
{
    struct pool *pool = &sup->pool;
    double v[HISTORY_POINTS], max;
    char id[32], label[96];
    int n = h->count;

    textbuf_printf(b, "<h2>The last %d minutes</h2><div class=\"charts\">\n", HISTORY_POINTS * HISTORY_INTERVAL_MS / 60000);
    for (int slot = 0; slot < pool->target && slot < POOL_SLOTS_MAX; slot++) {
        const struct pool_worker *w = pool_slot_worker(pool, slot);
        double soft = (double)((uint64_t)(w != NULL ? page_worker_cfg(sup, w) : &sup->cfg)->memory_soft_limit_mb << 20);

        max = soft * 1.1;
        for (int i = 0; i < n; i++)
            v[i] = (double)h->rss[slot][history_index(h, i)];
        snprintf(id, sizeof(id), "rss-%d", slot);
        snprintf(label, sizeof(label), "slot %d RSS, the dashed line its soft limit", slot);
        textbuf_printf(b, "<figure>");
        page_chart(b, id, label, v, n, max, soft);
        textbuf_printf(b, "<figcaption>slot %d RSS (soft limit dashed)</figcaption></figure>\n", slot);
    }
    page_rate(b, h, h->requests_per_s, "requests", "requests a second", "requests/s");
    page_rate(b, h, h->errors_per_s, "errors", "5xx answers a second", "5xx/s");
    textbuf_printf(b, "</div>\n");
}

char *status_page_render(struct supervisor *sup)
{
    struct textbuf b;

    textbuf_init(&b, 32768);
    page_head(&b);
    page_summary(&b, sup);
    page_rollout(&b, sup);
    page_workers(&b, sup);
    page_charts(&b, sup, &sup->history);
    textbuf_printf(&b, "<p><a href=\"/metrics\">/metrics</a></p></body></html>\n");
    return textbuf_take(&b);
}
