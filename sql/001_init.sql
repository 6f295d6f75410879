-- 001_init: users, sessions, brute-force throttling, audit.
--
-- The worker calls the functions below, one statement a request step, so
-- every step is one round trip and one implicit transaction. Times come
-- from the database's clock (now()), so every worker and host agrees.

CREATE TABLE users (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username            text NOT NULL,
    password_hash       text NOT NULL,
    locked              boolean NOT NULL DEFAULT false,
    created_at          timestamptz NOT NULL DEFAULT now(),
    password_changed_at timestamptz NOT NULL DEFAULT now()
);
-- Usernames are ASCII ([A-Za-z0-9._@+-]), so lower() is the whole case fold.
CREATE UNIQUE INDEX users_username_lower ON users (lower(username));

-- Only the BLAKE2b-256 hash of a token is stored; the token never is.
CREATE TABLE sessions (
    token_hash  bytea PRIMARY KEY CHECK (length(token_hash) = 32),
    user_id     bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_abs timestamptz NOT NULL,
    last_used   timestamptz NOT NULL DEFAULT now(),
    idle_s      integer NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);
CREATE INDEX sessions_expiry ON sessions (expires_abs);

-- One row a failed attempt. `known` marks an address that logged this user
-- in within 30 days (it does not count toward the per-account window);
-- `cleared` is set by a success from the same username and address.
CREATE TABLE login_failures (
    username_lower text NOT NULL,
    address        text NOT NULL,
    at             timestamptz NOT NULL DEFAULT now(),
    known          boolean NOT NULL,
    cleared        boolean NOT NULL DEFAULT false
);
CREATE INDEX login_failures_user ON login_failures (username_lower, at);
CREATE INDEX login_failures_address ON login_failures (address, at);

-- Addresses that logged a user in successfully, for the per-account window.
CREATE TABLE known_addresses (
    user_id      bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    address      text NOT NULL,
    last_success timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, address)
);

