-- 008_failover_retries: writes a worker may send twice.
--
-- When a primary fails over, a worker can lose the answer to a commit: the
-- write may have landed on the new primary (synchronous_mode) or not. The
-- worker then sends the same statement again on its new connection, and
-- these functions first check whether the first try landed (SPEC 10.2):
-- the session row with that token hash, the new password hash, the user
-- with that exact (salted, so unique) hash. On a first try the check finds
-- nothing and they do what the *_checked functions always did.
-- The functions of 002-007 stay for workers of the previous build during
-- a rolling deploy.

-- A login's success: the session with this token hash exists already, so
-- the first try committed; answer its expiry as the first try did.
CREATE FUNCTION verona_attempt_succeeded_once(p_attempt_id bigint, p_user_id bigint, p_username text,
    p_address text, p_token_hash bytea, p_ttl_s integer, p_idle_s integer, p_new_hash text,
    p_verified_hash text)
RETURNS timestamptz LANGUAGE plpgsql
SET enable_seqscan = off SET plan_cache_mode = force_generic_plan AS $$
DECLARE
    v_expires timestamptz;
BEGIN
    -- The first try may still be running: wait for it (the username lock
    -- of 004's check) before looking for its session.
    PERFORM pg_advisory_xact_lock(7420440, hashtext(lower(p_username)));
    SELECT least(s.expires_abs, s.last_used + make_interval(secs => s.idle_s)) INTO v_expires
      FROM sessions s WHERE s.token_hash = p_token_hash AND s.user_id = p_user_id;
    IF FOUND THEN
        RETURN v_expires;
    END IF;
    RETURN verona_attempt_succeeded_checked(p_attempt_id, p_user_id, p_username, p_address, p_token_hash,
                                            p_ttl_s, p_idle_s, p_new_hash, p_verified_hash);
END $$;

-- A password change: the user's hash is the new one already (a salted
-- hash is never chosen twice), so the first try committed.
CREATE FUNCTION verona_password_attempt_set_once(p_attempt_id bigint, p_user_id bigint,
    p_keep_token_hash bytea, p_new_hash text, p_verified_hash text)
RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    -- The first try may still be running: wait for its row lock (006's).
    PERFORM 1 FROM users WHERE id = p_user_id FOR UPDATE;
    IF EXISTS (SELECT 1 FROM users WHERE id = p_user_id AND password_hash = p_new_hash) THEN
        DELETE FROM login_failures WHERE id = p_attempt_id;
        RETURN true;
    END IF;
    RETURN verona_password_attempt_set_checked(p_attempt_id, p_user_id, p_keep_token_hash,
                                               p_new_hash, p_verified_hash);
END $$;

-- A registration: the name is taken by a user holding exactly this
-- (salted) hash, so it is this registration's own first try.
CREATE FUNCTION verona_register_user_once(p_username text, p_hash text)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    v_id bigint;
BEGIN
    INSERT INTO users (username, password_hash) VALUES (p_username, p_hash)
        ON CONFLICT DO NOTHING RETURNING id INTO v_id;
    IF v_id IS NULL THEN
        SELECT id INTO v_id FROM users WHERE lower(username) = lower(p_username) AND password_hash = p_hash;
    END IF;
    RETURN v_id;
END $$;
