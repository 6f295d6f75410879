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
    db_query_init(q, DB_REGISTER, account_on_registered, ctx);
    db_query_text(q, ctx->username);
    db_query_text(q, job->new_hash);
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

/* The checks of a new password before any hash (registration and
 * password change alike): at most PASSWORD_MAX_CHARS, and not weak by the
 * quick rules (length, the username in it when known; the full strength
 * check runs in the hash job). 1 after answering 400 (and freeing body). */
static int account_new_password_refused(struct route_ctx *ctx, json_t *body, const char *field,
                                        const char *password, const char *username)
{
    char message[96];

    if (password_utf8_length(password, strlen(password)) > PASSWORD_MAX_CHARS) {
        json_decref(body);
        snprintf(message, sizeof(message), "%s must have at most %d characters", field, PASSWORD_MAX_CHARS);
        route_error(ctx, 400, "invalid_request", message, NULL);
        return 1;
    }
    if (password_weak_quick(&ctx->w->cfg, password, username)) {
        json_decref(body);
        route_error(ctx, 400, "weak_password",
                    username != NULL ? "the password is too short or contains the username"
                                     : "the new password is too short",
                    NULL);
        return 1;
    }
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
    if (account_new_password_refused(ctx, body, "password", password, username))
        return;
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

    db_query_init(q, DB_REGISTER_WAIT, account_on_register_wait, ctx);
    db_query_text(q, ctx->address);
    db_query_send(&ctx->w->db, q);
}

static void account_on_password_set(void *arg, PGresult *res)
{
    struct route_ctx *ctx = arg;

    if (!db_result_ok(res)) {
        route_unavailable(ctx);
        return;
    }
    if (ctx->step == STEP_OLD_PASSWORD_WRONG) {
        route_error(ctx, 401, "invalid_credentials", "the old password is wrong", NULL);
        return;
    }
    if (ctx->step == STEP_NEW_PASSWORD_WEAK) {
        route_error(ctx, 400, "weak_password", "the new password is too easy to guess or contains the username",
                    NULL);
        return;
    }
    if (ctx->step == STEP_HASH_FAILED) {
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

    if (job->failed) {
        /* 503 before the old password was judged: no failure either. */
        ctx->step = STEP_HASH_FAILED;
        db_query_init(q, DB_ATTEMPT_CANCEL, account_on_password_set, ctx);
        db_query_text(q, ctx->attempt_id);
        db_query_send(&ctx->w->db, q);
        return;
    }
    if (!job->verified) {
        /* A wrong old password is a failed login for this user and address. */
        ctx->step = STEP_OLD_PASSWORD_WRONG;
        db_query_init(q, DB_LOGIN_FAILED, account_on_password_set, ctx);
        db_query_text(q, ctx->attempt_id);
        db_query_text(q, ctx->username);
        db_query_text(q, ctx->address);
        db_query_text(q, "bad_password");
        db_query_send(&ctx->w->db, q);
        return;
    }
    if (job->weak) {
        /* The old password was right: this attempt is no failure. */
        ctx->step = STEP_NEW_PASSWORD_WEAK;
        db_query_init(q, DB_ATTEMPT_CANCEL, account_on_password_set, ctx);
        db_query_text(q, ctx->attempt_id);
        db_query_send(&ctx->w->db, q);
        return;
    }
    ctx->step = STEP_PASSWORD_SET;
    db_query_init(q, DB_PASSWORD_SET, account_on_password_set, ctx);
    db_query_text(q, ctx->attempt_id);
    db_query_text(q, ctx->user_id);
    db_query_binary(q, ctx->token_hash, AUTH_TOKEN_HASH_BYTES);
    db_query_text(q, job->new_hash);
    db_query_text(q, job->stored_hash);
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
    if (account_new_password_refused(ctx, body, "new_password", new_password, NULL))
        return;
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

    db_query_init(q, DB_PASSWORD_BEGIN, account_on_password_begin, ctx);
    db_query_binary(q, ctx->token_hash, AUTH_TOKEN_HASH_BYTES);
    db_query_text(q, ctx->address);
    route_throttle_params(ctx, q);
    db_query_send(&ctx->w->db, q);
}
