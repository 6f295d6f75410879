/* worker/auth.c - hashing, strength, tokens (worker/auth.h). */
#include "auth.h"

#include "../proto/hash_gate.h"
#include "hash_memory.h"

#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>


int auth_dummy_hash(char *out, int opslimit, int memlimit_kib)
{
    unsigned char salt[crypto_pwhash_SALTBYTES], digest[32];
    char salt64[sodium_base64_ENCODED_LEN(crypto_pwhash_SALTBYTES, sodium_base64_VARIANT_ORIGINAL_NO_PADDING)];
    char digest64[sodium_base64_ENCODED_LEN(32, sodium_base64_VARIANT_ORIGINAL_NO_PADDING)];
    int n;

    randombytes_buf(salt, sizeof(salt));
    randombytes_buf(digest, sizeof(digest));
    sodium_bin2base64(salt64, sizeof(salt64), salt, sizeof(salt), sodium_base64_VARIANT_ORIGINAL_NO_PADDING);
    sodium_bin2base64(digest64, sizeof(digest64), digest, sizeof(digest),
                      sodium_base64_VARIANT_ORIGINAL_NO_PADDING);
    n = snprintf(out, crypto_pwhash_STRBYTES, "$argon2id$v=%d$m=%d,t=%d,p=1$%s$%s", 0x13, memlimit_kib, opslimit,
                 salt64, digest64);
    if (n < 0 || (size_t)n >= crypto_pwhash_STRBYTES)
        return -1;
    /* libsodium must read it as a hash with exactly these parameters. */
    return crypto_pwhash_str_needs_rehash(out, (unsigned long long)opslimit, (size_t)memlimit_kib * 1024) == 0 ? 0
                                                                                                              : -1;
}

int auth_init(struct auth *auth, uv_loop_t *loop, const struct config *cfg, int gate)
{
    memset(auth, 0, sizeof(*auth));
    auth->loop = loop;
    auth->cfg = cfg;
    auth->gate = gate;
    auth->share_max = cfg->hash_queue_max / 8 > 1 ? cfg->hash_queue_max / 8 : 1;
    /* A share is held from before the request's database work until its
     * answer, so more addresses than the queue holds jobs may hold one. */
    auth->share_slots = cfg->hash_queue_max * 4 > 64 ? cfg->hash_queue_max * 4 : 64;
    auth->shares = calloc((size_t)auth->share_slots, sizeof(*auth->shares));
    if (auth->shares == NULL)
        return -1;
    return auth_dummy_hash(auth->dummy_hash, cfg->argon2_opslimit, cfg->argon2_memlimit_kib);
}

int auth_set_dummies(struct auth *auth, const int *memlimit_kib, const int *opslimit, const long long *users,
                     int count, const char *choice)
{
    int taken = 0;
    long long total = 0;

    for (int i = 0; i < count && taken < AUTH_DUMMY_MAX; i++) {
        struct auth_dummy *d = &auth->dummies[taken];

        if (users[i] <= 0 || opslimit[i] < 1 || memlimit_kib[i] < 1)
            continue;
        if ((unsigned long long)opslimit[i] < crypto_pwhash_OPSLIMIT_MIN ||
            (size_t)memlimit_kib[i] > crypto_pwhash_MEMLIMIT_MAX / 1024 ||
            (size_t)memlimit_kib[i] * 1024 < crypto_pwhash_MEMLIMIT_MIN)
            continue;
        if (auth_dummy_hash(d->hash, opslimit[i], memlimit_kib[i]) != 0)
            continue;
        d->users = users[i];
        total += users[i];
        taken++;
    }
    auth->dummy_count = taken;
    auth->dummy_users = total;
    /* The key of the choice: a hash of the shared secret. */
    crypto_generichash(auth->dummy_key, sizeof(auth->dummy_key), (const unsigned char *)choice, strlen(choice),
                       NULL, 0);
    return taken;
}

const char *auth_dummy_for(const struct auth *auth, const char *username)
{
    unsigned char out[crypto_shorthash_BYTES];
    char name[AUTH_USERNAME_MAX + 1];
    unsigned long long pick = 0;
    size_t len = 0;

    if (auth->dummy_count == 0 || auth->dummy_users <= 0)
        return auth->dummy_hash;
    /* Usernames compare without case: "Bob" and "bob" get one answer. */
    for (; len < sizeof(name) - 1 && username[len] != '\0'; len++)
        name[len] = (char)tolower((unsigned char)username[len]);
    crypto_shorthash(out, (const unsigned char *)name, len, auth->dummy_key);
    for (size_t i = 0; i < sizeof(out); i++)
        pick = pick << 8 | out[i];
    pick %= (unsigned long long)auth->dummy_users;
    for (int i = 0; i < auth->dummy_count; i++) {
        if (pick < (unsigned long long)auth->dummies[i].users)
            return auth->dummies[i].hash;
        pick -= (unsigned long long)auth->dummies[i].users;
    }
    return auth->dummies[auth->dummy_count - 1].hash;
}

void auth_fini(struct auth *auth)
{
    free(auth->shares);
    auth->shares = NULL;
}

/* The entry of `key`, or (when `free_ok`) a free one; NULL when none. */
static struct auth_share *auth_share_find(struct auth *auth, const char *key, int free_ok)
{
    struct auth_share *unused = NULL;

    for (int i = 0; i < auth->share_slots; i++) {
        struct auth_share *s = &auth->shares[i];

        if (s->count > 0 && strcmp(s->key, key) == 0)
            return s;
        if (s->count == 0 && unused == NULL)
            unused = s;
    }
    return free_ok ? unused : NULL;
}

