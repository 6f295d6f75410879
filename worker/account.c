/* worker/account.c - POST /v1/users (registration) and POST /v1/password.
 *
 * Registration: checks -> registration throttle -> strength + hash on the
 * hash pool -> insert (409 when the name is taken, regardless of case).
 * Password change: session + throttle -> verify the old password and hash
 * the new one on the hash pool -> store it and end every other session;
 * a wrong old password counts as a failed login.
 */
#include "routes.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int account_job_new(struct route_ctx *ctx)
{
    ctx->job = calloc(1, sizeof(*ctx->job));
    if (ctx->job == NULL) {
        route_unavailable(ctx);
        return -1;
    }
    ctx->job->data = ctx;
    return 0;
}

static void account_on_registered(void *arg, PGresult *res)
{
    struct route_ctx *ctx = arg;

    if (!db_result_ok(res)) {
        route_unavailable(ctx);
        return;
    }
    if (PQgetisnull(res, 0, 0)) {
        route_error(ctx, 409, "username_taken", "that username is taken", NULL);
        return;
    }
    route_reply(ctx, 201, NULL,
                json_pack("{s:I, s:s}", "user_id", (json_int_t)strtoll(PQgetvalue(res, 0, 0), NULL, 10),
                          "username", ctx->username));
}

static void account_on_register_hashed(struct auth_job *job)
{
    struct route_ctx *ctx = job->data;
    struct db_query *q = &ctx->query;

    if (job->failed) {
        route_unavailable(ctx);
        return;
    }
    if (job->weak) {
        route_error(ctx, 400, "weak_password", "the password is too easy to guess", NULL);
        return;
    }
    memset(q, 0, sizeof(*q));
    q->statement = DB_REGISTER;
    q->nparams = 2;
    q->values[0] = ctx->username;
    q->values[1] = job->new_hash;
    q->cb = account_on_registered;
    q->arg = ctx;
    db_query_send(&ctx->w->db, q);
}

static void account_on_register_wait(void *arg, PGresult *res)
{
    struct route_ctx *ctx = arg;
    int wait_s;

    if (!db_result_ok(res) || PQntuples(res) != 1) {
        route_unavailable(ctx);
        return;
    }
    wait_s = atoi(PQgetvalue(res, 0, 0));
    if (wait_s > 0) {
        route_throttled_because(ctx, wait_s, "too many registrations from this address, try again later");
        return;
    }
    ctx->job->cb = account_on_register_hashed;
    if (auth_job_submit(&ctx->w->auth, ctx->job) != 0)
        route_unavailable(ctx);
}

/* Room for this request's hash: the worker's queue is not full and the
 * client's address holds less than its share (SPEC 5). Otherwise the
 * request is answered (503, or 429 with no hash), `body` released, and -1
 * returned. */
static int account_hash_room(struct route_ctx *ctx, json_t *body)
{
    int share;

    if (auth_queue_full(&ctx->w->auth)) {
        /* Overloaded: refuse before any database work, never queue without bound. */
        json_decref(body);
        route_unavailable(ctx);
        return -1;
    }
    share = auth_share_take(&ctx->w->auth, ctx->address);
    if (share < 0) {
        /* This address holds its eighth of the queue: 429, no hash. */
        json_decref(body);
        route_throttled_because(ctx, 1, ROUTE_SHARE_MESSAGE);
        return -1;
    }
    ctx->share_held = share == 0;
    return 0;
}

