/* worker/auth.h - passwords and tokens: Argon2id on libuv's thread pool
 * behind a bounded queue, the dummy hash that makes unknown users cost as
 * much as known ones, password strength, session tokens and their hashes.
 */
#ifndef VERONA_WORKER_AUTH_H
#define VERONA_WORKER_AUTH_H

#include <sodium.h>
#include <uv.h>

#include "../proto/config.h"
#include "../proto/password.h"

#define AUTH_PASSWORD_MAX_CHARS PASSWORD_MAX_CHARS
#define AUTH_PASSWORD_MAX_BYTES PASSWORD_MAX_BYTES
#define AUTH_USERNAME_MAX USERNAME_MAX
#define AUTH_TOKEN_BYTES 32
#define AUTH_TOKEN_CHARS 43      /* unpadded base64url of 32 bytes */
#define AUTH_TOKEN_HASH_BYTES 32 /* BLAKE2b-256 */
#define AUTH_HASH_NICE 10        /* the hash threads' nice value (worker/auth.c) */

#define AUTH_SHARE_KEY_MAX 64     /* a client address as throttling keys it (worker/address.h) */

#define AUTH_DUMMY_MAX 8          /* Argon2 settings among users the dummy follows */

/* A dummy hash with one of the settings users' hashes have, and how many
 * users have those. */
struct auth_dummy {
    char hash[crypto_pwhash_STRBYTES];
    long long users;
};

/* What one client address holds of the hash queue. */
struct auth_share {
    char key[AUTH_SHARE_KEY_MAX];
    int count;                   /* 0: a free entry */
};

struct auth {
    uv_loop_t *loop;
    const struct config *cfg;
    char dummy_hash[crypto_pwhash_STRBYTES]; /* the configured settings: no users known yet */
    struct auth_dummy dummies[AUTH_DUMMY_MAX]; /* the settings among users (auth_set_dummies) */
    int dummy_count;
    long long dummy_users;       /* the sum of dummies[].users */
    unsigned char dummy_key[crypto_shorthash_KEYBYTES];
    int queued;                  /* jobs submitted and not yet finished */
    int gate;                    /* the supervisor's hash gate, or -1 */
    struct auth_share *shares;   /* share_slots entries (owned) */
    int share_slots;
    int share_max;               /* max(1, hash_queue_max / 8) an address (SPEC 10.11) */
};

/* One hashing job. The caller owns it until `cb` runs (always on the
 * loop). Inputs are wiped when the job finishes. */
struct auth_job {
    uv_work_t work;
    struct auth *auth;
    /* inputs */
    int verify;                /* check verify_password against stored_hash */
    char verify_password[AUTH_PASSWORD_MAX_BYTES + 1]; /* "" = no verify */
    char stored_hash[crypto_pwhash_STRBYTES];          /* "" = the dummy hash */
    char dummy_hash[crypto_pwhash_STRBYTES];           /* set by auth_job_submit (username's) */
    char new_password[AUTH_PASSWORD_MAX_BYTES + 1];    /* "" = nothing to hash */
    char username[AUTH_USERNAME_MAX + 1];              /* for the strength check */
    int rehash_if_needed;      /* after a good verify with old parameters */
    /* outputs */
    int verified;              /* the verify matched (never for the dummy) */
    int weak;                  /* new_password is too easy to guess */
    int failed;                /* out of memory or similar */
    char new_hash[crypto_pwhash_STRBYTES]; /* "" = none */
    void (*cb)(struct auth_job *job);
    void *data;
};

/* Makes the dummy hash for the configured parameters; jobs take a slot of
 * hash gate `gate` (-1: none) while they hash. 0 or -1. */
int auth_init(struct auth *auth, uv_loop_t *loop, const struct config *cfg, int gate);

/* Writes (crypto_pwhash_STRBYTES) an Argon2id hash string with these
 * parameters, a random salt and a random digest: verifying any password
 * against it costs a real verify and never matches (2^-256), and making
 * it costs no hash, so a new worker starts without an Argon2 run. 0, or -1
 * when libsodium does not read it back with the same parameters. */
int auth_dummy_hash(char *out, int opslimit, int memlimit_kib);

/* The dummy hashes follow the Argon2 settings still present among users
 * (`count` of them: memlimit_kib[i], opslimit[i], users[i] users each),
 * so that an unknown name costs what a user's verify costs after the
 * settings changed. Each unknown name gets one of them, always the same
 * for the same `choice` (a secret all workers share), each as often as
 * users have it. Settings libsodium cannot read are left out; none left:
 * back to the configured ones. Returns how many were taken. */
int auth_set_dummies(struct auth *auth, const int *memlimit_kib, const int *opslimit, const long long *users,
                     int count, const char *choice);

/* The dummy hash a login for `username` (no such user, or locked)
 * verifies against. */
const char *auth_dummy_for(const struct auth *auth, const char *username);

/* Frees what auth_init allocated. */
void auth_fini(struct auth *auth);

/* Takes one of `key`'s (a client address's) share of the hash queue, for
 * a request that will hash: 0, or -1 when the address holds its share
 * already (the request gets 429 and no hash; one account holder cannot
 * starve the logins of everyone else). Given back by auth_share_release.
 * 1: not counted, every entry being held by other addresses (then no
 * release). */
int auth_share_take(struct auth *auth, const char *key);
void auth_share_release(struct auth *auth, const char *key);

/* 1 when hash_queue_max jobs are queued: a new one would be refused. */
int auth_queue_full(const struct auth *auth);

/* Queues a job; -EBUSY when hash_queue_max jobs are already queued. */
int auth_job_submit(struct auth *auth, struct auth_job *job);

/* A fresh token (AUTH_TOKEN_CHARS + NUL). */
void auth_token_new(char *token);

/* 1 when `text` looks like a token (43 base64url characters). */
int auth_token_valid(const char *text);

/* BLAKE2b-256 of the token text. */
void auth_token_hash(const char *token, unsigned char *hash);

/* Routes jansson's memory through allocations that are wiped when freed,
 * so passwords parsed from JSON do not linger in freed memory. */
void auth_json_secure_alloc(void);

#endif
