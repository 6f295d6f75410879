-- 007_pending_attempts: parallel logins of one person are not failures.
--
-- Since 002 every attempt writes its failure row at its begin, before its
-- password is judged, so that a burst of parallel guesses is counted one
-- after the other. But a row in flight counted as a failure: five correct
-- logins of one user from one address at once (a shop's page opened in
-- several tabs, a load test, several people behind one NAT) filled the
-- account+address window, and the sixth was answered 429.
--
-- Now a row is `pending` while its attempt is in flight. An attempt is
-- throttled (429, audited) only when the failures already judged fill a
-- window. When the window is full only because of attempts still in
-- flight, the begin answers wait_s = -1, writes nothing, and the worker
-- asks again a little later: the guesses in flight are still bounded by
-- the limit, and a correct login waits for the others' outcome instead of
-- being refused. A pending row older than 30 seconds counts as a failure
-- (its worker died in the middle: no login hashes that long).
--
-- Workers of the previous build keep calling verona_attempt_begin (003),
-- whose rows are not pending: they count as failures from the start, as
-- before. The password change keeps that function too (one session's
-- changes do not run in parallel).

ALTER TABLE login_failures ADD COLUMN pending boolean NOT NULL DEFAULT false;

-- Seconds until the fullest of the three windows has room (0: room now).
-- `settled_only` leaves out the attempts still in flight. Runs under the
-- settings of verona_attempt_start, its only caller.
CREATE FUNCTION verona_attempt_wait(v_lower text, p_address text, v_known boolean,
    aa_count integer, aa_secs integer, a_count integer, a_secs integer,
    u_count integer, u_secs integer, settled_only boolean)
RETURNS integer LANGUAGE plpgsql STABLE AS $$
BEGIN
    -- Each window: over its limit when its lim-th newest failure is still
    -- inside it; the wait is until that one leaves (at least 1 s).
    RETURN coalesce(greatest(
        (SELECT verona_wait_until(f.at, aa_secs)
           FROM login_failures f
          WHERE f.username_lower = v_lower AND f.address = p_address AND NOT f.cleared
            AND f.at > now() - make_interval(secs => aa_secs)
            AND (NOT settled_only OR NOT f.pending OR f.at < now() - interval '30 seconds')
          ORDER BY f.at DESC OFFSET greatest(aa_count - 1, 0) LIMIT 1),
        (SELECT verona_wait_until(f.at, a_secs)
           FROM login_failures f
          WHERE f.address = p_address
            AND f.at > now() - make_interval(secs => a_secs)
            AND (NOT settled_only OR NOT f.pending OR f.at < now() - interval '30 seconds')
          ORDER BY f.at DESC OFFSET greatest(a_count - 1, 0) LIMIT 1),
        (SELECT verona_wait_until(f.at, u_secs)
           FROM login_failures f
          WHERE NOT v_known AND f.username_lower = v_lower AND NOT f.known
            AND f.at > now() - make_interval(secs => u_secs)
            AND (NOT settled_only OR NOT f.pending OR f.at < now() - interval '30 seconds')
          ORDER BY f.at DESC OFFSET greatest(u_count - 1, 0) LIMIT 1)), 0);
END $$;

-- verona_attempt_begin (003) with the answers: wait_s > 0 throttled (and
-- audited), wait_s = -1 ask again soon (nothing written), else the user
-- and the attempt's pending row.
CREATE FUNCTION verona_attempt_start(p_username text, p_address text,
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
    -- Every row first (the usual answer, room, costs one look); only a
    -- full window asks whether its failures are judged ones.
    wait_s := verona_attempt_wait(v_lower, p_address, v_known, aa_count, aa_secs,
                                  a_count, a_secs, u_count, u_secs, false);
    IF wait_s > 0 THEN
        wait_s := verona_attempt_wait(v_lower, p_address, v_known, aa_count, aa_secs,
                                      a_count, a_secs, u_count, u_secs, true);
        user_id := NULL; password_hash := NULL; locked := NULL;
        IF wait_s = 0 THEN
            wait_s := -1;
        ELSE
            INSERT INTO login_audit (username, address, result) VALUES (p_username, p_address, 'throttled');
        END IF;
        RETURN;
    END IF;
    INSERT INTO login_failures (username_lower, address, known, pending)
         VALUES (v_lower, p_address, v_known, true)
      RETURNING id INTO attempt_id;
END $$;

-- The attempt failed: its row is a judged failure now; audit it.
CREATE FUNCTION verona_attempt_fail(p_attempt_id bigint, p_username text, p_address text, p_result text)
RETURNS void LANGUAGE sql AS $$
    UPDATE login_failures SET pending = false WHERE id = p_attempt_id;
    INSERT INTO login_audit (username, address, result) VALUES (p_username, p_address, p_result);
$$;
