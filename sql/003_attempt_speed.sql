-- 003_attempt_speed: the same attempts, with less work in the database.
--
-- A login used to run some sixteen statements inside PostgreSQL, and
-- re-parse verona_window_wait (an SQL function PostgreSQL could not
-- inline) three times. The functions below keep every name, argument and
-- result of 002, so workers of the previous build keep working during a
-- rolling deploy, and do the same work in a handful of statements:
--   * a window's wait reads only the one failure that decides it (the
--     lim-th newest, found backwards on the (key, at) index), not every
--     failure in the window;
--   * the user row and whether the address is known come in one lookup;
--   * a success's writes are one statement.
-- login_failures is a churning table (every attempt inserts a row, every
-- success deletes it), so its statistics say "a few rows" while its pages
-- hold thousands of dead ones until autovacuum comes by; plans cached at
-- such a moment scan the whole table. These functions look rows up by key
-- only, so they run with enable_seqscan off.

CREATE OR REPLACE FUNCTION verona_window_wait(times timestamptz[], lim integer, win integer)
RETURNS integer LANGUAGE plpgsql STABLE AS $$
BEGIN
    IF coalesce(array_length(times, 1), 0) < lim THEN
        RETURN 0;
    END IF;
    RETURN greatest(1, ceil(extract(epoch FROM
        (times[array_length(times, 1) - lim + 1] + make_interval(secs => win)) - now()))::integer);
END $$;

-- Seconds until a failure at `at` leaves a window of `win` seconds (at
-- least 1). Plain SQL with each argument used once, so PostgreSQL
-- inlines it into the query that calls it.
CREATE FUNCTION verona_wait_until(at timestamptz, win integer)
RETURNS integer LANGUAGE sql STABLE AS $$
    SELECT greatest(1, ceil(extract(epoch FROM at + make_interval(secs => win) - now())))::integer
$$;

CREATE OR REPLACE FUNCTION verona_attempt_begin(p_username text, p_address text,
    aa_count integer, aa_secs integer, a_count integer, a_secs integer,
    u_count integer, u_secs integer,
    OUT wait_s integer, OUT user_id bigint, OUT password_hash text, OUT locked boolean,
    OUT attempt_id bigint)
LANGUAGE plpgsql
SET enable_seqscan = off SET plan_cache_mode = force_generic_plan AS $$
DECLARE
    v_lower text := lower(p_username);
    v_known boolean;
BEGIN
    PERFORM pg_advisory_xact_lock(7420440, hashtext(v_lower));
    PERFORM pg_advisory_xact_lock(7420441, hashtext(p_address));
    SELECT u.id, u.password_hash, u.locked,
           EXISTS (SELECT 1 FROM known_addresses k
                    WHERE k.user_id = u.id AND k.address = p_address
                      AND k.last_success > now() - interval '30 days')
      INTO user_id, password_hash, locked, v_known
      FROM users u WHERE lower(u.username) = v_lower;
    v_known := coalesce(v_known, false);
    -- Each window: over its limit when its lim-th newest failure is
    -- still inside it; the wait is until that one leaves (at least 1 s).
    SELECT coalesce(greatest(
        (SELECT verona_wait_until(f.at, aa_secs)
           FROM login_failures f
          WHERE f.username_lower = v_lower AND f.address = p_address AND NOT f.cleared
            AND f.at > now() - make_interval(secs => aa_secs)
          ORDER BY f.at DESC OFFSET greatest(aa_count - 1, 0) LIMIT 1),
        (SELECT verona_wait_until(f.at, a_secs)
           FROM login_failures f
          WHERE f.address = p_address
            AND f.at > now() - make_interval(secs => a_secs)
          ORDER BY f.at DESC OFFSET greatest(a_count - 1, 0) LIMIT 1),
        (SELECT verona_wait_until(f.at, u_secs)
           FROM login_failures f
          WHERE NOT v_known AND f.username_lower = v_lower AND NOT f.known
            AND f.at > now() - make_interval(secs => u_secs)
          ORDER BY f.at DESC OFFSET greatest(u_count - 1, 0) LIMIT 1)), 0)
      INTO wait_s;
    IF wait_s > 0 THEN
        INSERT INTO login_audit (username, address, result) VALUES (p_username, p_address, 'throttled');
        user_id := NULL; password_hash := NULL; locked := NULL;
        RETURN;
    END IF;
    INSERT INTO login_failures (username_lower, address, known)
         VALUES (v_lower, p_address, v_known)
      RETURNING id INTO attempt_id;
END $$;

CREATE OR REPLACE FUNCTION verona_attempt_succeeded(p_attempt_id bigint, p_user_id bigint, p_username text,
    p_address text, p_token_hash bytea, p_ttl_s integer, p_idle_s integer, p_new_hash text)
RETURNS timestamptz LANGUAGE plpgsql
SET enable_seqscan = off SET plan_cache_mode = force_generic_plan AS $$
DECLARE
    v_expires timestamptz;
BEGIN
    -- The username lock of the attempt's begin (see 002).
    PERFORM pg_advisory_xact_lock(7420440, hashtext(lower(p_username)));
    -- One statement: the attempt's own row goes, the window's other
    -- failures are cleared (a row may change only once in a statement,
    -- hence the id <> p_attempt_id), the session, the known address,
    -- the audit row and (when parameters changed) the new hash.
    WITH gone AS (
        DELETE FROM login_failures WHERE id = p_attempt_id
    ), cleared AS (
        UPDATE login_failures SET cleared = true
         WHERE username_lower = lower(p_username) AND address = p_address AND NOT cleared
           AND id <> p_attempt_id
    ), session AS (
        INSERT INTO sessions (token_hash, user_id, expires_abs, idle_s)
             VALUES (p_token_hash, p_user_id, now() + make_interval(secs => p_ttl_s), p_idle_s)
    ), known AS (
        INSERT INTO known_addresses (user_id, address) VALUES (p_user_id, p_address)
            ON CONFLICT (user_id, address) DO UPDATE SET last_success = now()
    ), audit AS (
        INSERT INTO login_audit (username, address, result) VALUES (p_username, p_address, 'success')
    ), rehash AS (
        UPDATE users SET password_hash = p_new_hash WHERE id = p_user_id AND p_new_hash IS NOT NULL
    )
    SELECT least(now() + make_interval(secs => p_ttl_s), now() + make_interval(secs => p_idle_s))
      INTO v_expires;
    RETURN v_expires;
END $$;
