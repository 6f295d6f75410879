/* supervisor/metrics.c - the Prometheus endpoint (supervisor/metrics.h).
 * One request a connection: the request head is read (at most 8 KiB, 10 s),
 * answered, and the connection closed.
 */
#include "metrics.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../proto/config.h"
#include "../proto/control.h"
#include "memwatch.h"
#include "metrics_request.h"
#include "status_page.h"
#include "textbuf.h"
#include "supervisor.h"

#define METRICS_TIMEOUT_MS 10000

static void metrics_header(struct textbuf *b, const char *name, const char *type, const char *help)
{
    textbuf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* The settings a worker runs with: its build's. */
static const struct config *metrics_worker_cfg(const struct pool *pool, const struct pool_worker *w)
{
    return w->build != NULL ? &w->build->cfg : &pool->sup->cfg;
}

char *metrics_render(struct supervisor *sup)
{
    struct pool *pool = &sup->pool;
    struct textbuf b;
    struct control_counters total = pool->gone;
    int states[PHASE_COUNT] = { 0 }, backoff = 0, db_up = 0, hash_queue = 0, connections = 0, in_flight = 0;

    textbuf_init(&b, 16384);
    if (b.failed)
        return NULL;
    for (struct pool_worker *w = pool->workers; w != NULL; w = w->next) {
        if (pool_worker_phase(w) == PHASE_GONE)
            continue;
        control_counters_add(&total, &w->counters);
        states[pool_worker_phase(w)]++;
        db_up |= pool_worker_phase(w) == PHASE_READY && w->db_up;
        hash_queue += w->hash_queue;
        connections += w->connections;
        in_flight += w->in_flight;
    }
    for (int s = 0; s < pool->target && s < POOL_SLOTS_MAX; s++)
        backoff += pool->slots[s].state == SLOT_BACKOFF && pool_slot_worker(pool, s) == NULL;

    metrics_header(&b, "verona_workers", "gauge", "Worker processes by state.");
    for (int s = PHASE_STARTING; s <= PHASE_DRAINING; s++)
        textbuf_printf(&b, "verona_workers{state=\"%s\"} %d\n", pool_worker_phase_name((enum pool_worker_phase)s), states[s]);
    textbuf_printf(&b, "verona_workers{state=\"backoff\"} %d\n", backoff);
    metrics_header(&b, "verona_workers_target", "gauge", "The pool size the supervisor keeps.");
    textbuf_printf(&b, "verona_workers_target %d\n", pool->target);

    metrics_header(&b, "verona_restarts_total", "counter", "Workers replaced, by reason.");
    for (int r = 0; r < REASON_COUNT; r++)
        textbuf_printf(&b, "verona_restarts_total{reason=\"%s\"} %llu\n", pool_reason_names[r],
                       (unsigned long long)pool->restarts[r]);

    metrics_header(&b, "verona_worker_rss_bytes", "gauge", "Resident memory of each worker, read from /proc.");
    for (struct pool_worker *w = pool->workers; w != NULL; w = w->next)
        if (pool_worker_phase(w) != PHASE_GONE)
            textbuf_printf(&b, "verona_worker_rss_bytes{slot=\"%d\",pid=\"%d\"} %llu\n", w->slot, w->pid,
                           (unsigned long long)memwatch_rss_bytes(w->pid));

    /* The limits beside the readings, so that a rule can divide them
     * (each worker by its own build's settings during a rollout). */
    metrics_header(&b, "verona_worker_memory_soft_limit_bytes", "gauge",
                   "RSS at which each worker is replaced gracefully (memory_soft_limit_mb).");
    for (struct pool_worker *w = pool->workers; w != NULL; w = w->next)
        if (pool_worker_phase(w) != PHASE_GONE)
            textbuf_printf(&b, "verona_worker_memory_soft_limit_bytes{slot=\"%d\",pid=\"%d\"} %llu\n", w->slot, w->pid,
                           (unsigned long long)metrics_worker_cfg(pool, w)->memory_soft_limit_mb << 20);
    metrics_header(&b, "verona_worker_memory_hard_limit_bytes", "gauge",
                   "RSS at which each worker is killed at once (memory_hard_limit_mb).");
    for (struct pool_worker *w = pool->workers; w != NULL; w = w->next)
        if (pool_worker_phase(w) != PHASE_GONE)
            textbuf_printf(&b, "verona_worker_memory_hard_limit_bytes{slot=\"%d\",pid=\"%d\"} %llu\n", w->slot, w->pid,
                           (unsigned long long)metrics_worker_cfg(pool, w)->memory_hard_limit_mb << 20);
    metrics_header(&b, "verona_worker_db_up", "gauge", "1 when this worker reaches PostgreSQL (ready workers).");
    for (struct pool_worker *w = pool->workers; w != NULL; w = w->next)
        if (pool_worker_phase(w) == PHASE_READY)
            textbuf_printf(&b, "verona_worker_db_up{slot=\"%d\",pid=\"%d\"} %d\n", w->slot, w->pid, w->db_up ? 1 : 0);

    metrics_header(&b, "verona_requests_total", "counter", "HTTP requests answered, by route and status.");
    for (int r = 0; r < ROUTE_COUNT; r++)
        for (int s = 0; s < CONTROL_STATUS_COUNT; s++) {
            char code[8];
            if (s < CONTROL_STATUS_COUNT - 1)
                snprintf(code, sizeof(code), "%d", control_statuses[s]);
            else
                strcpy(code, "other");
            if (total.requests[r][s] > 0)
                textbuf_printf(&b, "verona_requests_total{route=\"%s\",status=\"%s\"} %llu\n",
                               control_route_names[r], code, (unsigned long long)total.requests[r][s]);
        }

    metrics_header(&b, "verona_logins_total", "counter", "Login attempts by result.");
    for (int i = 0; i < LOGIN_RESULT_COUNT; i++)
        textbuf_printf(&b, "verona_logins_total{result=\"%s\"} %llu\n", control_login_result_names[i],
                       (unsigned long long)total.logins[i]);

    metrics_header(&b, "verona_request_duration_seconds", "histogram", "Time from a request's first byte to its answer.");
    for (int r = 0; r < ROUTE_COUNT; r++) {
        uint64_t cumulative = 0;
        for (int k = 0; k < CONTROL_LATENCY_BUCKETS; k++) {
            cumulative += total.latency[r][k];
            if (k < CONTROL_LATENCY_BUCKETS - 1)
                textbuf_printf(&b, "verona_request_duration_seconds_bucket{route=\"%s\",le=\"%g\"} %llu\n",
                               control_route_names[r], (double)control_latency_bounds_us[k] / 1e6,
                               (unsigned long long)cumulative);
            else
                textbuf_printf(&b, "verona_request_duration_seconds_bucket{route=\"%s\",le=\"+Inf\"} %llu\n",
                               control_route_names[r], (unsigned long long)cumulative);
        }
        textbuf_printf(&b, "verona_request_duration_seconds_sum{route=\"%s\"} %.6f\n", control_route_names[r],
                       (double)total.latency_sum_us[r] / 1e6);
        textbuf_printf(&b, "verona_request_duration_seconds_count{route=\"%s\"} %llu\n", control_route_names[r],
                       (unsigned long long)cumulative);
    }

    metrics_header(&b, "verona_db_up", "gauge", "1 when a serving worker reaches PostgreSQL.");
    textbuf_printf(&b, "verona_db_up %d\n", db_up);
    metrics_header(&b, "verona_db_primary_changes_total", "counter",
                   "Times a worker found the primary on another node (failover or switchover).");
    textbuf_printf(&b, "verona_db_primary_changes_total %llu\n", (unsigned long long)total.db_primary_changes);
    metrics_header(&b, "verona_worker_db_host", "gauge", "The PostgreSQL primary each worker uses (value 1).");
    for (struct pool_worker *w = pool->workers; w != NULL; w = w->next)
        if (pool_worker_phase(w) != PHASE_GONE && w->db_host[0] != '\0')
            textbuf_printf(&b, "verona_worker_db_host{slot=\"%d\",host=\"%s\"} 1\n", w->slot, w->db_host);
    metrics_header(&b, "verona_hash_queue_depth", "gauge", "Password hashes queued or running, all workers.");
    textbuf_printf(&b, "verona_hash_queue_depth %d\n", hash_queue);
    metrics_header(&b, "verona_connections_open", "gauge", "Client connections open, all workers.");
    textbuf_printf(&b, "verona_connections_open %d\n", connections);
    metrics_header(&b, "verona_requests_in_flight", "gauge", "Requests being handled, all workers.");
    textbuf_printf(&b, "verona_requests_in_flight %d\n", in_flight);
    metrics_header(&b, "verona_connections_accepted_total", "counter", "Client connections accepted.");
    textbuf_printf(&b, "verona_connections_accepted_total %llu\n", (unsigned long long)total.connections_accepted);
    metrics_header(&b, "verona_session_cache_lookups_total", "counter",
                   "Session checks by whether the worker's cache answered (hit) or PostgreSQL did (miss).");
    textbuf_printf(&b, "verona_session_cache_lookups_total{result=\"hit\"} %llu\n",
                   (unsigned long long)total.session_cache_hits);
    textbuf_printf(&b, "verona_session_cache_lookups_total{result=\"miss\"} %llu\n",
                   (unsigned long long)total.session_cache_misses);

    metrics_header(&b, "verona_rollouts_total", "counter", "Rollouts that ended, by result.");
    textbuf_printf(&b, "verona_rollouts_total{result=\"done\"} %llu\n", (unsigned long long)pool->rollout.count_done);
    textbuf_printf(&b, "verona_rollouts_total{result=\"rolled_back\"} %llu\n",
                   (unsigned long long)pool->rollout.count_rolled_back);
    metrics_header(&b, "verona_rollout_in_progress", "gauge", "1 while a rollout or rollback runs.");
    textbuf_printf(&b, "verona_rollout_in_progress %d\n", rollout_active(&pool->rollout));

    metrics_header(&b, "verona_supervisor_upgrades_total", "counter",
                   "Times the supervisor was replaced in place (ctl upgrade) since it started.");
    textbuf_printf(&b, "verona_supervisor_upgrades_total %u\n", sup->upgrades);

    metrics_header(&b, "verona_build_info", "gauge", "The build the pool runs (last good).");
    {
        const char *build_id = "";
        for (struct pool_worker *w = pool->workers; w != NULL; w = w->next)
            if (w->build == pool->good && w->build_id[0] != '\0')
                build_id = w->build_id;
        textbuf_printf(&b, "verona_build_info{build_id=\"%s\",binary_sha256=\"%s\"} 1\n", build_id, pool->good->sha256);
    }
    return textbuf_take(&b);
}

/* ---- the HTTP side ---- */

struct metrics_client {
    uv_tcp_t tcp;
    uv_timer_t timer;
    struct metrics *m;
    char in[METRICS_REQUEST_MAX + 1];
    size_t len;
    int handles;
    int answered;
};

static void metrics_client_on_close(uv_handle_t *h)
{
    struct metrics_client *c = h->data;

    if (--c->handles == 0)
        free(c);
}

static void metrics_client_close(struct metrics_client *c)
{
    if (uv_is_closing((uv_handle_t *)&c->tcp))
        return;
    uv_close((uv_handle_t *)&c->tcp, metrics_client_on_close);
    uv_close((uv_handle_t *)&c->timer, metrics_client_on_close);
}

static void metrics_on_write(uv_write_t *req, int status)
{
    struct metrics_client *c = req->data;

    (void)status;
    free(req);
    metrics_client_close(c);
}

/* The status page may run nothing and load nothing from elsewhere. */
#define METRICS_PAGE_HEADERS                                                                                        \
    "Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n"                                             \
    "Content-Security-Policy: default-src 'none'; style-src 'unsafe-inline'; img-src data:\r\n"

static void metrics_answer(struct metrics_client *c, int status, const char *reason, const char *type,
                           const char *body, int head)
{
    size_t blen = strlen(body);
    int hlen;
    uv_write_t *req;
    char *out;
    uv_buf_t buf;

    c->answered = 1;
    uv_read_stop((uv_stream_t *)&c->tcp);
    req = malloc(sizeof(*req) + 512 + blen);
    if (req == NULL) {
        metrics_client_close(c);
        return;
    }
    out = (char *)(req + 1);
    hlen = snprintf(out, 512, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%sConnection: close\r\n\r\n",
                    status, reason, type, blen, strncmp(type, "text/html", 9) == 0 ? METRICS_PAGE_HEADERS : "");
    if (!head)
        memcpy(out + hlen, body, blen);
    req->data = c;
    buf = uv_buf_init(out, (unsigned)((size_t)hlen + (head ? 0 : blen)));
    if (uv_write(req, (uv_stream_t *)&c->tcp, &buf, 1, metrics_on_write) != 0) {
        free(req);
        metrics_client_close(c);
    }
}

/* Answers once the head is in (supervisor/metrics_request.c parses it). */
static void metrics_handle(struct metrics_client *c)
{
    struct metrics_request mr;
    char *text;

    if (metrics_request_parse(c->in, c->len, &mr) == 0)
        return; /* more to come */
    if (mr.status != 200) {
        metrics_answer(c, mr.status, mr.reason, "text/plain", mr.message, 0);
        return;
    }
    text = mr.page == METRICS_PAGE_STATUS ? status_page_render(c->m->sup) : metrics_render(c->m->sup);
    if (text == NULL) {
        metrics_answer(c, 503, "Service Unavailable", "text/plain", "out of memory\n", 0);
        return;
    }
    metrics_answer(c, 200, "OK",
                   mr.page == METRICS_PAGE_STATUS ? "text/html; charset=utf-8" : "text/plain; version=0.0.4; charset=utf-8",
                   text, mr.head);
    free(text);
}

static void metrics_on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct metrics_client *c = h->data;

    (void)suggested;
    *buf = uv_buf_init(c->in + c->len, (unsigned)(METRICS_REQUEST_MAX - c->len));
}

