#!/bin/sh
# A private PostgreSQL for development and tests: data and Unix socket in
# one folder, no TCP, trust authentication on the socket only.
#
#   deploy/pg.sh start DIR   create (if needed) and start; print the URL
#   deploy/pg.sh stop DIR    fast shutdown
#   deploy/pg.sh url DIR     print the connection URL
#
# PostgreSQL refuses to run as root, so as root the server runs as the
# `postgres` user; DIR must then be reachable by that user (a folder under
# /root is not: use a mktemp -d folder, or let deploy/run.sh pick one).
set -eu

cmd=${1:-}
dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || { echo "usage: deploy/pg.sh start|stop|url DIR" >&2; exit 2; }

bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -n "$bindir" ] || { echo "deploy/pg.sh: PostgreSQL server binaries not found (apt-get install postgresql)" >&2; exit 1; }

as_owner() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

url() {
    if [ "$(id -u)" -eq 0 ]; then user=postgres; else user=$(id -un); fi
    echo "postgresql://$user@/verona?host=$dir&port=${VERONA_PG_PORT:-5432}"
}

case "$cmd" in
start)
    mkdir -p "$dir"
    if [ "$(id -u)" -eq 0 ]; then
        chown postgres:postgres "$dir"
        runuser -u postgres -- test -w "$dir" || {
            echo "deploy/pg.sh: $dir is not writable by the postgres user (is it under /root?)" >&2; exit 1; }
    fi
    if [ ! -f "$dir/data/PG_VERSION" ]; then
        as_owner "$bindir/initdb" -D "$dir/data" -A trust -E UTF8 --no-locale >"$dir/initdb.log" 2>&1 || {
            cat "$dir/initdb.log" >&2; exit 1; }
    fi
    as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 \
        -o "-c listen_addresses='' -k $dir -p ${VERONA_PG_PORT:-5432} -c max_connections=300 -c fsync=${VERONA_PG_FSYNC:-on}" \
        start >/dev/null || { tail -n 20 "$dir/postgres.log" >&2; exit 1; }
    if ! as_owner "$bindir/psql" -h "$dir" -p "${VERONA_PG_PORT:-5432}" -d postgres -tAc \
            "SELECT 1 FROM pg_database WHERE datname = 'verona'" | grep -q 1; then
        as_owner "$bindir/createdb" -h "$dir" -p "${VERONA_PG_PORT:-5432}" verona
    fi
    url
    ;;
stop)
    if [ -f "$dir/data/postmaster.pid" ]; then
        as_owner "$bindir/pg_ctl" -D "$dir/data" -m fast -w -t 60 stop >/dev/null
    fi
    ;;
url)
    url
    ;;
*)
    echo "usage: deploy/pg.sh start|stop|url DIR" >&2; exit 2
    ;;
esac
