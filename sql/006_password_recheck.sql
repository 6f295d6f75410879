-- 006_password_recheck: a password change re-checks before it writes.
--
-- POST /v1/password reads the user's hash at its begin, then verifies the
-- old password and hashes the new one for tens of milliseconds. A lock, an
-- administrator's reset (`verona user passwd`), another password change or
-- a logout committed in between must win: otherwise the change would undo
-- the reset, or write a password the locked or logged-out session no longer
-- has the right to set. So the write locks the user row and goes on only
-- while the user is not locked, the stored hash is still the one the old
-- password was verified against and the session that asked still exists;
-- else it writes nothing and returns false (the worker answers 401).
-- The old password was right either way: the attempt is no failure, and
-- its provisional failure row goes.
-- verona_password_attempt_set (002) stays for workers of the previous
-- build during a rolling deploy.

CREATE FUNCTION verona_password_attempt_set_checked(p_attempt_id bigint, p_user_id bigint,
    p_keep_token_hash bytea, p_new_hash text, p_verified_hash text)
RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM login_failures WHERE id = p_attempt_id;
    -- Waits for a change in flight, then reads the row as it committed.
    PERFORM 1 FROM users WHERE id = p_user_id AND NOT locked AND password_hash = p_verified_hash
        FOR UPDATE;
    IF NOT FOUND OR NOT EXISTS (SELECT 1 FROM sessions
                                WHERE token_hash = p_keep_token_hash AND user_id = p_user_id) THEN
        RETURN false;
    END IF;
    PERFORM verona_password_set(p_user_id, p_keep_token_hash, p_new_hash);
    RETURN true;
END $$;
