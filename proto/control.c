/* proto/control.c - encoder and decoder of the control protocol
 * (proto/control.h). The decoder trusts nothing: every size, type and
 * member is checked before use; it is fuzzed by tests/fuzz/fuzz_control.c.
 */
#include "control.h"
#include "log.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CONTROL_MAGIC 'V'

const char *const control_route_names[ROUTE_COUNT] = {
    "users", "login", "session", "logout", "password", "healthz", "readyz", "other",
};

const char *const control_login_result_names[LOGIN_RESULT_COUNT] = {
    "success", "invalid_credentials", "throttled", "unavailable", "invalid_request",
};

const int control_statuses[CONTROL_STATUS_COUNT - 1] = {
    200, 201, 204, 400, 401, 403, 404, 405, 408, 409, 413, 415, 429, 431, 500, 503,
};

const uint64_t control_latency_bounds_us[CONTROL_LATENCY_BUCKETS - 1] = {
    1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000, 2500000,
};

static const char *const control_type_names[] = {
    "unknown", "hello", "settings", "ready", "accept", "ping", "pong", "drain", "goodbye",
};

const char *control_type_name(int type)
{
    return type >= CONTROL_HELLO && type <= CONTROL_TYPE_MAX ? control_type_names[type]
                                                             : control_type_names[0];
}

int control_status_index(int status)
{
    for (int i = 0; i < CONTROL_STATUS_COUNT - 1; i++)
        if (control_statuses[i] == status)
            return i;
    return CONTROL_STATUS_COUNT - 1;
}

int control_latency_bucket(uint64_t us)
{
    for (int i = 0; i < CONTROL_LATENCY_BUCKETS - 1; i++)
        if (us <= control_latency_bounds_us[i])
            return i;
    return CONTROL_LATENCY_BUCKETS - 1;
}

/* ---- encoding ---- */

static json_t *control_counters_encode(const struct control_counters *c)
{
    json_t *requests = json_object(), *latency = json_object(), *sums = json_object();
    json_t *logins = json_object();

    for (int r = 0; r < ROUTE_COUNT; r++) {
        json_t *by_status = json_object(), *buckets = json_array();
        char code[8];

        for (int s = 0; s < CONTROL_STATUS_COUNT; s++) {
            if (c->requests[r][s] == 0)
                continue;
            if (s < CONTROL_STATUS_COUNT - 1)
                snprintf(code, sizeof(code), "%d", control_statuses[s]);
            else
                strcpy(code, "other");
            json_object_set_new(by_status, code, json_integer((json_int_t)c->requests[r][s]));
        }
        json_object_set_new(requests, control_route_names[r], by_status);
        for (int b = 0; b < CONTROL_LATENCY_BUCKETS; b++)
            json_array_append_new(buckets, json_integer((json_int_t)c->latency[r][b]));
        json_object_set_new(latency, control_route_names[r], buckets);
        json_object_set_new(sums, control_route_names[r], json_integer((json_int_t)c->latency_sum_us[r]));
    }
    for (int i = 0; i < LOGIN_RESULT_COUNT; i++)
        json_object_set_new(logins, control_login_result_names[i], json_integer((json_int_t)c->logins[i]));
    return json_pack("{s:o, s:o, s:o, s:o, s:I, s:I, s:I, s:I}", "requests", requests, "latency", latency,
                     "latency_sum_us", sums, "logins", logins, "connections_accepted",
                     (json_int_t)c->connections_accepted, "session_cache_hits",
                     (json_int_t)c->session_cache_hits, "session_cache_misses",
                     (json_int_t)c->session_cache_misses, "db_primary_changes",
                     (json_int_t)c->db_primary_changes);
}

