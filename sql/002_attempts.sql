-- 002_attempts: throttling without a race. A check and its failure row
-- used to be two statements with an Argon2 verify between them, so a burst
-- of parallel attempts all passed the check. Now an attempt takes a
-- transaction-scoped advisory lock on its username and on its address
-- (always in that order: no deadlock), checks, and writes a provisional
-- failure row in the same statement; a success deletes that row. Parallel
-- attempts on one key are therefore counted one after the other.
-- The 001 functions stay, so workers of the previous build keep working
-- during a rolling deploy.

ALTER TABLE login_failures ADD COLUMN id bigint GENERATED ALWAYS AS IDENTITY;
ALTER TABLE login_failures ADD PRIMARY KEY (id);

CREATE FUNCTION verona_attempt_begin(p_username text, p_address text,
    aa_count integer, aa_secs integer, a_count integer, a_secs integer,
    u_count integer, u_secs integer,
    OUT wait_s integer, OUT user_id bigint, OUT password_hash text, OUT locked boolean,
    OUT attempt_id bigint)
LANGUAGE plpgsql AS $$
DECLARE
    v_known boolean := false;
BEGIN
    PERFORM pg_advisory_xact_lock(7420440, hashtext(lower(p_username)));
    PERFORM pg_advisory_xact_lock(7420441, hashtext(p_address));
    SELECT b.wait_s, b.user_id, b.password_hash, b.locked INTO wait_s, user_id, password_hash, locked
      FROM verona_login_begin(p_username, p_address, aa_count, aa_secs, a_count, a_secs, u_count, u_secs) b;
    IF wait_s > 0 THEN
        RETURN;
    END IF;
    IF user_id IS NOT NULL THEN
        SELECT true INTO v_known FROM known_addresses k
         WHERE k.user_id = verona_attempt_begin.user_id AND k.address = p_address
           AND k.last_success > now() - interval '30 days';
    END IF;
    INSERT INTO login_failures (username_lower, address, known)
         VALUES (lower(p_username), p_address, coalesce(v_known, false))
      RETURNING id INTO attempt_id;
END $$;

-- The attempt failed: its failure row stays; audit it.
CREATE FUNCTION verona_attempt_failed(p_attempt_id bigint, p_username text, p_address text, p_result text)
RETURNS void LANGUAGE sql AS $$
    INSERT INTO login_audit (username, address, result) VALUES (p_username, p_address, p_result);
$$;

-- The attempt was not a failure after all (a weak new password, say).
CREATE FUNCTION verona_attempt_cancel(p_attempt_id bigint)
RETURNS void LANGUAGE sql AS $$
    DELETE FROM login_failures WHERE id = p_attempt_id;
$$;

CREATE FUNCTION verona_attempt_succeeded(p_attempt_id bigint, p_user_id bigint, p_username text,
    p_address text, p_token_hash bytea, p_ttl_s integer, p_idle_s integer, p_new_hash text)
RETURNS timestamptz LANGUAGE plpgsql AS $$
BEGIN
    -- The username lock of the attempt's begin: two successes of one user
    -- would otherwise deadlock clearing each other's rows. (Not the address
    -- lock: it would make every login from one address wait for the
    -- others' commits.)
    PERFORM pg_advisory_xact_lock(7420440, hashtext(lower(p_username)));
    DELETE FROM login_failures WHERE id = p_attempt_id;
    RETURN verona_login_succeeded(p_user_id, p_username, p_address, p_token_hash, p_ttl_s, p_idle_s, p_new_hash);
END $$;

-- Password change, step 1, as an attempt (a wrong old password is a failure).
CREATE FUNCTION verona_password_attempt_begin(p_token_hash bytea, p_address text,
    aa_count integer, aa_secs integer, a_count integer, a_secs integer,
    u_count integer, u_secs integer,
    OUT user_id bigint, OUT username text, OUT password_hash text, OUT wait_s integer, OUT attempt_id bigint)
LANGUAGE plpgsql AS $$
DECLARE
    g record;
    b record;
BEGIN
    SELECT * INTO g FROM verona_session_get(p_token_hash);
    IF g.user_id IS NULL THEN
        RETURN;
    END IF;
    SELECT * INTO b FROM verona_attempt_begin(g.username, p_address,
        aa_count, aa_secs, a_count, a_secs, u_count, u_secs);
    user_id := g.user_id;
    username := g.username;
    wait_s := b.wait_s;
    password_hash := b.password_hash;
    attempt_id := b.attempt_id;
END $$;

CREATE FUNCTION verona_password_attempt_set(p_attempt_id bigint, p_user_id bigint, p_keep_token_hash bytea,
    p_new_hash text)
RETURNS void LANGUAGE sql AS $$
    DELETE FROM login_failures WHERE id = p_attempt_id;
    SELECT verona_password_set(p_user_id, p_keep_token_hash, p_new_hash);
$$;

-- Registration: check and count the attempt in one locked statement.
CREATE FUNCTION verona_register_attempt(p_address text) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v_wait integer;
BEGIN
    PERFORM pg_advisory_xact_lock(7420441, hashtext(p_address));
    v_wait := verona_register_wait(p_address);
    IF v_wait = 0 THEN
        INSERT INTO registrations (address) VALUES (p_address);
    END IF;
    RETURN v_wait;
END $$;

CREATE FUNCTION verona_register_user(p_username text, p_hash text)
RETURNS bigint LANGUAGE sql AS $$
    INSERT INTO users (username, password_hash) VALUES (p_username, p_hash)
        ON CONFLICT DO NOTHING RETURNING id;
$$;
