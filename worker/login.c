/* worker/login.c - POST /v1/login.
 *
 * Steps: throttle check and user lookup (one statement, no Argon2 work
 * for a throttled attempt; when a window is full only of attempts still
 * in flight, ask again after a short wait) -> verify on the hash pool (against a dummy
 * hash for unknown or locked users, so every failure costs the same) ->
 * record the success (session, audit, rehash) or the failure (counted,
 * audited) -> answer.
 */
#include "routes.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A login whose window is full only of attempts in flight asks again
 * after 20 ms, doubling up to 320 ms (plus up to half of that at random),
 * for at most 5 s; then 429. */
#define LOGIN_WAIT_FIRST_MS 20
#define LOGIN_WAIT_STEP_MAX_MS 320
#define LOGIN_WAIT_MAX_MS 5000

static void login_record_failure(struct route_ctx *ctx, const char *result);
static void login_begin(struct route_ctx *ctx);

static void login_on_refusal_audited(void *arg, PGresult *res)
{
    struct route_ctx *ctx = arg;

    (void)res; /* audited or not, the answer is the same */
    if (ctx->share_refused)
        route_throttled_because(ctx, 1, ROUTE_SHARE_MESSAGE);
    else if (strcmp(ctx->result, "throttled") == 0)
        route_throttled(ctx, 1);
    else
        route_unavailable(ctx);
}

/* The login is refused before it holds an attempt (the hash queue is
 * full; no room in a window after waiting): audit it, then answer 503 or
 * 429. */
static void login_refuse(struct route_ctx *ctx, const char *result)
{
    struct db_query *q = &ctx->query;

    snprintf(ctx->result, sizeof(ctx->result), "%s", result);
    db_query_init(q, DB_LOGIN_AUDIT, login_on_refusal_audited, ctx);
    db_query_text(q, ctx->username);
    db_query_text(q, ctx->address);
    db_query_text(q, ctx->result);
    db_query_send(&ctx->w->db, q);
}

static void login_on_wait_closed(uv_handle_t *h)
{
    struct route_ctx *ctx = h->data;

    /* The client left: nobody waits for this login any more. */
    if (http_request_peer_gone(ctx->req))
        route_unavailable(ctx);
    else
        login_begin(ctx);
}

static void login_on_waited(uv_timer_t *t)
{
    uv_close((uv_handle_t *)t, login_on_wait_closed);
}

/* The attempts in flight fill a window: their outcome decides whether
 * this one has room, so ask again a little later. */
static void login_wait(struct route_ctx *ctx)
{
    uint64_t now = uv_now(ctx->w->loop);
    uint64_t delay = LOGIN_WAIT_FIRST_MS;

    if (ctx->waits == 0)
        ctx->wait_deadline_ms = now + LOGIN_WAIT_MAX_MS;
    if (now >= ctx->wait_deadline_ms) {
        login_refuse(ctx, "throttled");
        return;
    }
    for (int i = 0; i < ctx->waits && delay < LOGIN_WAIT_STEP_MAX_MS; i++)
        delay *= 2;
    delay += randombytes_uniform((uint32_t)delay / 2 + 1); /* waiters do not ask in step */
    ctx->waits++;
    uv_timer_init(ctx->w->loop, &ctx->wait_timer);
    ctx->wait_timer.data = ctx;
    uv_timer_start(&ctx->wait_timer, login_on_waited, delay, 0);
}

static void login_on_cancelled(void *arg, PGresult *res)
{
    (void)res;
    route_unavailable(arg);
}

/* The attempt ends in 503 before its password was judged (the hash queue
 * is full, the hash failed): it is no failure, so its provisional failure
 * row goes, or a burst of load would throttle the people it turned away;
 * it is audited as 'unavailable'. */
static void login_cancel_unavailable(struct route_ctx *ctx)
{
    struct db_query *q = &ctx->query;

    db_query_init(q, DB_LOGIN_UNAVAILABLE, login_on_cancelled, ctx);
    db_query_text(q, ctx->attempt_id);
    db_query_text(q, ctx->username);
    db_query_text(q, ctx->address);
    db_query_send(&ctx->w->db, q);
}

static void login_on_recorded(void *arg, PGresult *res)
{
    struct route_ctx *ctx = arg;

    if (!db_result_ok(res)) {
        route_unavailable(ctx);
        return;
    }
    if (ctx->step == STEP_LOGIN_SUCCEEDED && PQgetisnull(res, 0, 0)) {
        /* Locked, or the password changed, while this attempt hashed: the
         * password it verified is no longer the user's. */
        login_record_failure(ctx, "bad_password");
        return;
    }
    if (ctx->step == STEP_LOGIN_SUCCEEDED) {
        route_reply(ctx, 200, NULL,
                    json_pack("{s:s, s:I, s:s}", "token", ctx->token, "user_id",
                              (json_int_t)strtoll(ctx->user_id, NULL, 10), "expires_at",
                              PQgetvalue(res, 0, 0)));
        return;
    }
    route_error(ctx, 401, "invalid_credentials", "wrong username or password", NULL);
}

/* Records a failed attempt (counted toward the throttle, audited). */
static void login_record_failure(struct route_ctx *ctx, const char *result)
{
    struct db_query *q = &ctx->query;

    snprintf(ctx->result, sizeof(ctx->result), "%s", result);
    ctx->step = STEP_LOGIN_FAILED;
    db_query_init(q, DB_LOGIN_FAILED, login_on_recorded, ctx);
    db_query_text(q, ctx->attempt_id);
    db_query_text(q, ctx->username);
    db_query_text(q, ctx->address);
    db_query_text(q, ctx->result);
    db_query_send(&ctx->w->db, q);
}