static json_t *control_payload_encode(const struct control_msg *m)
{
    switch (m->type) {
    case CONTROL_HELLO:
        return json_pack("{s:i, s:[i], s:s}", "pid", m->pid, "versions", CONTROL_VERSION, "build_id",
                         m->build_id);
    case CONTROL_SETTINGS:
        return json_pack("{s:s}", "settings", m->settings != NULL ? m->settings : "");
    case CONTROL_PING:
        return json_pack("{s:I}", "seq", (json_int_t)m->seq);
    case CONTROL_PONG:
        return json_pack("{s:I, s:s, s:i, s:i, s:i, s:b, s:s, s:o}", "seq", (json_int_t)m->seq, "state",
                         m->state, "connections", m->connections, "in_flight", m->in_flight,
                         "hash_queue", m->hash_queue, "db_up", m->db_up, "db_host", m->db_host, "counters",
                         control_counters_encode(&m->counters));
    case CONTROL_GOODBYE:
        return json_pack("{s:s}", "reason", m->reason);
    case CONTROL_READY:
    case CONTROL_ACCEPT:
    case CONTROL_DRAIN:
        return json_object();
    }
    return NULL;
}

int control_msg_encode(const struct control_msg *msg, char **out, size_t *len)
{
    json_t *payload = control_payload_encode(msg);
    char *text, *frame;
    size_t tlen;

    if (payload == NULL)
        return -1;
    text = json_dumps(payload, JSON_COMPACT);
    json_decref(payload);
    if (text == NULL)
        return -1;
    tlen = strlen(text);
    if (tlen + CONTROL_HEADER_SIZE > CONTROL_FRAME_MAX || (frame = malloc(tlen + CONTROL_HEADER_SIZE)) == NULL) {
        log_json_free(text);
        return -1;
    }
    frame[0] = CONTROL_MAGIC;
    frame[1] = CONTROL_VERSION;
    frame[2] = (char)msg->type;
    frame[3] = 0;
    frame[4] = (char)((tlen >> 24) & 0xff);
    frame[5] = (char)((tlen >> 16) & 0xff);
    frame[6] = (char)((tlen >> 8) & 0xff);
    frame[7] = (char)(tlen & 0xff);
    memcpy(frame + CONTROL_HEADER_SIZE, text, tlen);
    log_json_free(text);
    *out = frame;
    *len = tlen + CONTROL_HEADER_SIZE;
    return 0;
}

/* ---- decoding ---- */

static int control_error(char *err, size_t errsize, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(err, errsize, fmt, ap);
    va_end(ap);
    return -1;
}

/* A non-negative integer member within [0, max]. */
static int control_get_uint(json_t *obj, const char *name, uint64_t max, uint64_t *out)
{
    json_t *v = json_object_get(obj, name);

    if (v == NULL || !json_is_integer(v) || json_integer_value(v) < 0 ||
        (uint64_t)json_integer_value(v) > max)
        return -1;
    *out = (uint64_t)json_integer_value(v);
    return 0;
}

static int control_get_int(json_t *obj, const char *name, int max, int *out)
{
    uint64_t v;

    if (control_get_uint(obj, name, (uint64_t)max, &v) != 0)
        return -1;
    *out = (int)v;
    return 0;
}

static int control_get_text(json_t *obj, const char *name, char *out, size_t size)
{
    json_t *v = json_object_get(obj, name);

    if (v == NULL || !json_is_string(v) || json_string_length(v) >= size)
        return -1;
    memcpy(out, json_string_value(v), json_string_length(v) + 1);
    return 0;
}

static int control_find(const char *const *names, int count, const char *name)
{
    for (int i = 0; i < count; i++)
        if (strcmp(names[i], name) == 0)
            return i;
    return -1;
}

