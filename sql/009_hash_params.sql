-- 009_hash_params: what a login for an unknown username verifies against.
--
-- A login for a name that is no user verifies a dummy hash, so that it
-- costs what a real user's verify costs. A real verify uses the Argon2
-- settings stored in that user's hash; after the settings change, users
-- not logged in since keep the old ones. So the worker's dummy hashes
-- follow the settings still present among users, each as often as users
-- have it (issue 19, finding 7): the worker reads them from here, with a
-- secret that makes every worker and host pick the same dummy settings
-- for the same unknown name, so that asking again and again shows one
-- cost, as a real user's does.

CREATE TABLE verona_secrets (
    name  text PRIMARY KEY,
    value text NOT NULL
);

-- 244 random bits (gen_random_uuid() reads the server's strong random
-- source); never leaves the database but for the workers.
INSERT INTO verona_secrets (name, value)
VALUES ('dummy_choice', replace(gen_random_uuid()::text, '-', '') || replace(gen_random_uuid()::text, '-', ''));

-- The Argon2id settings of users' hashes (the eight most common), with
-- how many users have each. A full scan of users: workers call it when
-- they start and then every ten minutes.
CREATE FUNCTION verona_hash_params(OUT memlimit_kib integer, OUT opslimit integer, OUT users bigint,
    OUT choice text)
RETURNS SETOF record LANGUAGE sql STABLE AS $$
    SELECT h.p[1]::integer, h.p[2]::integer, count(*),
           (SELECT value FROM verona_secrets WHERE name = 'dummy_choice')
      FROM (SELECT regexp_match(password_hash, '^\$argon2id\$v=19\$m=([0-9]{1,9}),t=([0-9]{1,9}),p=1\$') AS p
              FROM users) h
     WHERE h.p IS NOT NULL
     GROUP BY 1, 2
     ORDER BY 3 DESC, 1, 2
     LIMIT 8
$$;
