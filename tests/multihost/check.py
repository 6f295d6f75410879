#!/usr/bin/python3
"""tests/multihost/check.py - what the load generator was told still holds.

    check.py OUT_DIR FRONT HOST:PORT...   (EARLIER="DIR DIR..." optional)

Every token a login acknowledged (OUT_DIR/acked-*, and those of the
earlier phases' folders in EARLIER) and not logged out (nor with a logout
that failed, */doubtful-*) must be valid through FRONT (HAProxy): a fault
may not lose what an earlier phase was told either. Every token whose
logout this phase acknowledged (OUT_DIR/revoked-*) must be refused (401)
by every worker of every application host given (several connections
each, so that both workers of a host answer); those of the earlier phases
must still be refused through FRONT. Prints one line and exits 1 on any
breach.
"""
import glob
import http.client
import os
import sys
import time


def lines(dirs, name):
    out = set()
    for d in dirs:
        for path in glob.glob(os.path.join(d, name + "-*")):
            with open(path) as f:
                out.update(line.strip() for line in f if line.strip())
    return out


def status(conn_factory, token):
    for attempt in range(3):
        conn = conn_factory()
        try:
            conn.request("GET", "/v1/session", headers={"Authorization": "Bearer " + token})
            return conn.getresponse().status
        except (OSError, http.client.HTTPException):
            if attempt == 2:
                raise
        finally:
            conn.close()
    return 0


def ask(conn_factory, tokens):
    """Each token's status; a 503 (with Retry-After) says "not now", not
    "no such session": a worker whose pool is still reconnecting. Such
    tokens are asked again for up to 15 s."""
    answers = {t: status(conn_factory, t) for t in tokens}
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and any(c == 503 for c in answers.values()):
        time.sleep(0.5)
        answers.update({t: status(conn_factory, t) for t, c in answers.items() if c == 503})
    return answers


def main():
    out_dir, front = sys.argv[1], sys.argv[2]
    hosts = sys.argv[3:]
    earlier = os.environ.get("EARLIER", "").split()
    every = [out_dir] + earlier
    revoked_now, revoked_before = lines([out_dir], "revoked"), lines(earlier, "revoked")
    live = lines(every, "acked") - revoked_now - revoked_before - lines(every, "doubtful")
    fh, fp = front.rsplit(":", 1)
    front_conn = lambda: http.client.HTTPConnection(fh, int(fp), timeout=20)
    phase_of = {t: os.path.basename(d) for d in every for t in lines([d], "acked")}
    bad_live = [(t[:8], c, phase_of.get(t, "?")) for t, c in ask(front_conn, live).items() if c != 200]
    bad_revoked = [("front", t[:8], [c]) for t, c in ask(front_conn, revoked_before).items() if c != 401]
    for h in hosts:
        hh, hp = h.rsplit(":", 1)
        for t in revoked_now:
            codes = {status(lambda: http.client.HTTPConnection(hh, int(hp), timeout=20), t) for _ in range(4)}
            if codes != {401}:
                bad_revoked.append((h, t[:8], sorted(codes)))
    print("tokens: %d acknowledged and live (%d phases), %d invalid; logouts: %d acknowledged (%d this phase), %d not refused"
          % (len(live), len(every), len(bad_live), len(revoked_now | revoked_before), len(revoked_now), len(bad_revoked)))
    if bad_live:
        print("not valid (token, status, acknowledged in):", sorted(bad_live)[:5])
    if bad_revoked:
        print("not refused:", bad_revoked[:5])
    sys.exit(1 if bad_live or bad_revoked or not live else 0)


if __name__ == "__main__":
    main()