void account_register(struct route_ctx *ctx)
{
    struct db_query *q = &ctx->query;
    const char *username, *password;
    json_t *body;

    if (!ctx->w->cfg.registration_open) {
        route_error(ctx, 403, "registration_closed", "registration is closed", NULL);
        return;
    }
    body = route_json_body(ctx, 0);
    if (body == NULL)
        return;
    if (route_json_string(ctx, body, "username", &username) != 0 ||
        route_json_string(ctx, body, "password", &password) != 0) {
        json_decref(body);
        return;
    }
    if (!password_username_valid(username)) {
        json_decref(body);
        route_error(ctx, 400, "invalid_request",
                    "username must have 1-64 characters of A-Z a-z 0-9 . _ @ + -", NULL);
        return;
    }
    if (password_utf8_length(password, strlen(password)) > PASSWORD_MAX_CHARS) {
        json_decref(body);
        route_error(ctx, 400, "invalid_request", "password must have at most 1024 characters", NULL);
        return;
    }
    if (password_weak_quick(&ctx->w->cfg, password, username)) {
        json_decref(body);
        route_error(ctx, 400, "weak_password", "the password is too short or contains the username", NULL);
        return;
    }
    if (account_hash_room(ctx, body) != 0)
        return;
    if (account_job_new(ctx) != 0) {
        json_decref(body);
        return;
    }
    snprintf(ctx->username, sizeof(ctx->username), "%s", username);
    snprintf(ctx->job->username, sizeof(ctx->job->username), "%s", username);
    memcpy(ctx->job->new_password, password, strlen(password) + 1);
    json_decref(body);

    q->statement = DB_REGISTER_WAIT;
    q->nparams = 1;
    q->values[0] = ctx->address;
    q->cb = account_on_register_wait;
    q->arg = ctx;
    db_query_send(&ctx->w->db, q);
}

/* What the password change's last statement recorded (ctx->step). */
enum {
    ACCOUNT_PASSWORD_SET = 1,  /* the new hash, if the checks still hold */
    ACCOUNT_OLD_WRONG,         /* a failure: the old password is wrong */
    ACCOUNT_NEW_WEAK,          /* no failure: the new password is weak */
    ACCOUNT_HASH_FAILED,       /* no failure: 503 */
};

static void account_on_password_set(void *arg, PGresult *res)
{
    struct route_ctx *ctx = arg;

    if (!db_result_ok(res)) {
        route_unavailable(ctx);
        return;
    }
    if (ctx->step == ACCOUNT_OLD_WRONG) {
        route_error(ctx, 401, "invalid_credentials", "the old password is wrong", NULL);
        return;
    }
    if (ctx->step == ACCOUNT_NEW_WEAK) {
        route_error(ctx, 400, "weak_password", "the new password is too easy to guess or contains the username",
                    NULL);
        return;
    }
    if (ctx->step == ACCOUNT_HASH_FAILED) {
        route_unavailable(ctx);
        return;
    }
    if (strcmp(PQgetvalue(res, 0, 0), "t") != 0) {
        /* Locked, reset, changed or logged out while this change hashed
         * (006_password_recheck.sql): nothing was written. */
        route_session_ended(ctx);
        return;
    }
    /* Every other session of the user ends at once on this worker too. */
    session_cache_forget_user(&ctx->w->sessions, ctx->user_id);
    route_reply(ctx, 204, NULL, NULL);
}

static void account_on_password_hashed(struct auth_job *job)
{
    struct route_ctx *ctx = job->data;
    struct db_query *q = &ctx->query;

    memset(q, 0, sizeof(*q));
    q->cb = account_on_password_set;
    q->arg = ctx;
    if (job->failed) {
        /* 503 before the old password was judged: no failure either. */
        ctx->step = ACCOUNT_HASH_FAILED;
        q->statement = DB_ATTEMPT_CANCEL;
        q->nparams = 1;
        q->values[0] = ctx->attempt_id;
        db_query_send(&ctx->w->db, q);
        return;
    }
    if (!job->verified) {
        /* A wrong old password is a failed login for this user and address. */
        ctx->step = ACCOUNT_OLD_WRONG;
        q->statement = DB_LOGIN_FAILED;
        q->nparams = 4;
        q->values[0] = ctx->attempt_id;
        q->values[1] = ctx->username;
        q->values[2] = ctx->address;
        q->values[3] = "bad_password";
        db_query_send(&ctx->w->db, q);
        return;
    }
    if (job->weak) {
        /* The old password was right: this attempt is no failure. */
        ctx->step = ACCOUNT_NEW_WEAK;
        q->statement = DB_ATTEMPT_CANCEL;
        q->nparams = 1;
        q->values[0] = ctx->attempt_id;
        db_query_send(&ctx->w->db, q);
        return;
    }
    ctx->step = ACCOUNT_PASSWORD_SET;
    q->statement = DB_PASSWORD_SET;
    q->nparams = 5;
    q->values[0] = ctx->attempt_id;
    q->values[1] = ctx->user_id;
    q->values[2] = (const char *)ctx->token_hash;
    q->lengths[2] = AUTH_TOKEN_HASH_BYTES;
    q->formats[2] = 1;
    q->values[3] = job->new_hash;
    q->values[4] = job->stored_hash;
    db_query_send(&ctx->w->db, q);
}

