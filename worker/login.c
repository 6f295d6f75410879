/* worker/login.c - POST /v1/login.
 *
 * Steps: throttle check and user lookup (one statement, no Argon2 work
 * for a throttled attempt) -> verify on the hash pool (against a dummy
 * hash for unknown or locked users, so every failure costs the same) ->
 * record the success (session, audit, rehash) or the failure (counted,
 * audited) -> answer.
 */
#include "routes.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void login_record_failure(struct route_ctx *ctx, const char *result);

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

    memset(q, 0, sizeof(*q));
    q->statement = DB_LOGIN_UNAVAILABLE;
    q->nparams = 3;
    q->values[0] = ctx->attempt_id;
    q->values[1] = ctx->username;
    q->values[2] = ctx->address;
    q->cb = login_on_cancelled;
    q->arg = ctx;
    db_query_send(&ctx->w->db, q);
}

static void login_on_recorded(void *arg, PGresult *res)
{
    struct route_ctx *ctx = arg;

    if (!db_result_ok(res)) {
        route_unavailable(ctx);
        return;
    }
    if (ctx->step == 1 && PQgetisnull(res, 0, 0)) {
        /* Locked, or the password changed, while this attempt hashed: the
         * password it verified is no longer the user's. */
        login_record_failure(ctx, "bad_password");
        return;
    }
    if (ctx->step == 1) {
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
    ctx->step = 2;
    memset(q, 0, sizeof(*q));
    q->statement = DB_LOGIN_FAILED;
    q->nparams = 4;
    q->values[0] = ctx->attempt_id;
    q->values[1] = ctx->username;
    q->values[2] = ctx->address;
    q->values[3] = ctx->result;
    q->cb = login_on_recorded;
    q->arg = ctx;
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
    if (!job->verified || ctx->flag) {
        /* ctx->flag: the user exists and is locked (verified or not). */
        login_record_failure(ctx, ctx->user_id[0] == '\0' ? "unknown_user"
                                  : ctx->flag            ? "locked"
                                                         : "bad_password");
        return;
    }
    auth_token_new(ctx->token);
    auth_token_hash(ctx->token, ctx->token_hash);
    snprintf(ctx->numbers[0], sizeof(ctx->numbers[0]), "%d", ctx->w->cfg.session_ttl_s);
    snprintf(ctx->numbers[1], sizeof(ctx->numbers[1]), "%d", ctx->w->cfg.session_idle_s);
    ctx->step = 1;
    memset(q, 0, sizeof(*q));
    q->statement = DB_LOGIN_SUCCEEDED;
    q->nparams = 9;
    q->values[0] = ctx->attempt_id;
    q->values[1] = ctx->user_id;
    q->values[2] = ctx->username;
    q->values[3] = ctx->address;
    q->values[4] = (const char *)ctx->token_hash;
    q->lengths[4] = AUTH_TOKEN_HASH_BYTES;
    q->formats[4] = 1;
    q->values[5] = ctx->numbers[0];
    q->values[6] = ctx->numbers[1];
    q->values[7] = job->new_hash[0] != '\0' ? job->new_hash : NULL;
    q->values[8] = job->stored_hash;
    q->cb = login_on_recorded;
    q->arg = ctx;
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
    snprintf(ctx->attempt_id, sizeof(ctx->attempt_id), "%s", PQgetvalue(res, 0, 4));
    if (!PQgetisnull(res, 0, 1)) {
        snprintf(ctx->user_id, sizeof(ctx->user_id), "%s", PQgetvalue(res, 0, 1));
        snprintf(job->stored_hash, sizeof(job->stored_hash), "%s", PQgetvalue(res, 0, 2));
        ctx->flag = strcmp(PQgetvalue(res, 0, 3), "t") == 0;
        if (ctx->flag)
            job->stored_hash[0] = '\0'; /* locked: same work as anyone else, never a match */
    }
    job->rehash_if_needed = 1;
    job->cb = login_on_verified;
    job->data = ctx;
    if (auth_job_submit(&ctx->w->auth, job) != 0)
        login_cancel_unavailable(ctx);
}

void login_handle(struct route_ctx *ctx)
{
    struct db_query *q = &ctx->query;
    const char *username, *password;
    json_t *body = route_json_body(ctx, 0);
    long chars;

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
    if (auth_queue_full(&ctx->w->auth)) {
        /* Overloaded: refuse before any database work, never queue without bound. */
        json_decref(body);
        route_unavailable(ctx);
        return;
    }
    ctx->job = calloc(1, sizeof(*ctx->job));
    if (ctx->job == NULL) {
        json_decref(body);
        route_unavailable(ctx);
        return;
    }
    snprintf(ctx->username, sizeof(ctx->username), "%s", username);
    ctx->job->verify = 1;
    memcpy(ctx->job->verify_password, password, strlen(password) + 1);
    json_decref(body);

    q->statement = DB_LOGIN_BEGIN;
    q->nparams = 8;
    q->values[0] = ctx->username;
    q->values[1] = ctx->address;
    route_throttle_params(ctx, q, 2);
    q->cb = login_on_begin;
    q->arg = ctx;
    db_query_send(&ctx->w->db, q);
}