static int control_counters_decode(json_t *obj, struct control_counters *c)
{
    json_t *requests = json_object_get(obj, "requests"), *latency = json_object_get(obj, "latency");
    json_t *sums = json_object_get(obj, "latency_sum_us"), *logins = json_object_get(obj, "logins");
    const char *key;
    json_t *value;
    uint64_t accepted;

    if (!json_is_object(obj) || !json_is_object(requests) || !json_is_object(latency) ||
        !json_is_object(sums) || !json_is_object(logins) ||
        control_get_uint(obj, "connections_accepted", INT64_MAX, &accepted) != 0)
        return -1;
    c->connections_accepted = accepted;
    /* Workers of builds before the session cache counters leave them out. */
    if ((json_object_get(obj, "session_cache_hits") != NULL &&
         control_get_uint(obj, "session_cache_hits", INT64_MAX, &c->session_cache_hits) != 0) ||
        (json_object_get(obj, "session_cache_misses") != NULL &&
         control_get_uint(obj, "session_cache_misses", INT64_MAX, &c->session_cache_misses) != 0) ||
        (json_object_get(obj, "db_primary_changes") != NULL &&
         control_get_uint(obj, "db_primary_changes", INT64_MAX, &c->db_primary_changes) != 0))
        return -1;
    json_object_foreach(requests, key, value) {
        int r = control_find(control_route_names, ROUTE_COUNT, key);
        const char *code;
        json_t *n;

        if (r < 0 || !json_is_object(value))
            return -1;
        json_object_foreach(value, code, n) {
            char *end;
            long status = strtol(code, &end, 10);
            int s;

            /* A status this build does not list (a newer worker's, during
             * a rollout) counts as "other": it is no protocol error. */
            if (strcmp(code, "other") == 0)
                s = CONTROL_STATUS_COUNT - 1;
            else if (*end != '\0' || end == code || status < 100 || status > 599)
                return -1;
            else
                s = control_status_index((int)status);
            if (!json_is_integer(n) || json_integer_value(n) < 0)
                return -1;
            c->requests[r][s] += (uint64_t)json_integer_value(n);
        }
    }
    json_object_foreach(latency, key, value) {
        int r = control_find(control_route_names, ROUTE_COUNT, key);

        if (r < 0 || !json_is_array(value) || json_array_size(value) != CONTROL_LATENCY_BUCKETS)
            return -1;
        for (size_t b = 0; b < CONTROL_LATENCY_BUCKETS; b++) {
            json_t *n = json_array_get(value, b);
            if (!json_is_integer(n) || json_integer_value(n) < 0)
                return -1;
            c->latency[r][b] = (uint64_t)json_integer_value(n);
        }
    }
    json_object_foreach(sums, key, value) {
        int r = control_find(control_route_names, ROUTE_COUNT, key);

        if (r < 0 || !json_is_integer(value) || json_integer_value(value) < 0)
            return -1;
        c->latency_sum_us[r] = (uint64_t)json_integer_value(value);
    }
    json_object_foreach(logins, key, value) {
        int i = control_find(control_login_result_names, LOGIN_RESULT_COUNT, key);

        if (i < 0 || !json_is_integer(value) || json_integer_value(value) < 0)
            return -1;
        c->logins[i] = (uint64_t)json_integer_value(value);
    }
    return 0;
}