CREATE TABLE registrations (
    address text NOT NULL,
    at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX registrations_address ON registrations (address, at);

CREATE TABLE login_audit (
    id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username text NOT NULL,
    address  text NOT NULL,
    result   text NOT NULL CHECK (result IN
             ('success', 'bad_password', 'unknown_user', 'locked', 'throttled')),
    at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX login_audit_at ON login_audit (at);

-- Seconds until a window of `lim` failures in `win` seconds frees a slot,
-- given the failure times inside the window (0 = not over the limit).
CREATE FUNCTION verona_window_wait(times timestamptz[], lim integer, win integer)
RETURNS integer LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN coalesce(array_length(times, 1), 0) < lim THEN 0
           ELSE greatest(1, ceil(extract(epoch FROM
                (times[array_length(times, 1) - lim + 1] + make_interval(secs => win)) - now()))::integer)
           END
$$;

-- Throttle check before any Argon2 work. Returns the wait in seconds (0 =
-- go ahead) and the user's row. `times` are sorted oldest first.
CREATE FUNCTION verona_login_begin(p_username text, p_address text,
    aa_count integer, aa_secs integer, a_count integer, a_secs integer,
    u_count integer, u_secs integer,
    OUT wait_s integer, OUT user_id bigint, OUT password_hash text, OUT locked boolean)
LANGUAGE plpgsql AS $$
DECLARE
    v_known boolean := false;
BEGIN
    SELECT u.id, u.password_hash, u.locked INTO user_id, password_hash, locked
      FROM users u WHERE lower(u.username) = lower(p_username);
    IF user_id IS NOT NULL THEN
        SELECT true INTO v_known FROM known_addresses k
         WHERE k.user_id = verona_login_begin.user_id AND k.address = p_address
           AND k.last_success > now() - interval '30 days';
        v_known := coalesce(v_known, false);
    END IF;
    wait_s := greatest(
        verona_window_wait(ARRAY(SELECT f.at FROM login_failures f
            WHERE f.username_lower = lower(p_username) AND f.address = p_address AND NOT f.cleared
              AND f.at > now() - make_interval(secs => aa_secs) ORDER BY f.at), aa_count, aa_secs),
        verona_window_wait(ARRAY(SELECT f.at FROM login_failures f
            WHERE f.address = p_address
              AND f.at > now() - make_interval(secs => a_secs) ORDER BY f.at), a_count, a_secs),
        CASE WHEN v_known THEN 0 ELSE
        verona_window_wait(ARRAY(SELECT f.at FROM login_failures f
            WHERE f.username_lower = lower(p_username) AND NOT f.known
              AND f.at > now() - make_interval(secs => u_secs) ORDER BY f.at), u_count, u_secs) END);
    IF wait_s > 0 THEN
        INSERT INTO login_audit (username, address, result) VALUES (p_username, p_address, 'throttled');
        user_id := NULL; password_hash := NULL; locked := NULL;
    END IF;
END $$;

-- A failed attempt (unknown user, locked, wrong password): count it, audit it.
CREATE FUNCTION verona_login_failed(p_username text, p_address text, p_result text)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v_known boolean;
BEGIN
    SELECT true INTO v_known FROM users u JOIN known_addresses k ON k.user_id = u.id
     WHERE lower(u.username) = lower(p_username) AND k.address = p_address
       AND k.last_success > now() - interval '30 days';
    INSERT INTO login_failures (username_lower, address, known)
         VALUES (lower(p_username), p_address, coalesce(v_known, false));
    INSERT INTO login_audit (username, address, result) VALUES (p_username, p_address, p_result);
END $$;

-- A successful login: the session, the audit row, the cleared window, the
-- known address and (when parameters changed) the new hash, in one go.
CREATE FUNCTION verona_login_succeeded(p_user_id bigint, p_username text, p_address text,
    p_token_hash bytea, p_ttl_s integer, p_idle_s integer, p_new_hash text)
RETURNS timestamptz LANGUAGE plpgsql AS $$
DECLARE
    v_expires timestamptz;
BEGIN
    INSERT INTO sessions (token_hash, user_id, expires_abs, idle_s)
         VALUES (p_token_hash, p_user_id, now() + make_interval(secs => p_ttl_s), p_idle_s);
    UPDATE login_failures SET cleared = true
     WHERE username_lower = lower(p_username) AND address = p_address AND NOT cleared;
    INSERT INTO known_addresses (user_id, address) VALUES (p_user_id, p_address)
        ON CONFLICT (user_id, address) DO UPDATE SET last_success = now();
    INSERT INTO login_audit (username, address, result) VALUES (p_username, p_address, 'success');
    IF p_new_hash IS NOT NULL THEN
        UPDATE users SET password_hash = p_new_hash WHERE id = p_user_id;
    END IF;
    v_expires := least(now() + make_interval(secs => p_ttl_s), now() + make_interval(secs => p_idle_s));
    RETURN v_expires;
END $$;

-- A session check: the live session's user, touching last_used at most
-- once a minute. No row = invalid, expired or revoked.
CREATE FUNCTION verona_session_get(p_token_hash bytea,
    OUT user_id bigint, OUT username text, OUT expires_at timestamptz)
LANGUAGE plpgsql AS $$
DECLARE
    s sessions%ROWTYPE;
BEGIN
    SELECT * INTO s FROM sessions WHERE token_hash = p_token_hash;
    IF NOT FOUND OR s.expires_abs <= now()
       OR s.last_used + make_interval(secs => s.idle_s) <= now() THEN
        RETURN;
    END IF;
    IF s.last_used < now() - interval '60 seconds' THEN
        UPDATE sessions SET last_used = now() WHERE token_hash = p_token_hash;
        s.last_used := now();
    END IF;
    SELECT u.id, u.username INTO user_id, username FROM users u WHERE u.id = s.user_id;
    expires_at := least(s.expires_abs, s.last_used + make_interval(secs => s.idle_s));
END $$;

-- Logout: this session, or every session of its user. Returns how many died
-- (0 = the token was not a live session).
CREATE FUNCTION verona_logout(p_token_hash bytea, p_all boolean)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    v_user bigint;
    v_count integer;
BEGIN
    SELECT s.user_id INTO v_user FROM sessions s WHERE s.token_hash = p_token_hash
       AND s.expires_abs > now() AND s.last_used + make_interval(secs => s.idle_s) > now();
    IF v_user IS NULL THEN
        RETURN 0;
    END IF;
    IF p_all THEN
        DELETE FROM sessions WHERE user_id = v_user;
    ELSE
        DELETE FROM sessions WHERE token_hash = p_token_hash;
    END IF;
    GET DIAGNOSTICS v_count = ROW_COUNT;
    RETURN v_count;
END $$;

-- Password change, step 1: the session's user and current hash, with the
-- throttle wait for this user and address (a wrong old password counts as
-- a failed login).
CREATE FUNCTION verona_password_begin(p_token_hash bytea, p_address text,
    aa_count integer, aa_secs integer, a_count integer, a_secs integer,
    u_count integer, u_secs integer,
    OUT user_id bigint, OUT username text, OUT password_hash text, OUT wait_s integer)
LANGUAGE plpgsql AS $$
DECLARE
    g record;
    b record;
BEGIN
    SELECT * INTO g FROM verona_session_get(p_token_hash);
    IF g.user_id IS NULL THEN
        RETURN;
    END IF;
    SELECT * INTO b FROM verona_login_begin(g.username, p_address,
        aa_count, aa_secs, a_count, a_secs, u_count, u_secs);
    user_id := g.user_id;
    username := g.username;
    wait_s := b.wait_s;
    password_hash := b.password_hash;
END $$;

-- Password change, step 2: the new hash, and every other session ends.
CREATE FUNCTION verona_password_set(p_user_id bigint, p_keep_token_hash bytea, p_new_hash text)
RETURNS void LANGUAGE sql AS $$
    UPDATE users SET password_hash = p_new_hash, password_changed_at = now() WHERE id = p_user_id;
    DELETE FROM sessions WHERE user_id = p_user_id AND token_hash <> p_keep_token_hash;
$$;

-- Registration throttle: seconds to wait before `p_address` may register
-- again (10 an hour), 0 = go ahead.
CREATE FUNCTION verona_register_wait(p_address text) RETURNS integer
LANGUAGE sql STABLE AS $$
    SELECT verona_window_wait(ARRAY(SELECT r.at FROM registrations r
        WHERE r.address = p_address AND r.at > now() - interval '1 hour' ORDER BY r.at), 10, 3600)
$$;

-- Registration: the user, or NULL when the name is taken.
CREATE FUNCTION verona_register(p_username text, p_hash text, p_address text)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    v_id bigint;
BEGIN
    INSERT INTO users (username, password_hash) VALUES (p_username, p_hash)
        ON CONFLICT DO NOTHING RETURNING id INTO v_id;
    IF v_id IS NOT NULL THEN
        INSERT INTO registrations (address) VALUES (p_address);
    END IF;
    RETURN v_id;
END $$;

-- The periodic sweep; one worker in the cluster at a time runs it (the
-- advisory lock is held only for this transaction). Returns false when
-- another worker holds it.
CREATE FUNCTION verona_sweep(p_audit_days integer, p_failure_secs integer)
RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    IF NOT pg_try_advisory_xact_lock(7420431, 2) THEN
        RETURN false;
    END IF;
    DELETE FROM sessions
     WHERE expires_abs <= now() OR last_used + make_interval(secs => idle_s) <= now();
    DELETE FROM login_failures WHERE at <= now() - make_interval(secs => p_failure_secs);
    DELETE FROM registrations WHERE at <= now() - interval '1 hour';
    DELETE FROM known_addresses WHERE last_success <= now() - interval '30 days';
    DELETE FROM login_audit WHERE at <= now() - make_interval(days => p_audit_days);
    RETURN true;
END $$;
