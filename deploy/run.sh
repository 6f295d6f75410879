#!/bin/sh
# `make run`: a private PostgreSQL (unless VERONA_DATABASE_URL is set), the
# migrations, then Verona in the foreground on 127.0.0.1:8080. Ctrl-C stops
# it (and the private PostgreSQL).
#   usage: deploy/run.sh BIN_DIR
set -eu

bin=$1
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
mkdir -p var

stop_pg=""
if [ -z "${VERONA_DATABASE_URL:-}" ]; then
    pgdir="$root/var/pg"
    if [ "$(id -u)" -eq 0 ] && ! runuser -u postgres -- test -x "$root/var" 2>/dev/null; then
        # The postgres user cannot reach this checkout (under /root, say):
        # keep the data in a folder it can reach, named after the checkout.
        pgdir="/var/tmp/verona-pg-$(echo "$root" | cksum | cut -d' ' -f1)"
    fi
    export VERONA_PG_PORT=${VERONA_PG_PORT:-55433}
    VERONA_DATABASE_URL=$(sh deploy/pg.sh start "$pgdir")
    export VERONA_DATABASE_URL
    stop_pg="$pgdir"
    echo "verona: private PostgreSQL in $pgdir ($VERONA_DATABASE_URL)" >&2
fi

cleanup() {
    [ -n "$stop_pg" ] && sh deploy/pg.sh stop "$stop_pg" >/dev/null 2>&1 || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"$bin/verona" migrate
echo "verona: serving on http://127.0.0.1:8080 (Ctrl-C stops; verona ctl -s var/verona.sock status)" >&2
parent=$PPID
"$bin/verona" serve -c deploy/verona.conf &
child=$!
# Whoever started us (make) killed outright: stop rather than linger as
# orphans holding the port and the private PostgreSQL.
( while kill -0 "$parent" 2>/dev/null && kill -0 "$child" 2>/dev/null; do sleep 1; done
  kill -TERM "$child" 2>/dev/null ) &
watch=$!
trap 'kill -TERM $child 2>/dev/null; wait $child; kill $watch 2>/dev/null; exit 130' INT TERM
status=0
wait $child || status=$?
kill $watch 2>/dev/null || true
exit $status
