#!/bin/sh
# A private PostgreSQL for development and tests (SPEC 10.7): data and
# Unix socket in one 0700 folder, scram-sha-256 with a random password,
# trust nowhere, no TCP unless asked.
#
#   deploy/pg.sh start DIR   create (if needed) and start; print the URL
#   deploy/pg.sh stop DIR    fast shutdown
#   deploy/pg.sh url DIR     print the connection URL
#
# The server runs as its owner: the `postgres` user when run as root
# (PostgreSQL refuses root), the caller otherwise. DIR is made 0700 and
# belongs to that owner; one that exists must already be the owner's (or
# root's), and not a symbolic link nor writable by anyone else, so that a
# folder another local user made first is refused rather than used. The
# superuser's password is in DIR/pgpass (0600, the owner's), which the
# URL names (passfile=): the owner and root can read it, nobody else can
# reach the socket or the file.
#
# Environment: VERONA_PG_PORT (5432), VERONA_PG_FSYNC (on),
# VERONA_PG_TCP=1 to listen on 127.0.0.1 too (still scram-sha-256: for a
# client user that is neither root nor the owner; the URL stays the
# socket's).
set -eu

cmd=${1:-}
dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || { echo "usage: deploy/pg.sh start|stop|url DIR" >&2; exit 2; }
case "$dir" in
/*) ;;
*) dir="$(pwd)/$dir" ;;
esac
port=${VERONA_PG_PORT:-5432}

bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -n "$bindir" ] || { echo "deploy/pg.sh: PostgreSQL server binaries not found (apt-get install postgresql)" >&2; exit 1; }

if [ "$(id -u)" -eq 0 ]; then owner=postgres; else owner=$(id -un); fi

as_owner() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

url() {
    echo "postgresql://$owner@/verona?host=$dir&port=$port&passfile=$dir/pgpass"
}

# Makes DIR, or checks the one that is there, and hands it to the owner.
claim_dir() {
    if [ -L "$dir" ]; then
        echo "deploy/pg.sh: $dir is a symbolic link: refused" >&2; exit 1
    fi
    if [ ! -e "$dir" ]; then
        (umask 077 && mkdir "$dir") || { echo "deploy/pg.sh: cannot create $dir" >&2; exit 1; }
    fi
    [ -d "$dir" ] || { echo "deploy/pg.sh: $dir is not a folder" >&2; exit 1; }
    who=$(stat -c %U "$dir")
    if [ "$who" != "$owner" ] && [ "$who" != "$(id -un)" ]; then
        echo "deploy/pg.sh: $dir belongs to $who, not to $owner: refused (another user may have made it)" >&2; exit 1
    fi
    case "$(stat -c %A "$dir")" in
    ?????w????|????????w?)
        [ "$who" = "$owner" ] || { echo "deploy/pg.sh: $dir is writable by others: refused" >&2; exit 1; } ;;
    esac
    [ "$(id -u)" -eq 0 ] && chown "$owner:$owner" "$dir"
    chmod 0700 "$dir"
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- test -w "$dir" || {
            echo "deploy/pg.sh: $dir is not reachable by the postgres user (is it under /root?)" >&2; exit 1; }
    fi
}

# A new random password in DIR/pgpass (libpq's format, 0600, the
# owner's), made by the owner's own shell: never on a command line, where
# any local user could read it in /proc.
new_password() {
    as_owner sh -c 'umask 077 && pw=$(head -c 24 /dev/urandom | base64 | tr -d "/+=\n") &&
        printf "*:*:*:%s:%s\n" "$1" "$pw" > "$2.new" && mv "$2.new" "$2"' sh "$owner" "$dir/pgpass"
}

psql_owner() {
    as_owner env PGPASSFILE="$dir/pgpass" "$bindir/psql" -X -h "$dir" -p "$port" "$@"
}

case "$cmd" in
start)
    claim_dir
    if [ ! -f "$dir/data/PG_VERSION" ]; then
        new_password
        # initdb reads the password from a file: the first field of pgpass's line is not it.
        as_owner sh -c 'umask 077 && sed "s/^[^:]*:[^:]*:[^:]*:[^:]*://" "$1/pgpass" > "$1/pwfile"' sh "$dir"
        as_owner "$bindir/initdb" -D "$dir/data" -U "$owner" --pwfile="$dir/pwfile" -A scram-sha-256 \
            -E UTF8 --no-locale >"$dir/initdb.log" 2>&1 || { rm -f "$dir/pwfile"; cat "$dir/initdb.log" >&2; exit 1; }
        rm -f "$dir/pwfile"
    fi
    listen=""
    [ "${VERONA_PG_TCP:-0}" = 1 ] && listen=127.0.0.1
    as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 \
        -o "-c listen_addresses='$listen' -k $dir -c unix_socket_permissions=0700 -p $port -c max_connections=300 -c fsync=${VERONA_PG_FSYNC:-on}" \
        start >/dev/null || { tail -n 20 "$dir/postgres.log" >&2; exit 1; }
    if [ ! -f "$dir/pgpass" ] || grep -Eq '^[^#]*[[:space:]]trust([[:space:]]|$)' "$dir/data/pg_hba.conf"; then
        # A folder from an older pg.sh (trust, no password): the socket is
        # the owner's alone by now; give the superuser a password, then
        # make every line of pg_hba.conf ask for it.
        new_password
        pw=$(sed 's/^[^:]*:[^:]*:[^:]*:[^:]*://' "$dir/pgpass")
        printf "ALTER ROLE \"%s\" PASSWORD '%s'\n" "$owner" "$pw" | psql_owner -q -d postgres -v ON_ERROR_STOP=1 >/dev/null
        as_owner sed -i -E 's/(^[^#]*[[:space:]])trust([[:space:]]|$)/\1scram-sha-256\2/' "$dir/data/pg_hba.conf"
        as_owner "$bindir/pg_ctl" -D "$dir/data" reload >/dev/null
    fi
    if ! psql_owner -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'verona'" | grep -q 1; then
        as_owner env PGPASSFILE="$dir/pgpass" "$bindir/createdb" -h "$dir" -p "$port" verona
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