static void metrics_on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct metrics_client *c = s->data;

    (void)buf;
    if (c->answered)
        return;
    if (nread < 0) {
        metrics_client_close(c);
        return;
    }
    c->len += (size_t)nread;
    metrics_handle(c);
}

static void metrics_on_timeout(uv_timer_t *t)
{
    metrics_client_close(t->data);
}

static void metrics_on_connection(uv_stream_t *server, int status)
{
    struct metrics *m = server->data;
    struct metrics_client *c;

    if (status < 0 || (c = calloc(1, sizeof(*c))) == NULL)
        return;
    c->m = m;
    uv_tcp_init(m->sup->loop, &c->tcp);
    uv_timer_init(m->sup->loop, &c->timer);
    c->tcp.data = c->timer.data = c;
    c->handles = 2;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
        metrics_client_close(c);
        return;
    }
    uv_timer_start(&c->timer, metrics_on_timeout, METRICS_TIMEOUT_MS, 0);
    uv_read_start((uv_stream_t *)&c->tcp, metrics_on_alloc, metrics_on_read);
}

int metrics_start(struct metrics *m, struct supervisor *sup, const char *address, char *err, size_t errsize)
{
    struct sockaddr_storage ss;
    int rc;

    memset(m, 0, sizeof(*m));
    m->sup = sup;
    if (config_address_parse(address, &ss) != 0) {
        snprintf(err, errsize, "metrics_listen: '%.64s' is not HOST:PORT", address);
        return -1;
    }
    uv_tcp_init(sup->loop, &m->server);
    m->server.data = m;
    rc = uv_tcp_bind(&m->server, (const struct sockaddr *)&ss, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&m->server, 64, metrics_on_connection);
    if (rc != 0) {
        snprintf(err, errsize, "metrics_listen %.64s: %s", address, uv_strerror(rc));
        uv_close((uv_handle_t *)&m->server, NULL);
        return -1;
    }
    m->open = 1;
    return 0;
}

void metrics_stop(struct metrics *m)
{
    if (!m->open)
        return;
    m->open = 0;
    uv_close((uv_handle_t *)&m->server, NULL);
}

int metrics_adopt(struct metrics *m, struct supervisor *sup, int fd, char *err, size_t errsize)
{
    int rc;

    memset(m, 0, sizeof(*m));
    m->sup = sup;
    uv_tcp_init(sup->loop, &m->server);
    m->server.data = m;
    rc = uv_tcp_open(&m->server, fd);
    if (rc != 0)
        close(fd); /* the handle never owned it */
    else
        rc = uv_listen((uv_stream_t *)&m->server, 64, metrics_on_connection);
    if (rc != 0) {
        snprintf(err, errsize, "metrics_listen (descriptor %d): %s", fd, uv_strerror(rc));
        uv_close((uv_handle_t *)&m->server, NULL);
        return -1;
    }
    m->open = 1;
    return 0;
}
