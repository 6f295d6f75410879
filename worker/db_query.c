/* worker/db_query.c - the SQL the worker runs: every statement, prepared
 * on each connection (worker/db.c), and a query's parameters.
 */
#include "db.h"
#include "db_conn.h"

#include <string.h>

#define DB_RFC3339(x) "to_char((" x ") AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"

/* The statements, prepared on every connection as "s<index>". */
static const struct {
    const char *sql;
    int nparams;
} db_statements[DB_STATEMENT_COUNT] = {
    [DB_SCHEMA_VERSION] = { "SELECT coalesce(max(version), 0) FROM schema_migrations", 0 },
    /* An attempt is checked and counted in one locked statement (002_attempts.sql;
     * wait_s -1: the window is full only of attempts in flight, 007).
     * Its commit is not waited for on disk: other attempts see the
     * provisional failure row as soon as it commits, and the attempt's own
     * outcome (FAILED, SUCCEEDED, CANCEL: synchronous commits) flushes it
     * with everything before it. Only a PostgreSQL crash inside that
     * window could lose the row, and that attempt then fails with 503. */
    [DB_LOGIN_BEGIN] = { "SELECT b.wait_s, b.user_id, b.password_hash, b.locked, b.attempt_id "
                         "FROM verona_attempt_start($1, $2, $3, $4, $5, $6, $7, $8) AS b, "
                         "set_config('synchronous_commit', 'off', true) AS nosync", 8 },
    [DB_LOGIN_FAILED] = { "SELECT verona_attempt_fail($1, $2, $3, $4)", 4 },
    /* NULL when the user was locked or the password changed since the
     * begin (004_success_recheck.sql); a first try that landed answers as
     * it did (008_failover_retries.sql). */
    [DB_LOGIN_SUCCEEDED] = { "SELECT " DB_RFC3339("verona_attempt_succeeded_once($1, $2, $3, $4, $5, $6, $7, $8, $9)"), 9 },
    [DB_ATTEMPT_CANCEL] = { "SELECT verona_attempt_cancel($1)", 1 },
    /* A login's 503 before its password was judged (005_audit_unavailable.sql). */
    [DB_LOGIN_UNAVAILABLE] = { "SELECT verona_attempt_unavailable($1, $2, $3)", 3 },
    /* A login refused before it began an attempt (the hash queue full, no
     * room in a window after waiting): its audit row only, not waited for
     * on disk (a refusal flood must not become a flood of flushes). */
    [DB_LOGIN_AUDIT] = { "WITH nosync AS (SELECT set_config('synchronous_commit', 'off', true)) "
                         "INSERT INTO login_audit (username, address, result) SELECT $1, $2, $3 FROM nosync", 3 },
    /* The hot path: one indexed lookup, plain SQL. Column 3 says whether
     * last_used is over a minute old (then DB_SESSION_TOUCH writes it). */
    [DB_SESSION_GET] = { "SELECT s.user_id, u.username, "
                         DB_RFC3339("least(s.expires_abs, CASE WHEN s.last_used < now() - interval '60 seconds' "
                                    "THEN now() ELSE s.last_used END + make_interval(secs => s.idle_s))")
                         ", s.last_used < now() - interval '60 seconds', "
                         "extract(epoch FROM least(s.expires_abs, s.last_used + make_interval(secs => s.idle_s)))::bigint "
                         "FROM sessions s JOIN users u ON u.id = s.user_id "
                         "WHERE s.token_hash = $1 AND s.expires_abs > now() "
                         "AND s.last_used + make_interval(secs => s.idle_s) > now()", 1 },
    /* A batch: $1 is a text array of hex token hashes (worker/session_touch.c).
     * It never waits for a row lock, so it can never be part of a deadlock
     * (with another worker's batch, a logout-all, a password change or the
     * sweep, which lock several sessions each in their own order): a row
     * locked right now is being written by another batch (the same now())
     * or deleted, and is skipped. */
    [DB_SESSION_TOUCH] = { "WITH l AS (SELECT token_hash FROM sessions WHERE token_hash IN "
                           "(SELECT decode(h, 'hex') FROM unnest($1::text[]) AS t(h)) "
                           "FOR UPDATE SKIP LOCKED) "
                           "UPDATE sessions s SET last_used = now() FROM l WHERE s.token_hash = l.token_hash", 1 },
    /* The user (read in the statement's snapshot, before the delete) lets
     * the worker drop every cached session of a logout-all. */
    [DB_LOGOUT] = { "SELECT verona_logout($1, $2), (SELECT user_id FROM sessions WHERE token_hash = $1)", 2 },
    [DB_PASSWORD_BEGIN] = { "SELECT user_id, username, password_hash, wait_s, attempt_id "
                            "FROM verona_password_attempt_begin($1, $2, $3, $4, $5, $6, $7, $8) "
                            "WHERE user_id IS NOT NULL", 8 },
    /* false when locked, reset, changed or logged out since the begin
     * (006_password_recheck.sql); true when a first try landed (008). */
    [DB_PASSWORD_SET] = { "SELECT verona_password_attempt_set_once($1, $2, $3, $4, $5)", 5 },
    [DB_REGISTER_WAIT] = { "SELECT verona_register_attempt($1)", 1 },
    [DB_REGISTER] = { "SELECT verona_register_user_once($1, $2)", 2 },
    [DB_SWEEP] = { "SELECT verona_sweep($1, $2)", 2 },
    /* The Argon2 settings among users, for the dummy hashes (009_hash_params.sql). */
    [DB_HASH_PARAMS] = { "SELECT memlimit_kib, opslimit, users, choice FROM verona_hash_params()", 0 },
    [DB_PROBE] = { "SELECT 1", 0 },
};