int auth_share_take(struct auth *auth, const char *key)
{
    struct auth_share *s = auth_share_find(auth, key, 1);

    if (s == NULL)
        return 1; /* every entry held by another address: none of them is over its share; the queue bounds all */
    if (s->count >= auth->share_max)
        return -1;
    if (s->count == 0)
        snprintf(s->key, sizeof(s->key), "%s", key);
    s->count++;
    return 0;
}

void auth_share_release(struct auth *auth, const char *key)
{
    struct auth_share *s = auth_share_find(auth, key, 0);

    if (s != NULL)
        s->count--;
}

static void auth_job_hash(struct auth_job *job)
{
    const struct config *cfg = job->auth->cfg;
    unsigned long long ops = (unsigned long long)cfg->argon2_opslimit;
    size_t mem = (size_t)cfg->argon2_memlimit_kib * 1024;

    if (job->verify) {
        const char *hash = job->stored_hash[0] != '\0' ? job->stored_hash : job->dummy_hash;
        int ok = crypto_pwhash_str_verify(hash, job->verify_password,
                                          strlen(job->verify_password)) == 0;
        job->verified = ok && job->stored_hash[0] != '\0';
        if (job->verified && job->rehash_if_needed &&
            crypto_pwhash_str_needs_rehash(job->stored_hash, ops, mem) != 0) {
            if (crypto_pwhash_str(job->new_hash, job->verify_password,
                                  strlen(job->verify_password), ops, mem) != 0)
                job->new_hash[0] = '\0'; /* keep the old hash; the login still counts */
        }
        if (!job->verified)
            return;
    }
    if (job->new_password[0] != '\0') {
        job->weak = password_weak(cfg, job->new_password, job->username);
        if (job->weak)
            return;
        if (crypto_pwhash_str(job->new_hash, job->new_password, strlen(job->new_password), ops,
                              mem) != 0)
            job->failed = 1;
    }
}

/* On a pool thread: waits for a slot of the machine's hash gate, so that
 * no more hashes run at once than there are CPUs, whichever workers they
 * come from (proto/hash_gate.h). A gate gone missing is not an error. */
static void auth_job_run(uv_work_t *w)
{
    static _Thread_local int niced;
    struct auth_job *job = (struct auth_job *)w;
    int gated;

    /*
     * A hash is batch work: the event loops, PostgreSQL and everything
     * else that answers requests (health pings too) should take a CPU from
     * it at once rather than share it. Lowering a thread's own priority
     * needs no privilege; libuv's pool threads live as long as the worker.
     */
    if (!niced) {
        errno = 0;
        int prio = getpriority(PRIO_PROCESS, (id_t)gettid());
        if (errno == 0 && prio < AUTH_HASH_NICE)
            (void)setpriority(PRIO_PROCESS, (id_t)gettid(), AUTH_HASH_NICE);
        niced = 1;
    }
    gated = hash_gate_enter(job->auth->gate) == 0;

    hash_memory_begin(); /* Argon2's memory on huge pages (worker/hash_memory.h) */
    auth_job_hash(job);
    hash_memory_end();
    if (gated)
        hash_gate_leave(job->auth->gate);
}

static void auth_job_done(uv_work_t *w, int status)
{
    struct auth_job *job = (struct auth_job *)w;

    if (status != 0)
        job->failed = 1;
    sodium_memzero(job->verify_password, sizeof(job->verify_password));
    sodium_memzero(job->new_password, sizeof(job->new_password));
    job->auth->queued--;
    job->cb(job);
}

int auth_queue_full(const struct auth *auth)
{
    return auth->queued >= auth->cfg->hash_queue_max;
}

int auth_job_submit(struct auth *auth, struct auth_job *job)
{
    int rc;

    if (auth_queue_full(auth))
        return -EBUSY;
    job->auth = auth;
    job->verified = 0;
    job->weak = 0;
    job->failed = 0;
    job->new_hash[0] = '\0';
    /* Chosen here, on the loop: the dummies change only on the loop. */
    if (job->verify && job->stored_hash[0] == '\0')
        snprintf(job->dummy_hash, sizeof(job->dummy_hash), "%s", auth_dummy_for(auth, job->username));
    rc = uv_queue_work(auth->loop, &job->work, auth_job_run, auth_job_done);
    if (rc != 0)
        return rc;
    auth->queued++;
    return 0;
}

void auth_token_new(char *token)
{
    unsigned char raw[AUTH_TOKEN_BYTES];

    randombytes_buf(raw, sizeof(raw));
    sodium_bin2base64(token, AUTH_TOKEN_CHARS + 1, raw, sizeof(raw),
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    sodium_memzero(raw, sizeof(raw));
}

int auth_token_valid(const char *text)
{
    if (strlen(text) != AUTH_TOKEN_CHARS)
        return 0;
    for (size_t i = 0; i < AUTH_TOKEN_CHARS; i++) {
        unsigned char c = (unsigned char)text[i];
        if (!isalnum(c) && c != '-' && c != '_')
            return 0;
    }
    return 1;
}

void auth_token_hash(const char *token, unsigned char *hash)
{
    crypto_generichash(hash, AUTH_TOKEN_HASH_BYTES, (const unsigned char *)token, strlen(token),
                       NULL, 0);
}

/* jansson allocations carry their size in front, so free can wipe them. */
static void *auth_secure_malloc(size_t size)
{
    size_t *p = malloc(sizeof(size_t) * 2 + size);

    if (p == NULL)
        return NULL;
    p[0] = size;
    return p + 2; /* two words keep 16-byte alignment */
}

static void auth_secure_free(void *ptr)
{
    size_t *p;

    if (ptr == NULL)
        return;
    p = (size_t *)ptr - 2;
    sodium_memzero(ptr, p[0]);
    free(p);
}

void auth_json_secure_alloc(void)
{
    json_set_alloc_funcs(auth_secure_malloc, auth_secure_free);
}
