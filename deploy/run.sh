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

# As root, Verona runs as the `verona` user (made here when missing, as
# the package does) once its sockets are bound (the `user` key), provided
# that user can read this checkout; otherwise it stays root and says so.
run_as=""
config=deploy/verona.conf
bin_abs=$(cd "$bin" && pwd)
if [ "$(id -u)" -eq 0 ]; then
    if ! id verona >/dev/null 2>&1; then
        useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin verona
        echo "verona: made the system user verona (make run runs Verona as it)" >&2
    fi
    if (cd / && runuser -u verona -- sh -c 'test -r "$1/deploy/verona.conf" && test -x "$2/verona" && test -x "$2/verona-worker"'             sh "$root" "$bin_abs") 2>/dev/null; then
        run_as=verona
        config=var/run.conf
        { cat deploy/verona.conf; printf '\n# make run as root (deploy/run.sh)\nuser = verona\n'; } > "$config"
    else
        echo "verona: running as root: the verona user cannot read $root (put the checkout where it can, e.g. /srv, to run as verona)" >&2
    fi
fi

stop_pg=""
if [ -z "${VERONA_DATABASE_URL:-}" ]; then
    pgdir="$root/var/pg"
    if [ "$(id -u)" -eq 0 ] && ! runuser -u postgres -- test -x "$root/var" 2>/dev/null; then
        # The postgres user cannot reach this checkout (under /root, say):
        # keep the data in a folder it can reach, named after the checkout.
        pgdir="/var/tmp/verona-pg-$(echo "$root" | cksum | cut -d' ' -f1)"
    fi
    export VERONA_PG_PORT=${VERONA_PG_PORT:-55433}
    if [ -n "$run_as" ]; then
        # The socket's folder is the postgres user's alone: the verona user
        # logs in on 127.0.0.1 with the password in a 0600 file of its own.
        VERONA_DATABASE_URL=$(VERONA_PG_TCP=1 sh deploy/pg.sh start "$pgdir")
        pw=$(sed 's/^[^:]*:[^:]*:[^:]*:[^:]*://' "$pgdir/pgpass")
        rm -f var/verona.pgpass
        install -o verona -g verona -m 600 /dev/null var/verona.pgpass
        printf '*:%s:*:postgres:%s\n' "$VERONA_PG_PORT" "$pw" > var/verona.pgpass
        VERONA_DATABASE_URL="postgresql://postgres@127.0.0.1:$VERONA_PG_PORT/verona?passfile=$root/var/verona.pgpass"
    else
        VERONA_DATABASE_URL=$(sh deploy/pg.sh start "$pgdir")
    fi
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
echo "verona: serving on http://127.0.0.1:8080${run_as:+ as the $run_as user} (Ctrl-C stops; verona ctl -s var/verona.sock status)" >&2
parent=$PPID
"$bin/verona" serve -c "$config" &
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