static int control_payload_decode(json_t *p, struct control_msg *m, char *err, size_t errsize)
{
    uint64_t seq;

    switch (m->type) {
    case CONTROL_HELLO: {
        json_t *versions = json_object_get(p, "versions");
        size_t i;
        json_t *v;

        if (control_get_int(p, "pid", 0x7fffffff, &m->pid) != 0 || m->pid == 0 ||
            control_get_text(p, "build_id", m->build_id, sizeof(m->build_id)) != 0 ||
            !json_is_array(versions))
            return control_error(err, errsize, "hello: needs pid, versions[] and build_id");
        m->version = 0;
        json_array_foreach(versions, i, v) {
            if (!json_is_integer(v))
                return control_error(err, errsize, "hello: versions must be integers");
            if (json_integer_value(v) == CONTROL_VERSION)
                m->version = CONTROL_VERSION;
        }
        if (m->version == 0)
            return control_error(err, errsize, "hello: no common protocol version");
        return 0;
    }
    case CONTROL_SETTINGS: {
        json_t *s = json_object_get(p, "settings");

        if (!json_is_string(s))
            return control_error(err, errsize, "settings: needs a settings string");
        m->settings = strdup(json_string_value(s));
        return m->settings != NULL ? 0 : control_error(err, errsize, "out of memory");
    }
    case CONTROL_PING:
        if (control_get_uint(p, "seq", INT64_MAX, &seq) != 0)
            return control_error(err, errsize, "ping: needs seq");
        m->seq = seq;
        return 0;
    case CONTROL_PONG: {
        json_t *db_up = json_object_get(p, "db_up");

        if (control_get_uint(p, "seq", INT64_MAX, &seq) != 0 ||
            control_get_text(p, "state", m->state, sizeof(m->state)) != 0 ||
            control_get_int(p, "connections", 0x7fffffff, &m->connections) != 0 ||
            control_get_int(p, "in_flight", 0x7fffffff, &m->in_flight) != 0 ||
            control_get_int(p, "hash_queue", 0x7fffffff, &m->hash_queue) != 0 ||
            !json_is_boolean(db_up))
            return control_error(err, errsize, "pong: missing or mistyped member");
        m->seq = seq;
        m->db_up = json_is_true(db_up);
        /* Workers of builds before several hosts leave db_host out. */
        if (json_object_get(p, "db_host") != NULL &&
            control_get_text(p, "db_host", m->db_host, sizeof(m->db_host)) != 0)
            return control_error(err, errsize, "pong: malformed db_host");
        if (control_counters_decode(json_object_get(p, "counters"), &m->counters) != 0)
            return control_error(err, errsize, "pong: malformed counters");
        return 0;
    }
    case CONTROL_GOODBYE:
        if (control_get_text(p, "reason", m->reason, sizeof(m->reason)) != 0)
            return control_error(err, errsize, "goodbye: needs reason");
        return 0;
    case CONTROL_READY:
    case CONTROL_ACCEPT:
    case CONTROL_DRAIN:
        return 0;
    }
    return control_error(err, errsize, "unknown message type");
}

long control_msg_decode(const char *buf, size_t len, struct control_msg *msg, char *err,
                        size_t errsize)
{
    const unsigned char *u = (const unsigned char *)buf;
    size_t plen;
    json_error_t jerr;
    json_t *payload;
    int rc;

    memset(msg, 0, sizeof(*msg));
    if (len < CONTROL_HEADER_SIZE) {
        if (len > 0 && u[0] != CONTROL_MAGIC)
            return control_error(err, errsize, "bad magic byte 0x%02x", u[0]);
        return 0;
    }
    if (u[0] != CONTROL_MAGIC)
        return control_error(err, errsize, "bad magic byte 0x%02x", u[0]);
    if (u[1] != CONTROL_VERSION)
        return control_error(err, errsize, "unsupported protocol version %d", u[1]);
    if (u[2] < CONTROL_HELLO || u[2] > CONTROL_TYPE_MAX || u[3] != 0)
        return control_error(err, errsize, "unknown message type %d", u[2]);
    plen = ((size_t)u[4] << 24) | ((size_t)u[5] << 16) | ((size_t)u[6] << 8) | (size_t)u[7];
    if (plen > CONTROL_FRAME_MAX - CONTROL_HEADER_SIZE)
        return control_error(err, errsize, "frame of %zu bytes is over %d", plen + CONTROL_HEADER_SIZE,
                             CONTROL_FRAME_MAX);
    if (len < CONTROL_HEADER_SIZE + plen)
        return 0;
    msg->type = (enum control_type)u[2];
    payload = json_loadb(buf + CONTROL_HEADER_SIZE, plen, JSON_REJECT_DUPLICATES, &jerr);
    if (payload == NULL || !json_is_object(payload)) {
        json_decref(payload);
        return control_error(err, errsize, "%s: payload is not a JSON object", control_type_name(msg->type));
    }
    rc = control_payload_decode(payload, msg, err, errsize);
    json_decref(payload);
    if (rc != 0) {
        control_msg_fini(msg);
        return -1;
    }
    return (long)(CONTROL_HEADER_SIZE + plen);
}

void control_msg_fini(struct control_msg *msg)
{
    free(msg->settings);
    msg->settings = NULL;
}

void control_counters_add(struct control_counters *sum, const struct control_counters *c)
{
    const uint64_t *from = (const uint64_t *)c;
    uint64_t *to = (uint64_t *)sum;

    for (size_t i = 0; i < sizeof(*c) / sizeof(uint64_t); i++)
        to[i] += from[i];
}
