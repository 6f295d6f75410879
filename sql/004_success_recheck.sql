-- 004_success_recheck: a login's success checks the user once more.
--
-- A login reads the user at its begin, then hashes for tens of
-- milliseconds. A password change (/v1/password, `verona user passwd`) or
-- a lock committed in between must win: otherwise the login would get a
-- session the change was meant to end, and its rehash could even put the
-- old password back. The success therefore locks the user row and goes on
-- only while the user is not locked and the stored hash is still the one
-- the password was verified against; else it writes nothing and returns
-- NULL (the worker answers 401 and records the attempt as a failure).
-- Whichever commits first, the other sees it: a change after this success
-- ends the new session with the others.
-- verona_attempt_succeeded (002, 003) stays for workers of the previous
-- build during a rolling deploy.

CREATE FUNCTION verona_attempt_succeeded_checked(p_attempt_id bigint, p_user_id bigint, p_username text,
    p_address text, p_token_hash bytea, p_ttl_s integer, p_idle_s integer, p_new_hash text,
    p_verified_hash text)
RETURNS timestamptz LANGUAGE plpgsql
SET enable_seqscan = off SET plan_cache_mode = force_generic_plan AS $$
DECLARE
    v_current boolean;
BEGIN
    -- The username lock of the attempt's begin (see 002), then the row.
    PERFORM pg_advisory_xact_lock(7420440, hashtext(lower(p_username)));
    SELECT NOT u.locked AND u.password_hash = p_verified_hash INTO v_current
      FROM users u WHERE u.id = p_user_id FOR UPDATE;
    IF v_current IS NOT TRUE THEN
        RETURN NULL;
    END IF;
    RETURN verona_attempt_succeeded(p_attempt_id, p_user_id, p_username, p_address, p_token_hash,
                                    p_ttl_s, p_idle_s, p_new_hash);
END $$;
