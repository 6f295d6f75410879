/* worker/route_ctx.c - the answers and request reading every handler
 * shares (worker/route_ctx.h).
 */
#include "route_ctx.h"

#include "../proto/log.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

void route_reply(struct route_ctx *ctx, int status, const char *headers, json_t *body)
{
    char *text = NULL;

    if (ctx->req->route == ROUTE_LOGIN) {
        enum control_login_result result = status == 200   ? LOGIN_SUCCESS
                                           : status == 401 ? LOGIN_INVALID_CREDENTIALS
                                           : status == 429 ? LOGIN_THROTTLED
                                           : status == 503 ? LOGIN_UNAVAILABLE
                                                           : LOGIN_INVALID_REQUEST;
        ctx->w->counters.logins[result]++;
    }
    if (body != NULL) {
        text = json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER);
        json_decref(body);
    }
    http_respond(ctx->req, status, headers, text != NULL ? text : "", text != NULL ? strlen(text) : 0);
    if (text != NULL)
        log_json_free(text);
    if (ctx->job != NULL) {
        sodium_memzero(ctx->job, sizeof(*ctx->job));
        free(ctx->job);
    }
    if (ctx->share_held)
        auth_share_release(&ctx->w->auth, ctx->address);
    sodium_memzero(ctx->token, sizeof(ctx->token));
    free(ctx);
}

void route_error(struct route_ctx *ctx, int status, const char *code, const char *message,
                 const char *headers)
{
    route_reply(ctx, status, headers, json_pack("{s:s, s:s}", "error", code, "message", message));
}

void route_unavailable(struct route_ctx *ctx)
{
    route_error(ctx, 503, "unavailable", "the service is unavailable, try again",
                "Retry-After: 1\r\n");
}

void route_session_ended(struct route_ctx *ctx)
{
    route_error(ctx, 401, "invalid_token", "the session is invalid, expired or ended",
                "WWW-Authenticate: Bearer error=\"invalid_token\"\r\n");
}

void route_throttled_because(struct route_ctx *ctx, int wait_s, const char *message)
{
    char headers[48];

    snprintf(headers, sizeof(headers), "Retry-After: %d\r\n", wait_s > 0 ? wait_s : 1);
    route_error(ctx, 429, "too_many_attempts", message, headers);
}

void route_throttled(struct route_ctx *ctx, int wait_s)
{
    route_throttled_because(ctx, wait_s, "too many failed attempts, try again later");
}

/* application/json, optionally followed by parameters (; charset=utf-8). */
static int route_is_json(const char *type)
{
    size_t n = strlen("application/json");

    if (type == NULL || strncasecmp(type, "application/json", n) != 0)
        return 0;
    return type[n] == '\0' || type[n] == ';' || type[n] == ' ' || type[n] == '\t';
}

json_t *route_json_body(struct route_ctx *ctx, int optional)
{
    struct http_request *req = ctx->req;
    json_error_t error;
    json_t *obj;

    if (optional && req->body_len == 0)
        return json_object();
    if (!route_is_json(http_request_header(req, "content-type"))) {
        route_error(ctx, 415, "unsupported_media_type", "Content-Type must be application/json",
                    NULL);
        return NULL;
    }
    if (req->body_len == 0) {
        route_error(ctx, 400, "invalid_request", "a JSON object body is required", NULL);
        return NULL;
    }
    /* Numbers past 64 bits in members we ignore are still valid JSON. */
    /* \u0000 is valid JSON: route_json_string() refuses it by name. */
    obj = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES | JSON_DECODE_INT_AS_REAL | JSON_ALLOW_NUL,
                     &error);
    if (obj == NULL) {
        route_error(ctx, 400, "invalid_request", "the body is not valid JSON (UTF-8, no duplicate keys)",
                    NULL);
        return NULL;
    }
    if (!json_is_object(obj)) {
        json_decref(obj);
        route_error(ctx, 400, "invalid_request", "the body must be a JSON object", NULL);
        return NULL;
    }
    return obj;
}

int route_json_string(struct route_ctx *ctx, json_t *obj, const char *name, const char **out)
{
    json_t *v = json_object_get(obj, name);
    char message[96];

    if (v != NULL && json_is_string(v) && strlen(json_string_value(v)) == json_string_length(v)) {
        *out = json_string_value(v);
        return 0;
    }
    snprintf(message, sizeof(message), "\"%s\" must be a string%s", name,
             v != NULL && json_is_string(v) ? " without U+0000" : "");
    route_error(ctx, 400, "invalid_request", message, NULL);
    return -1;
}

int route_bearer(struct route_ctx *ctx)
{
    const char *auth = http_request_header(ctx->req, "authorization");
    const char *p;

    if (auth == NULL) {
        /* No credentials: no error code in the challenge (RFC 6750 3.1). */
        route_error(ctx, 401, "invalid_token", "a valid bearer token is required",
                    "WWW-Authenticate: Bearer realm=\"verona\"\r\n");
        return -1;
    }
    if (strncasecmp(auth, "Bearer ", 7) != 0 || http_request_header_count(ctx->req, "authorization") != 1)
        goto invalid;
    p = auth + 7;
    while (*p == ' ')
        p++;
    if (!auth_token_valid(p))
        goto invalid;
    memcpy(ctx->token, p, AUTH_TOKEN_CHARS);
    ctx->token[AUTH_TOKEN_CHARS] = '\0';
    auth_token_hash(ctx->token, ctx->token_hash);
    return 0;
invalid:
    route_error(ctx, 401, "invalid_token", "a valid bearer token is required",
                "WWW-Authenticate: Bearer error=\"invalid_token\"\r\n");
    return -1;
}

void route_throttle_params(struct route_ctx *ctx, struct db_query *q)
{
    const struct config *cfg = &ctx->w->cfg;
    const struct config_rate *rates[ROUTE_THROTTLE_WINDOWS] = { &cfg->throttle_account_address,
                                                                &cfg->throttle_address, &cfg->throttle_account };

    for (int i = 0; i < ROUTE_THROTTLE_WINDOWS; i++) {
        snprintf(ctx->throttle[i].count, sizeof(ctx->throttle[i].count), "%d", rates[i]->count);
        snprintf(ctx->throttle[i].seconds, sizeof(ctx->throttle[i].seconds), "%d", rates[i]->seconds);
        db_query_text(q, ctx->throttle[i].count);
        db_query_text(q, ctx->throttle[i].seconds);
    }
}

