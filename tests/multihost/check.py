#!/usr/bin/python3
"""tests/multihost/check.py - what the load generator was told still holds.

    check.py OUT_DIR FRONT HOST:PORT...

Every token a login acknowledged (OUT_DIR/acked-*) and not logged out (nor
with a logout that failed, OUT_DIR/doubtful-*) must
be valid through FRONT (HAProxy); every token whose logout was
acknowledged (OUT_DIR/revoked-*) must be refused (401) by every worker of
every application host given (several connections each, so that both
workers of a host answer). Prints one line and exits 1 on any breach.
"""
import glob
import http.client
import sys


def lines(pattern):
    out = set()
    for path in glob.glob(pattern):
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


def main():
    out_dir, front = sys.argv[1], sys.argv[2]
    hosts = sys.argv[3:]
    acked, revoked = lines(out_dir + "/acked-*"), lines(out_dir + "/revoked-*")
    live = acked - revoked - lines(out_dir + "/doubtful-*")
    fh, fp = front.rsplit(":", 1)
    bad_live = [t for t in live if status(lambda: http.client.HTTPConnection(fh, int(fp), timeout=20), t) != 200]
    bad_revoked = []
    for h in hosts:
        hh, hp = h.rsplit(":", 1)
        for t in revoked:
            codes = {status(lambda: http.client.HTTPConnection(hh, int(hp), timeout=20), t) for _ in range(4)}
            if codes != {401}:
                bad_revoked.append((h, t[:8], sorted(codes)))
    print("tokens: %d acknowledged and live, %d invalid; logouts: %d acknowledged, %d not refused everywhere"
          % (len(live), len(bad_live), len(revoked), len(bad_revoked)))
    if bad_revoked:
        print("not refused:", bad_revoked[:5])
    sys.exit(1 if bad_live or bad_revoked or not live else 0)


if __name__ == "__main__":
    main()
