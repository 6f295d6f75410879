-- 005_audit_unavailable: a login turned away with 503 before its password
-- was judged (the hash queue full, the hash failed) is audited too, as
-- 'unavailable': every login attempt gets an audit row (SPEC section 5).
--
-- The wider check is added NOT VALID: the rows already there passed the
-- narrower one, and validating them would scan the whole audit table while
-- holding the lock every login's audit insert waits for.
-- verona_attempt_cancel (002) stays: the password change uses it, and so do
-- workers of the previous build during a rolling deploy.

ALTER TABLE login_audit DROP CONSTRAINT login_audit_result_check;
ALTER TABLE login_audit ADD CONSTRAINT login_audit_result_check CHECK (result IN
    ('success', 'bad_password', 'unknown_user', 'locked', 'throttled', 'unavailable')) NOT VALID;

-- The attempt's provisional failure row goes (it was no failure: load must
-- not throttle the people it turned away) and its audit row is written.
CREATE FUNCTION verona_attempt_unavailable(p_attempt_id bigint, p_username text, p_address text)
RETURNS void LANGUAGE sql AS $$
    DELETE FROM login_failures WHERE id = p_attempt_id;
    INSERT INTO login_audit (username, address, result) VALUES (p_username, p_address, 'unavailable');
$$;