static void account_on_password_begin(void *arg, PGresult *res)
{
    struct route_ctx *ctx = arg;
    struct auth_job *job = ctx->job;
    int wait_s;

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
    wait_s = atoi(PQgetvalue(res, 0, 3));
    if (wait_s > 0) {
        route_throttled(ctx, wait_s);
        return;
    }
    snprintf(ctx->attempt_id, sizeof(ctx->attempt_id), "%s", PQgetvalue(res, 0, 4));
    snprintf(job->stored_hash, sizeof(job->stored_hash), "%s", PQgetvalue(res, 0, 2));
    snprintf(job->username, sizeof(job->username), "%s", ctx->username);
    /* The strength check (username included) runs after the verify, in the job. */
    job->cb = account_on_password_hashed;
    if (auth_job_submit(&ctx->w->auth, job) != 0)
        route_unavailable(ctx);
}

void account_password(struct route_ctx *ctx)
{
    struct db_query *q = &ctx->query;
    const char *old_password, *new_password;
    json_t *body;
    long old_chars;

    if (route_bearer(ctx) != 0)
        return;
    body = route_json_body(ctx, 0);
    if (body == NULL)
        return;
    if (route_json_string(ctx, body, "old_password", &old_password) != 0 ||
        route_json_string(ctx, body, "new_password", &new_password) != 0) {
        json_decref(body);
        return;
    }
    old_chars = password_utf8_length(old_password, strlen(old_password));
    if (old_chars < 1 || old_chars > AUTH_PASSWORD_MAX_CHARS) {
        json_decref(body);
        route_error(ctx, 400, "invalid_request", "old_password must have 1-1024 characters", NULL);
        return;
    }
    if (password_utf8_length(new_password, strlen(new_password)) > PASSWORD_MAX_CHARS) {
        json_decref(body);
        route_error(ctx, 400, "invalid_request", "new_password must have at most 1024 characters", NULL);
        return;
    }
    if (password_weak_quick(&ctx->w->cfg, new_password, NULL)) {
        json_decref(body);
        route_error(ctx, 400, "weak_password", "the new password is too short", NULL);
        return;
    }
    if (account_hash_room(ctx, body) != 0)
        return;
    if (account_job_new(ctx) != 0) {
        json_decref(body);
        return;
    }
    ctx->job->verify = 1;
    memcpy(ctx->job->verify_password, old_password, strlen(old_password) + 1);
    memcpy(ctx->job->new_password, new_password, strlen(new_password) + 1);
    json_decref(body);

    q->statement = DB_PASSWORD_BEGIN;
    q->nparams = 8;
    q->values[0] = (const char *)ctx->token_hash;
    q->lengths[0] = AUTH_TOKEN_HASH_BYTES;
    q->formats[0] = 1;
    q->values[1] = ctx->address;
    route_throttle_params(ctx, q, 2);
    q->cb = account_on_password_begin;
    q->arg = ctx;
    db_query_send(&ctx->w->db, q);
}
