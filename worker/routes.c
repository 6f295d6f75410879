/* worker/routes.c - dispatch by path and method, and the small routes:
 * /healthz, /readyz, GET /v1/session and POST /v1/logout.
 */
#include "routes.h"

#include "../proto/log.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

typedef void (*route_handler)(struct route_ctx *ctx);

static void route_healthz(struct route_ctx *ctx);
static void route_readyz(struct route_ctx *ctx);
static void route_session(struct route_ctx *ctx);
static void route_logout(struct route_ctx *ctx);

static const struct route {
    const char *path;
    enum http_method method;
    const char *allow;
    route_handler handler;
    enum control_route id;
    int needs_address;   /* throttled or audited by client address */
} routes[] = {
    { "/v1/users", HTTP_POST, "POST", account_register, ROUTE_USERS, 1 },
    { "/v1/login", HTTP_POST, "POST", login_handle, ROUTE_LOGIN, 1 },
    { "/v1/session", HTTP_GET, "GET, HEAD", route_session, ROUTE_SESSION, 0 },
    { "/v1/logout", HTTP_POST, "POST", route_logout, ROUTE_LOGOUT, 0 },
    { "/v1/password", HTTP_POST, "POST", account_password, ROUTE_PASSWORD, 1 },
    { "/healthz", HTTP_GET, "GET, HEAD", route_healthz, ROUTE_HEALTHZ, 0 },
    { "/readyz", HTTP_GET, "GET, HEAD", route_readyz, ROUTE_READYZ, 0 },
};

static void route_healthz(struct route_ctx *ctx)
{
    route_reply(ctx, 200, NULL, json_pack("{s:s}", "status", "ok"));
}

static void route_readyz(struct route_ctx *ctx)
{
    if (db_is_up(&ctx->w->db))
        route_reply(ctx, 200, NULL, json_pack("{s:s}", "status", "ready"));
    else if (db_ready_for_balancer(&ctx->w->db))
        route_reply(ctx, 200, NULL, json_pack("{s:s}", "status", "failover")); /* requests wait for a primary */
    else if (db_schema_too_old(&ctx->w->db))
        route_error(ctx, 503, "unavailable", "the database schema is older than this build (run `verona migrate`)",
                    "Retry-After: 1\r\n");
    else
        route_error(ctx, 503, "unavailable", "the database is not reachable", "Retry-After: 1\r\n");
}

static uint64_t route_now_ms(const struct route_ctx *ctx)
{
    return uv_now(ctx->w->loop);
}

static void route_session_answer(struct route_ctx *ctx)
{
    char headers[160];

    snprintf(headers, sizeof(headers), "X-User-Id: %s\r\nX-Username: %s\r\n", ctx->user_id, ctx->username);
    route_reply(ctx, 200, headers,
                json_pack("{s:I, s:s, s:s}", "user_id", (json_int_t)strtoll(ctx->user_id, NULL, 10), "username",
                          ctx->username, "expires_at", ctx->expires_at));
}

/* Keeps PostgreSQL's answer for this session (at most a second). */
static void route_session_cache_put(struct route_ctx *ctx)
{
    session_cache_put(&ctx->w->sessions, ctx->token_hash, ctx->sent_ms, ctx->revocations_at_send, ctx->user_id,
                      ctx->username, ctx->expires_at, ctx->expires_epoch);
}

_Static_assert(AUTH_TOKEN_HASH_BYTES == SESSION_TOUCH_HASH_BYTES, "session_touch reads the token hash");

static void route_session_on_touched(struct session_touch_entry *e, int ok)
{
    struct route_ctx *ctx = (struct route_ctx *)((char *)e - offsetof(struct route_ctx, touch));

    /* Never answer 2xx (nor keep the answer) before the write is committed. */
    if (!ok) {
        route_unavailable(ctx);
        return;
    }
    route_session_cache_put(ctx);
    route_session_answer(ctx);
}

static void route_session_on_result(void *arg, PGresult *res)
{
    struct route_ctx *ctx = arg;

    if (!db_result_ok(res)) {
        route_unavailable(ctx);
        return;
    }
    if (PQntuples(res) == 0) {
        route_session_ended(ctx);
        return;
    }
    snprintf(ctx->user_id, sizeof(ctx->user_id), "%s", PQgetvalue(res, 0, 0));
    snprintf(ctx->username, sizeof(ctx->username), "%s", PQgetvalue(res, 0, 1));
    snprintf(ctx->expires_at, sizeof(ctx->expires_at), "%s", PQgetvalue(res, 0, 2));
    ctx->expires_epoch = strtoll(PQgetvalue(res, 0, 4), NULL, 10);
    if (strcmp(PQgetvalue(res, 0, 3), "t") == 0) {
        /* Last use is written at most once a minute, with other sessions'. */
        ctx->touch.token_hash = ctx->token_hash;
        ctx->touch.done = route_session_on_touched;
        session_touch_add(&ctx->w->touch, &ctx->touch);
        return;
    }
    route_session_cache_put(ctx);
    route_session_answer(ctx);
}