const char *db_statement_sql(enum db_statement s)
{
    return db_statements[s].sql;
}

int db_statement_params(enum db_statement s)
{
    return db_statements[s].nparams;
}

void db_query_init(struct db_query *q, enum db_statement statement, db_query_cb cb, void *arg)
{
    memset(q, 0, sizeof(*q));
    q->statement = statement;
    q->cb = cb;
    q->arg = arg;
}

void db_query_text(struct db_query *q, const char *value)
{
    if (q->nparams >= DB_PARAMS_MAX)
        return; /* a programming error: db_query_send refuses a count the statement does not take */
    q->values[q->nparams++] = value;
}

void db_query_binary(struct db_query *q, const void *value, int length)
{
    if (q->nparams >= DB_PARAMS_MAX)
        return;
    q->values[q->nparams] = value;
    q->lengths[q->nparams] = length;
    q->formats[q->nparams] = 1;
    q->nparams++;
}

/* A statement whose answer was lost is sent again: reads, and writes that
 * check whether a first try landed (008). The attempt rows (a login's or
 * a password change's begin) and the registration count are not checked:
 * sent twice, they leave one extra pending row (a failure once 30 s old)
 * or count one registration twice; a switchover that fails a login would
 * be worse. Never a query that timed out: it may still be running. */
int db_statement_may_repeat(enum db_statement s, int timed_out)
{
    (void)s;
    return !timed_out;
}

/* ---- what an answer means ---- */

/* SQLSTATE of a node that cannot take our writes now (db_conn.h). */
int db_result_failover(const PGresult *res)
{
    const char *state = res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;

    if (state == NULL)
        return 0;
    return strcmp(state, "57P01") == 0 || strcmp(state, "57P02") == 0 || strcmp(state, "57P03") == 0 ||
           strcmp(state, "25006") == 0 || strncmp(state, "08", 2) == 0;
}

int db_result_ok(const PGresult *res)
{
    if (res == NULL)
        return 0;
    return PQresultStatus(res) == PGRES_TUPLES_OK || PQresultStatus(res) == PGRES_COMMAND_OK;
}
