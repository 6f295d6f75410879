#!/bin/sh
# deploy/patroni/demo.sh - three database nodes on this machine, to try
# Verona on a PostgreSQL that survives the loss of its primary:
#
#   demo.sh start    etcd + Patroni + PostgreSQL 15, three times on
#                    127.0.0.1 (ports 5441-5443, REST 8011-8013, etcd
#                    2382-2384 and 2392-2394); waits for a leader and a
#                    synchronous standby; makes the `verona` role and
#                    database; prints the database_url and a PGPASSFILE
#   demo.sh status   patronictl list
#   demo.sh stop     stops all of it and removes its folder
#
# As root (the nodes run as the postgres user). Passwords are random, in a
# 0600 file of the demo's own, never in the YAML. (`make cluster-demo`.)
set -eu

here=$(cd "$(dirname "$0")" && pwd)
state=${VERONA_PATRONI_DEMO:-$here/../../var/patroni-demo.dir}
names="db1 db2 db3"

port_of() { # NAME BASE -> BASE + node number
    echo $(( $2 + ${1#db} ))
}

node_env() {
    dir=$1 name=$2
    export ETCD_CLUSTER="db1=http://127.0.0.1:2392,db2=http://127.0.0.1:2393,db3=http://127.0.0.1:2394"
    export ETCD_HOSTS="127.0.0.1:2382,127.0.0.1:2383,127.0.0.1:2384"
    export PG_PORT=$(port_of "$name" 5440) REST_PORT=$(port_of "$name" 8010)
    export ETCD_CLIENT_PORT=$(port_of "$name" 2381) ETCD_PEER_PORT=$(port_of "$name" 2391)
    export NETWORK=127.0.0.1/32 ENV_FILE=$dir/env FSYNC=${FSYNC:-on}
}

patronictl_list() {
    dir=$(cat "$state")
    setpriv --reuid=postgres --regid=postgres --init-groups patronictl -c "$dir/db1/patroni.yml" list "$@"
}

case "${1:-}" in
start)
    [ "$(id -u)" -eq 0 ] || { echo "demo.sh: run as root (the nodes run as postgres)" >&2; exit 2; }
    [ -f "$state" ] && { echo "demo.sh: already started ($(cat "$state")); demo.sh stop first" >&2; exit 1; }
    begin=$(date +%s)
    dir=$(mktemp -d /tmp/verona-patroni.XXXXXX)
    chmod 755 "$dir"
    mkdir -p "$(dirname "$state")"
    echo "$dir" > "$state"
    umask 077
    {
        echo "PATRONI_SUPERUSER_PASSWORD=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')"
        echo "PATRONI_REPLICATION_PASSWORD=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')"
        echo "PATRONI_REWIND_PASSWORD=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')"
    } > "$dir/env"
    chown postgres:postgres "$dir/env"
    umask 022
    for name in $names; do
        mkdir -p "$dir/$name"
        node_env "$dir" "$name"
        sh "$here/node.sh" start "$name" 127.0.0.1 "$dir/$name"
    done
    echo "demo.sh: waiting for a leader and a synchronous standby" >&2
    deadline=$(( $(date +%s) + 180 ))
    until patronictl_list 2>/dev/null | grep -q 'Sync Standby'; do
        [ "$(date +%s)" -lt "$deadline" ] || { patronictl_list >&2 || true; echo "demo.sh: no sync standby after 180 s (logs in $dir/db*/)" >&2; exit 1; }
        sleep 1
    done
    leader_port=$(patronictl_list -f json | python3 -c 'import json,sys; print([m["Host"].rsplit(":", 1)[1] for m in json.load(sys.stdin) if m["Role"] == "Leader"][0])')
    app=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
    # shellcheck disable=SC1091
    su_pw=$(sed -n 's/^PATRONI_SUPERUSER_PASSWORD=//p' "$dir/env")
    PGPASSWORD=$su_pw psql -qX -h 127.0.0.1 -p "$leader_port" -U postgres -d postgres \
        -c "CREATE ROLE verona LOGIN PASSWORD '$app'" -c "CREATE DATABASE verona OWNER verona" >/dev/null
    umask 077
    echo "*:*:verona:verona:$app" > "$dir/pgpass"
    umask 022
    patronictl_list
    echo "bootstrap took $(( $(date +%s) - begin )) s"
    echo "VERONA_DATABASE_URL=postgresql://verona@127.0.0.1:5441,127.0.0.1:5442,127.0.0.1:5443/verona"
    echo "PGPASSFILE=$dir/pgpass   # the verona role's password (0600)"
    echo "then: verona migrate, verona serve; deploy/patroni/demo.sh stop ends it"
    ;;
status)
    [ -f "$state" ] || { echo "demo.sh: not started" >&2; exit 1; }
    patronictl_list
    ;;
stop)
    [ -f "$state" ] || { echo "demo.sh: not started" >&2; exit 0; }
    dir=$(cat "$state")
    for name in $names; do
        [ -d "$dir/$name" ] && sh "$here/node.sh" stop "$dir/$name"
    done
    rm -rf "$dir" "$state"
    echo "demo.sh: stopped"
    ;;
*)
    echo "usage: demo.sh start|status|stop" >&2
    exit 2
    ;;
esac