static void route_session(struct route_ctx *ctx)
{
    struct db_query *q = &ctx->query;
    const struct session_cache_entry *hit;

    if (route_bearer(ctx) != 0)
        return;
    hit = session_cache_get(&ctx->w->sessions, ctx->token_hash, route_now_ms(ctx), (int64_t)time(NULL));
    if (hit != NULL) {
        snprintf(ctx->user_id, sizeof(ctx->user_id), "%s", hit->user_id);
        snprintf(ctx->username, sizeof(ctx->username), "%s", hit->username);
        snprintf(ctx->expires_at, sizeof(ctx->expires_at), "%s", hit->expires_at);
        route_session_answer(ctx);
        return;
    }
    ctx->sent_ms = route_now_ms(ctx);
    ctx->revocations_at_send = ctx->w->sessions.revocations;
    db_query_init(q, DB_SESSION_GET, route_session_on_result, ctx);
    db_query_binary(q, ctx->token_hash, AUTH_TOKEN_HASH_BYTES);
    db_query_send(&ctx->w->db, q);
}

static void route_logout_on_result(void *arg, PGresult *res)
{
    struct route_ctx *ctx = arg;

    if (!db_result_ok(res)) {
        route_unavailable(ctx);
        return;
    }
    /* Revocation takes effect at once on this worker. */
    session_cache_forget(&ctx->w->sessions, ctx->token_hash);
    if (ctx->logout_all && !PQgetisnull(res, 0, 1))
        session_cache_forget_user(&ctx->w->sessions, PQgetvalue(res, 0, 1));
    /* Nothing revoked: the token was not valid, unless this is the pool's
     * second try after a lost answer, whose first try revoked it (SPEC
     * 10.2: the revoked row is the check). */
    if (strcmp(PQgetvalue(res, 0, 0), "0") == 0 && !ctx->query.retried) {
        route_session_ended(ctx);
        return;
    }
    route_reply(ctx, 204, NULL, NULL);
}

static void route_logout(struct route_ctx *ctx)
{
    struct db_query *q = &ctx->query;
    json_t *body, *all;

    if (route_bearer(ctx) != 0)
        return;
    body = route_json_body(ctx, 1);
    if (body == NULL)
        return;
    all = json_object_get(body, "all");
    if (all != NULL && !json_is_boolean(all)) {
        json_decref(body);
        route_error(ctx, 400, "invalid_request", "\"all\" must be true or false", NULL);
        return;
    }
    ctx->logout_all = all != NULL && json_is_true(all);
    json_decref(body);
    db_query_init(q, DB_LOGOUT, route_logout_on_result, ctx);
    db_query_binary(q, ctx->token_hash, AUTH_TOKEN_HASH_BYTES);
    db_query_text(q, ctx->logout_all ? "true" : "false");
    db_query_send(&ctx->w->db, q);
}

static const struct route *route_find(const char *path)
{
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
        if (strcmp(routes[i].path, path) == 0)
            return &routes[i];
    return NULL;
}

enum control_route routes_route_of(const char *path)
{
    const struct route *match = route_find(path);

    return match != NULL ? match->id : ROUTE_OTHER;
}

void routes_dispatch(struct http_server *server, struct http_request *req)
{
    struct worker *w = server->data;
    const struct route *match = NULL;
    struct route_ctx *ctx = calloc(1, sizeof(*ctx));

    if (ctx == NULL) {
        http_respond(req, 503, "Retry-After: 1\r\n",
                     "{\"error\":\"unavailable\",\"message\":\"out of memory\"}", 49);
        return;
    }
    ctx->w = w;
    ctx->req = req;
    match = route_find(req->path);
    if (match == NULL) {
        route_error(ctx, 404, "not_found", "no such endpoint", NULL);
        return;
    }
    req->route = match->id;
    /* HEAD is GET without the body (http_respond leaves it out). */
    if (req->method != match->method && !(req->method == HTTP_HEAD && match->method == HTTP_GET)) {
        char allow[32];
        snprintf(allow, sizeof(allow), "Allow: %s\r\n", match->allow);
        route_error(ctx, 405, "method_not_allowed", "method not allowed on this endpoint", allow);
        return;
    }
    /* Not on the hot paths (session checks, health): only where it counts. */
    if (match->needs_address) {
        /* All X-Forwarded-For lines: a proxy may append a line of its own
         * after the client's, and the right-most entries count. */
        char xff[HTTP_HEADERS_MAX_BYTES + 2 * HTTP_HEADERS_MAX_COUNT];

        address_client(&w->cfg, &req->peer,
                       http_request_header_all(req, "x-forwarded-for", xff, sizeof(xff)), ctx->address,
                       sizeof(ctx->address));
    }
    match->handler(ctx);
}
