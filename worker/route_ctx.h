/* worker/route_ctx.h - one API request across its asynchronous steps
 * (struct route_ctx) and what every handler shares: reading its JSON body
 * and bearer token, throttle parameters, and the JSON answers that end it.
 */
#ifndef VERONA_WORKER_ROUTE_CTX_H
#define VERONA_WORKER_ROUTE_CTX_H

#include <jansson.h>

#include "address.h"
#include "auth.h"
#include "db.h"
#include "http.h"
#include "worker.h"

#define ROUTE_THROTTLE_WINDOWS 3

/* What the last statement of a login or password change recorded, read
 * when its answer comes. */
enum route_step {
    STEP_NONE = 0,
    STEP_LOGIN_SUCCEEDED,    /* the session, if the user is still unlocked with that password */
    STEP_LOGIN_FAILED,       /* a failed attempt */
    STEP_PASSWORD_SET,       /* the new hash, if the checks still hold */
    STEP_OLD_PASSWORD_WRONG, /* a failure: the old password is wrong */
    STEP_NEW_PASSWORD_WEAK,  /* no failure: the new password is weak */
    STEP_HASH_FAILED,        /* no failure: 503 */
};

/* Everything one request needs across its asynchronous steps. Heap
 * allocated by the dispatcher, freed by route_reply(). */
struct route_ctx {
    struct worker *w;
    struct http_request *req;
    struct db_query query;
    struct session_touch_entry touch;     /* a session check's last-use write */
    struct auth_job *job;                 /* owned; only routes that hash */
    char address[ADDRESS_TEXT_MAX];
    char username[AUTH_USERNAME_MAX + 1];
    char token[AUTH_TOKEN_CHARS + 1];
    unsigned char token_hash[AUTH_TOKEN_HASH_BYTES];
    char user_id[24];
    char attempt_id[24];                  /* the throttle's provisional failure row */
    struct {
        char count[16], seconds[16];
    } throttle[ROUTE_THROTTLE_WINDOWS];   /* route_throttle_params(): account+address, address, account */
    char session_ttl_s[16], session_idle_s[16]; /* a new session's lifetimes */
    char result[16];                      /* audit result text */
    char expires_at[32];                  /* RFC 3339, for the session answer */
    uint64_t sent_ms;                     /* when the session lookup was sent */
    uint64_t revocations_at_send;         /* the session cache's revocation count then */
    int64_t expires_epoch;                /* the session's own expiry (unix seconds) */
    uv_timer_t wait_timer;                /* a login waiting for attempts in flight */
    uint64_t wait_deadline_ms;
    int waits;
    enum route_step step;                 /* what its last statement recorded */
    int locked;                           /* login: the user exists and is locked */
    int logout_all;                       /* logout: every session of the user ends */
    int share_held;                       /* holds one of its address's hash-queue share */
    int share_refused;                    /* refused: its address held its share */
};

/* The 429 of a request whose client address holds its share of the hash
 * queue (SPEC 5). */
#define ROUTE_SHARE_MESSAGE "too many password checks at once from this address, try again"

/* Answers with a JSON body (or none) and frees ctx. */
void route_reply(struct route_ctx *ctx, int status, const char *headers, json_t *body);

/* Answers {"error": code, "message": message} and frees ctx. */
void route_error(struct route_ctx *ctx, int status, const char *code, const char *message,
                 const char *headers);

/* 503 unavailable with Retry-After: 1. */
void route_unavailable(struct route_ctx *ctx);

/* 401 invalid_token: the session is invalid, expired or ended. */
void route_session_ended(struct route_ctx *ctx);

/* 429 too_many_attempts with Retry-After ("too many failed attempts",
 * or the message given). */
void route_throttled(struct route_ctx *ctx, int wait_s);
void route_throttled_because(struct route_ctx *ctx, int wait_s, const char *message);

/* The request's JSON object, or NULL after answering 415/400. With
 * `optional`, an empty body gives an empty object. */
json_t *route_json_body(struct route_ctx *ctx, int optional);

/* A string member: 0 and *out, or -1 after answering 400. */
int route_json_string(struct route_ctx *ctx, json_t *obj, const char *name, const char **out);

/* The bearer token into ctx->token / token_hash: 0, or -1 after 401. */
int route_bearer(struct route_ctx *ctx);

/* Appends the throttle windows' parameters (count, seconds for each; $3..$8
 * of the statements shaped like login_begin). */
void route_throttle_params(struct route_ctx *ctx, struct db_query *q);

#endif
