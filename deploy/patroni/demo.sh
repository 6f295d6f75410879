#!/bin/sh
# deploy/patroni/demo.sh - three database nodes on this machine, to try
# Verona on a PostgreSQL that survives the loss of its primary
# (`make cluster-demo`, `make cluster-demo-stop`):
#
#   demo.sh start       node.sh three times on 127.0.0.1: etcd (client
#                       2381-2383, peer 2391-2393), Patroni (REST
#                       8011-8013), PostgreSQL 15 (5441-5443); waits for a
#                       leader, a synchronous standby and a replica; makes
#                       the `verona` role and database; prints the
#                       database_url, a PGPASSFILE and how long it took
#   demo.sh status      patronictl list
#   demo.sh ctl ARG...  patronictl ARG... on the demo (e.g. `ctl switchover --force`)
#   demo.sh stop        stops all of it, checks nothing is left, removes its folder
#
# As root (the nodes run as the postgres user), loopback only. Passwords
# are random, in 0600 files of the demo's own (env: Patroni's, read as
# root like a systemd EnvironmentFile; pgpass: the verona role's), never
# in the YAML. The folder (mktemp -d under /tmp) is named in
# var/patroni-demo.dir, or in the file $VERONA_PATRONI_DEMO names.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
state=${VERONA_PATRONI_DEMO:-$here/../../var/patroni-demo.dir}
names="db1 db2 db3"
addr=127.0.0.1
url="postgresql://verona@$addr:5441,$addr:5442,$addr:5443/verona?target_session_attrs=read-write"