static void login_on_verified(struct auth_job *job)
{
    struct route_ctx *ctx = job->data;
    struct db_query *q = &ctx->query;

    if (job->failed) {
        login_cancel_unavailable(ctx);
        return;
    }
    if (!job->verified || ctx->locked) {
        login_record_failure(ctx, ctx->user_id[0] == '\0' ? "unknown_user"
                                  : ctx->locked          ? "locked"
                                                         : "bad_password");
        return;
    }
    auth_token_new(ctx->token);
    auth_token_hash(ctx->token, ctx->token_hash);
    snprintf(ctx->session_ttl_s, sizeof(ctx->session_ttl_s), "%d", ctx->w->cfg.session_ttl_s);
    snprintf(ctx->session_idle_s, sizeof(ctx->session_idle_s), "%d", ctx->w->cfg.session_idle_s);
    ctx->step = STEP_LOGIN_SUCCEEDED;
    db_query_init(q, DB_LOGIN_SUCCEEDED, login_on_recorded, ctx);
    db_query_text(q, ctx->attempt_id);
    db_query_text(q, ctx->user_id);
    db_query_text(q, ctx->username);
    db_query_text(q, ctx->address);
    db_query_binary(q, ctx->token_hash, AUTH_TOKEN_HASH_BYTES);
    db_query_text(q, ctx->session_ttl_s);
    db_query_text(q, ctx->session_idle_s);
    db_query_text(q, job->new_hash[0] != '\0' ? job->new_hash : NULL); /* a rehash, when the settings changed */
    db_query_text(q, job->stored_hash);
    db_query_send(&ctx->w->db, q);
}

static void login_on_begin(void *arg, PGresult *res)
{
    struct route_ctx *ctx = arg;
    struct auth_job *job = ctx->job;
    int wait_s;

    if (!db_result_ok(res) || PQntuples(res) != 1) {
        route_unavailable(ctx);
        return;
    }
    wait_s = atoi(PQgetvalue(res, 0, 0));
    if (wait_s > 0) {
        route_throttled(ctx, wait_s);
        return;
    }
    if (wait_s < 0) {
        login_wait(ctx);
        return;
    }
    snprintf(ctx->attempt_id, sizeof(ctx->attempt_id), "%s", PQgetvalue(res, 0, 4));
    if (!PQgetisnull(res, 0, 1)) {
        snprintf(ctx->user_id, sizeof(ctx->user_id), "%s", PQgetvalue(res, 0, 1));
        snprintf(job->stored_hash, sizeof(job->stored_hash), "%s", PQgetvalue(res, 0, 2));
        ctx->locked = strcmp(PQgetvalue(res, 0, 3), "t") == 0;
        if (ctx->locked)
            job->stored_hash[0] = '\0'; /* locked: same work as anyone else, never a match */
    }
    snprintf(job->username, sizeof(job->username), "%s", ctx->username); /* picks the dummy hash */
    job->rehash_if_needed = 1;
    job->cb = login_on_verified;
    job->data = ctx;
    if (auth_job_submit(&ctx->w->auth, job) != 0)
        login_cancel_unavailable(ctx);
}

void login_handle(struct route_ctx *ctx)
{
    const char *username, *password;
    json_t *body = route_json_body(ctx, 0);
    long chars;
    int share;

    if (body == NULL)
        return;
    if (route_json_string(ctx, body, "username", &username) != 0 ||
        route_json_string(ctx, body, "password", &password) != 0) {
        json_decref(body);
        return;
    }
    chars = password_utf8_length(password, strlen(password));
    if (strlen(username) == 0 || strlen(username) > AUTH_USERNAME_MAX || chars < 1 ||
        chars > AUTH_PASSWORD_MAX_CHARS) {
        json_decref(body);
        route_error(ctx, 400, "invalid_request",
                    "username must have 1-64 bytes and password 1-1024 characters", NULL);
        return;
    }
    snprintf(ctx->username, sizeof(ctx->username), "%s", username);
    if (auth_queue_full(&ctx->w->auth)) {
        /* Overloaded: refuse before any hashing, never queue without bound. */
        json_decref(body);
        login_refuse(ctx, "unavailable");
        return;
    }
    share = auth_share_take(&ctx->w->auth, ctx->address);
    if (share < 0) {
        /* This address holds its eighth of the queue: 429, no hash. */
        json_decref(body);
        ctx->share_refused = 1;
        login_refuse(ctx, "throttled");
        return;
    }
    ctx->share_held = share == 0;
    ctx->job = calloc(1, sizeof(*ctx->job));
    if (ctx->job == NULL) {
        json_decref(body);
        route_unavailable(ctx);
        return;
    }
    ctx->job->verify = 1;
    memcpy(ctx->job->verify_password, password, strlen(password) + 1);
    json_decref(body);
    login_begin(ctx);
}

/* The throttle check, the user, and the attempt's pending row. */
static void login_begin(struct route_ctx *ctx)
{
    struct db_query *q = &ctx->query;

    db_query_init(q, DB_LOGIN_BEGIN, login_on_begin, ctx);
    db_query_text(q, ctx->username);
    db_query_text(q, ctx->address);
    route_throttle_params(ctx, q);
    db_query_send(&ctx->w->db, q);
}
