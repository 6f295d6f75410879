#!/bin/sh
# deploy/patroni/node.sh - one database node: an etcd member and Patroni
# (which runs PostgreSQL 15), started in the background from
# patroni.yml.in, as the postgres user (PostgreSQL refuses root).
#
#   node.sh start NAME ADDR DIR    start (or restart: data kept) the node
#   node.sh stop DIR               Patroni (and its PostgreSQL), then etcd
#
# The rest comes from the environment:
#   ETCD_CLUSTER   every member, "db1=http://ADDR:PEER,db2=...,db3=..."
#   ETCD_HOSTS     every member's client address, "ADDR:PORT,ADDR:PORT,..."
#   PG_PORT REST_PORT ETCD_CLIENT_PORT ETCD_PEER_PORT  (5432 8008 2379 2380)
#   NETWORK        where clients and replicas connect from (CIDR)
#   ENV_FILE       a 0600 file with PATRONI_SUPERUSER_PASSWORD,
#                  PATRONI_REPLICATION_PASSWORD, PATRONI_REWIND_PASSWORD
#   FSYNC          on (off only for throwaway tests)
# DIR holds the node's data, logs and pid files; the postgres user must be
# able to reach it.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
cmd=${1:-}

pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

stop_pidfile() {
    pidfile=$1
    pid_alive "$pidfile" || { rm -f "$pidfile"; return 0; }
    kill -TERM "$(cat "$pidfile")" 2>/dev/null || true
    i=0
    while pid_alive "$pidfile" && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
    pid_alive "$pidfile" && kill -KILL "$(cat "$pidfile")" 2>/dev/null || true
    rm -f "$pidfile"
}

case "$cmd" in
start)
    [ $# -eq 4 ] || { echo "usage: node.sh start NAME ADDR DIR" >&2; exit 2; }
    name=$2 addr=$3 dir=$4
    : "${ETCD_CLUSTER:?}" "${ETCD_HOSTS:?}" "${ENV_FILE:?}" "${NETWORK:?}"
    bindir=$(ls -d /usr/lib/postgresql/15/bin 2>/dev/null || ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
    mkdir -p "$dir/run" "$dir/etcd"
    chmod 700 "$dir/run" "$dir/etcd"
    chown postgres:postgres "$dir" "$dir/run" "$dir/etcd"
    # A fresh etcd member joins the cluster being made; one with data
    # rejoins as itself (initial-cluster is read only the first time).
    setpriv --reuid=postgres --regid=postgres --init-groups sh -c "exec etcd --name '$name' --data-dir '$dir/etcd' \
        --listen-client-urls http://$addr:${ETCD_CLIENT_PORT:-2379} \
        --advertise-client-urls http://$addr:${ETCD_CLIENT_PORT:-2379} \
        --listen-peer-urls http://$addr:${ETCD_PEER_PORT:-2380} \
        --initial-advertise-peer-urls http://$addr:${ETCD_PEER_PORT:-2380} \
        --initial-cluster '$ETCD_CLUSTER' --initial-cluster-state new \
        --initial-cluster-token verona-etcd >>'$dir/etcd.log' 2>&1" </dev/null &
    echo $! > "$dir/etcd.pid"
    sed -e "s|@NAME@|$name|g" -e "s|@ADDR@|$addr|g" -e "s|@PG_PORT@|${PG_PORT:-5432}|g" \
        -e "s|@REST_PORT@|${REST_PORT:-8008}|g" -e "s|@ETCD_HOSTS@|$ETCD_HOSTS|g" \
        -e "s|@DATA_DIR@|$dir/data|g" -e "s|@BIN_DIR@|$bindir|g" -e "s|@RUN_DIR@|$dir/run|g" \
        -e "s|@NETWORK@|$NETWORK|g" -e "s|@FSYNC@|${FSYNC:-on}|g" \
        "$here/patroni.yml.in" > "$dir/patroni.yml"
    chown postgres:postgres "$dir/patroni.yml"
    chmod 600 "$dir/patroni.yml"
    # Passwords reach Patroni through its environment only (SPEC 10.15).
    setpriv --reuid=postgres --regid=postgres --init-groups sh -c "set -a; . '$ENV_FILE'; set +a; exec patroni '$dir/patroni.yml' \
        >>'$dir/patroni.log' 2>&1" </dev/null &
    echo $! > "$dir/patroni.pid"
    ;;
stop)
    [ $# -eq 2 ] || { echo "usage: node.sh stop DIR" >&2; exit 2; }
    dir=$2
    stop_pidfile "$dir/patroni.pid"
    # Patroni stops its PostgreSQL; one left by a killed Patroni goes too.
    if [ -f "$dir/data/postmaster.pid" ]; then
        pg=$(head -n 1 "$dir/data/postmaster.pid")
        kill -INT "$pg" 2>/dev/null || true
        i=0
        while kill -0 "$pg" 2>/dev/null && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
        kill -KILL "$pg" 2>/dev/null || true
    fi
    stop_pidfile "$dir/etcd.pid"
    ;;
*)
    echo "usage: node.sh start NAME ADDR DIR | stop DIR" >&2
    exit 2
    ;;
esac