node_env() { # NAME
    n=${1#db}
    export ETCD_CLUSTER="db1=http://$addr:2391,db2=http://$addr:2392,db3=http://$addr:2393"
    export ETCD_HOSTS="$addr:2381,$addr:2382,$addr:2383"
    export PG_PORT=$((5440 + n)) REST_PORT=$((8010 + n))
    export ETCD_CLIENT_PORT=$((2380 + n)) ETCD_PEER_PORT=$((2390 + n))
    export NETWORK=$addr/32 ENV_FILE=$dir/env FSYNC=${FSYNC:-on}
}

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# patronictl as postgres, with the REST API's credentials from the env file.
ctl() {
    sh -c 'set -a; . "$1"; set +a; shift
        exec setpriv --reuid=postgres --regid=postgres --init-groups patronictl -c "$@"' \
        sh "$dir/env" "$dir/db1/patroni.yml" "$@"
}

# "NAME ROLE STATE PORT" lines (ROLE with _ for spaces), from patronictl.
members() {
    timeout 10 setpriv --reuid=postgres --regid=postgres --init-groups \
        patronictl -c "$dir/db1/patroni.yml" list -f json 2>/dev/null | python3 -c 'import json, sys
for m in json.load(sys.stdin):
    print(m["Member"], m["Role"].replace(" ", "_"), m["State"], m["Host"].rsplit(":", 1)[-1])' 2>/dev/null || true
}

# node.sh STEP on each named node, at the same time.
each_node() { # STEP NAME...
    step=$1
    shift
    for name in "$@"; do
        [ -d "$dir/$name" ] && sh "$here/node.sh" "$step" "$dir/$name" &
    done
    wait
}

# Stops every node: Patroni (which stops its PostgreSQL) on all three at
# once (a Patroni told to stop runs no more HA cycles, so no replica is
# promoted on the way out), then the etcd members one by one (all at once,
# the etcd leader waits for peers that are gone); checks that no process
# of the demo is left; removes the folder.
stop_all() {
    # shellcheck disable=SC2086
    each_node stop-patroni $names
    for name in $names; do
        [ ! -d "$dir/$name" ] || sh "$here/node.sh" stop-etcd "$dir/$name"
    done
    # Anything of the demo's still running (its folder is in every
    # command line) is a bug: say so, and end it by its pid.
    left=$(ps -eo pid=,args= | grep -F "$dir/" | grep -v grep || true)
    if [ -n "$left" ]; then
        echo "demo.sh: still running after stop (killing them):" >&2
        echo "$left" >&2
        for pid in $(echo "$left" | awk '{ print $1 }'); do kill -TERM "$pid" 2>/dev/null || true; done
        sleep 5
        for pid in $(echo "$left" | awk '{ print $1 }'); do kill -KILL "$pid" 2>/dev/null || true; done
    fi
    rm -rf "$dir"
    rm -f "$state"
    [ -z "$left" ]
}

# The EXIT trap of a start that did not finish: the logs' last lines, then
# stop_all.
start_failed() {
    status=$?
    trap - EXIT INT TERM
    [ "$status" -ne 0 ] || return 0
    for f in "$dir"/db*/patroni.log "$dir"/db*/etcd.log; do
        [ -f "$f" ] && { echo "== $f (last lines)" >&2; tail -n 8 "$f" >&2; }
    done
    echo "demo.sh: start failed; stopping what was started" >&2
    stop_all || true
    exit "$status"
}

case "${1:-}" in
start)
    [ "$(id -u)" -eq 0 ] || { echo "demo.sh: run as root (the nodes run as postgres)" >&2; exit 2; }
    [ -f "$state" ] && { echo "demo.sh: already started ($(cat "$state")); demo.sh stop first" >&2; exit 1; }
    for cmd in patroni patronictl etcd psql; do
        command -v "$cmd" >/dev/null || { echo "demo.sh: $cmd is missing (apt-get install patroni etcd-server etcd-client postgresql-15)" >&2; exit 2; }
    done
    for port in 5441 5442 5443 8011 8012 8013 2381 2382 2383 2391 2392 2393; do
        if [ -n "$(ss -Htln "sport = :$port" 2>/dev/null)" ]; then
            echo "demo.sh: port $port is in use; the demo needs 5441-5443, 8011-8013, 2381-2383, 2391-2393" >&2
            exit 1
        fi
    done
    begin=$(now)
    dir=$(mktemp -d /tmp/verona-patroni.XXXXXX)
    chmod 755 "$dir"
    mkdir -p "$(dirname "$state")"
    echo "$dir" > "$state"
    # Whatever fails from here on, nothing is left running.
    trap start_failed EXIT
    trap 'exit 130' INT TERM
    pw() { head -c 18 /dev/urandom | base64 | tr -d '/+='; }
    umask 077
    {
        echo "PATRONI_SUPERUSER_PASSWORD=$(pw)"
        echo "PATRONI_REPLICATION_PASSWORD=$(pw)"
        echo "PATRONI_REWIND_PASSWORD=$(pw)"
        echo "PATRONI_RESTAPI_USERNAME=patroni"
        echo "PATRONI_RESTAPI_PASSWORD=$(pw)"
    } > "$dir/env"
    app_pw=$(pw)
    echo "*:*:verona:verona:$app_pw" > "$dir/pgpass"
    umask 022
    for name in $names; do
        mkdir -p "$dir/$name"
        node_env "$name"
        sh "$here/node.sh" start "$name" "$addr" "$dir/$name"
    done
    echo "demo.sh: three nodes started in $dir; waiting for a leader and a synchronous standby" >&2
    deadline=$(( $(date +%s) + 180 ))
    t_leader="" t_sync=""
    while :; do
        m=$(members)
        [ -z "$t_leader" ] && echo "$m" | awk '$2 == "Leader" && $3 == "running"' | grep -q . && {
            t_leader=$(since "$begin"); echo "demo.sh: a leader after $t_leader s" >&2; }
        [ -z "$t_sync" ] && echo "$m" | awk '$2 == "Sync_Standby" && ($3 == "running" || $3 == "streaming")' | grep -q . && {
            t_sync=$(since "$begin"); echo "demo.sh: a synchronous standby after $t_sync s" >&2; }
        [ -n "$t_sync" ] && [ "$(echo "$m" | awk '$3 == "running" || $3 == "streaming"' | wc -l)" -eq 3 ] && break
        if [ "$(date +%s)" -ge "$deadline" ]; then
            echo "demo.sh: not a leader, a synchronous standby and a replica after 180 s:" >&2
            echo "$m" >&2
            exit 1
        fi
        sleep 0.5
    done
    t_all=$(since "$begin")
    leader_port=$(echo "$m" | awk '$2 == "Leader" { print $4 }')
    # The password goes on psql's standard input, not its command line.
    su_pw=$(sed -n 's/^PATRONI_SUPERUSER_PASSWORD=//p' "$dir/env")
    printf "CREATE ROLE verona LOGIN PASSWORD '%s';\nCREATE DATABASE verona OWNER verona;\n" "$app_pw" |
        PGPASSWORD=$su_pw psql -qX -v ON_ERROR_STOP=1 -h "$addr" -p "$leader_port" -U postgres -d postgres >/dev/null
    # The URL Verona will use finds the primary.
    where=$(PGPASSFILE=$dir/pgpass psql -qXAt "$url" -c "SELECT inet_server_port() || CASE WHEN pg_is_in_recovery() THEN ' (a replica?)' ELSE ' (primary)' END")
    trap - EXIT INT TERM
    ctl list
    echo "bootstrap: a leader after $t_leader s, a synchronous standby after $t_sync s, all three running after $t_all s (total $(since "$begin") s)"
    echo "the verona role connects through the URL below to port $where"
    echo
    echo "export VERONA_DATABASE_URL='$url'"
    echo "export PGPASSFILE=$dir/pgpass    # the verona role's password (0600)"
    echo "then: verona migrate; verona serve"
    echo "watch: deploy/patroni/demo.sh status; switch over: deploy/patroni/demo.sh ctl switchover --force"
    echo "stop:  make cluster-demo-stop (deploy/patroni/demo.sh stop)"
    ;;
status)
    [ -f "$state" ] || { echo "demo.sh: not started" >&2; exit 1; }
    dir=$(cat "$state")
    ctl list
    ;;
ctl)
    [ -f "$state" ] || { echo "demo.sh: not started" >&2; exit 1; }
    dir=$(cat "$state")
    shift
    ctl "$@"
    ;;
stop)
    [ -f "$state" ] || { echo "demo.sh: not started" >&2; exit 0; }
    [ "$(id -u)" -eq 0 ] || { echo "demo.sh: run as root" >&2; exit 2; }
    dir=$(cat "$state")
    begin=$(now)
    case "$dir" in
        /tmp/verona-patroni.*) ;;
        *) echo "demo.sh: $state names $dir, not a demo folder" >&2; exit 1 ;;
    esac
    if [ ! -d "$dir" ]; then
        rm -f "$state"
        echo "demo.sh: $dir was already gone"
        exit 0
    fi
    stop_all
    echo "demo.sh: stopped in $(since "$begin") s; nothing left running; $dir removed"
    ;;
*)
    echo "usage: demo.sh start|status|stop|ctl PATRONICTL-ARGS..." >&2
    exit 2
    ;;
esac
