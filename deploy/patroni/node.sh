#!/bin/sh
# deploy/patroni/node.sh - one database node: an etcd member (etcd.env.in)
# and Patroni (patroni.yml.in), which runs PostgreSQL 15, started in the
# background as the postgres user (PostgreSQL refuses root). As root.
#
#   node.sh start NAME ADDR DIR    start (or restart: data kept) the node
#   node.sh stop DIR               Patroni (and its PostgreSQL), then etcd
#   node.sh stop-patroni DIR       Patroni and its PostgreSQL only
#   node.sh stop-etcd DIR          the etcd member only
#   node.sh config NAME ADDR DIR   only write DIR/patroni.yml and DIR/etcd.env
#                                  (for /etc/patroni/config.yml and
#                                  /etc/default/etcd in production)
#
# The rest comes from the environment:
#   ETCD_CLUSTER   every member, "db1=http://ADDR:PEER,db2=...,db3=..."
#   ETCD_HOSTS     every member's client address, "ADDR:PORT,ADDR:PORT,..."
#   ENV_FILE       a 0600 file of NAME=value lines: PATRONI_SUPERUSER_PASSWORD,
#                  PATRONI_REPLICATION_PASSWORD, PATRONI_REWIND_PASSWORD
#                  (optional: PATRONI_RESTAPI_USERNAME, PATRONI_RESTAPI_PASSWORD)
#   NETWORK        where replicas and administrators connect from (CIDR)
#   APP_NETWORK    where Verona connects from (CIDR; default NETWORK)
#   PG_PORT REST_PORT ETCD_CLIENT_PORT ETCD_PEER_PORT  (5432 8008 2379 2380)
#   FSYNC          on (off only for throwaway tests)
#   BIN_DIR        PostgreSQL's bin dir (default /usr/lib/postgresql/15/bin)
#   DATA_DIR       PostgreSQL's data (default DIR/data)
#   RUN_DIR        PostgreSQL's socket and Patroni's passfile (default DIR/run)
# DIR gets the node's data (data/, etcd/), its filled-in configuration
# (patroni.yml, etcd.env), logs (patroni.log with PostgreSQL's, etcd.log)
# and pid files; the postgres user must be able to reach it. ENV_FILE is
# read as root, as systemd reads an EnvironmentFile.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
cmd=${1:-}

usage() {
    echo "usage: node.sh start NAME ADDR DIR | stop DIR | stop-patroni DIR | stop-etcd DIR | config NAME ADDR DIR" >&2
    exit 2
}

pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# TERM, up to 30 s, then KILL.
stop_pid() {
    kill -TERM "$1" 2>/dev/null || return 0
    i=0
    while kill -0 "$1" 2>/dev/null && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
    kill -KILL "$1" 2>/dev/null || true
}

stop_pidfile() {
    pid_alive "$1" && stop_pid "$(cat "$1")"
    rm -f "$1"
}

stop_patroni() {
    # Patroni stops its PostgreSQL (fast shutdown) before it exits.
    stop_pidfile "$1/patroni.pid"
    # One left behind by a killed Patroni goes too (SIGINT: fast shutdown).
    data=$(sed -n 's/^  data_dir: //p' "$1/patroni.yml" 2>/dev/null)
    if [ -f "${data:-$1/data}/postmaster.pid" ]; then
        pg=$(head -n 1 "${data:-$1/data}/postmaster.pid")
        if [ -n "$pg" ] && kill -0 "$pg" 2>/dev/null; then
            kill -INT "$pg" 2>/dev/null || true
            i=0
            while kill -0 "$pg" 2>/dev/null && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
            kill -KILL "$pg" 2>/dev/null || true
        fi
    fi
}

# TEMPLATE -> stdout, the @...@ fields filled from the shell variables.
fill() {
    sed -e "s|@NAME@|$name|g" -e "s|@ADDR@|$addr|g" \
        -e "s|@PG_PORT@|${PG_PORT:-5432}|g" -e "s|@REST_PORT@|${REST_PORT:-8008}|g" \
        -e "s|@ETCD_CLIENT_PORT@|${ETCD_CLIENT_PORT:-2379}|g" -e "s|@ETCD_PEER_PORT@|${ETCD_PEER_PORT:-2380}|g" \
        -e "s|@ETCD_HOSTS@|$ETCD_HOSTS|g" -e "s|@ETCD_CLUSTER@|$ETCD_CLUSTER|g" \
        -e "s|@DATA_DIR@|${DATA_DIR:-$dir/data}|g" -e "s|@BIN_DIR@|$bindir|g" -e "s|@RUN_DIR@|${RUN_DIR:-$dir/run}|g" \
        -e "s|@NETWORK@|$NETWORK|g" -e "s|@APP_NETWORK@|${APP_NETWORK:-$NETWORK}|g" \
        -e "s|@FSYNC@|${FSYNC:-on}|g" "$1"
}

# NAME ADDR DIR -> DIR/patroni.yml (0600) and DIR/etcd.env
write_config() {
    name=$1 addr=$2 dir=$3
    : "${ETCD_CLUSTER:?}" "${ETCD_HOSTS:?}" "${NETWORK:?}"
    bindir=${BIN_DIR:-$(ls -d /usr/lib/postgresql/15/bin 2>/dev/null || ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)}
    mkdir -p "$dir"
    fill "$here/etcd.env.in" > "$dir/etcd.env"
    (umask 077 && fill "$here/patroni.yml.in" > "$dir/patroni.yml")
}

case "$cmd" in
config)
    [ $# -eq 4 ] || usage
    write_config "$2" "$3" "$4"
    ;;
start)
    [ $# -eq 4 ] || usage
    name=$2 addr=$3 dir=$4
    : "${ENV_FILE:?}"
    [ "$(id -u)" -eq 0 ] || { echo "node.sh: run as root (the node runs as postgres)" >&2; exit 2; }
    # Passwords reach Patroni through its environment only (SPEC 10.15),
    # from a file nobody else can read.
    case "$(stat -c %a "$ENV_FILE")" in
        600|400) ;;
        *) echo "node.sh: $ENV_FILE must be mode 0600 (it holds passwords)" >&2; exit 2 ;;
    esac
    for p in etcd patroni; do
        pid_alive "$dir/$p.pid" && { echo "node.sh: $name's $p is already running ($dir/$p.pid)" >&2; exit 1; }
    done
    write_config "$name" "$addr" "$dir"
    mkdir -p "$dir/run" "$dir/etcd"
    chmod 700 "$dir/run" "$dir/etcd"
    chown postgres:postgres "$dir" "$dir/run" "$dir/etcd" "$dir/etcd.env" "$dir/patroni.yml"
    # The node's processes work in its own folder: a working folder the
    # postgres user cannot enter (a checkout under /root, a 0700 mktemp)
    # makes initdb fail ("could not identify current directory").
    cd "$dir"
    # etcd reads its settings from ETCD_* variables, as from
    # /etc/default/etcd in production; the ones that are node.sh's own
    # are not etcd's. setpriv execs sh, which execs etcd: $! is etcd.
    setpriv --reuid=postgres --regid=postgres --init-groups sh -c 'unset ETCD_CLUSTER ETCD_HOSTS ETCD_CLIENT_PORT ETCD_PEER_PORT
        set -a; . "$1"; set +a; exec etcd --data-dir "$2"' \
        sh "$dir/etcd.env" "$dir/etcd" >>"$dir/etcd.log" 2>&1 </dev/null &
    echo $! > "$dir/etcd.pid"
    # The passwords are read as root, then Patroni runs as postgres (sh
    # execs setpriv, which execs patroni: $! is Patroni).
    sh -c 'set -a; . "$1"; set +a; exec setpriv --reuid=postgres --regid=postgres --init-groups patroni "$2"' \
        sh "$ENV_FILE" "$dir/patroni.yml" >>"$dir/patroni.log" 2>&1 </dev/null &
    echo $! > "$dir/patroni.pid"
    ;;
stop)
    [ $# -eq 2 ] || usage
    stop_patroni "$2"
    stop_pidfile "$2/etcd.pid"
    ;;
stop-patroni)
    [ $# -eq 2 ] || usage
    stop_patroni "$2"
    ;;
stop-etcd)
    [ $# -eq 2 ] || usage
    stop_pidfile "$2/etcd.pid"
    ;;
*)
    usage
    ;;
esac
